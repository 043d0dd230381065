"""Benchmarks (never part of the test run): `python -m benchmarks` or `make bench`."""
