"""The fault matrix: every flow is run once cleanly to record each AWS, amoCRM and Main Backend
call it makes, then once more per call × per fault kind (tests/faults/injector.py), followed by
the flow's documented recovery; the invariants a user relies on must hold after every run
(tests/faults/flows.py). Enumerated, not sampled: a call nobody thought of is faulted too.

The matrix's size and every violation are printed; the test fails on any violation."""

from __future__ import annotations

import os

import pytest

from tests.faults.flows import FLOWS, Flow, Run
from tests.faults.injector import Fault, Injector, installed
from tests.faults.world import World


@pytest.fixture
def amo():
    """The sandbox is amoCRM, over HTTP (overrides the suite-wide `responses` mock)."""
    yield None


def run_flow(flow: Flow, tables: dict) -> tuple[int, int, list[str]]:
    """The flow run cleanly (it must hold), then once per call of the clean run × per fault
    kind from the same prepared world: (calls, faulted runs, violations)."""
    violations: list[str] = []
    with World(tables, queued=flow.queued) as world:
        injector = Injector(world.sandbox_host)
        world.harness = injector.paused
        with installed(injector):
            prepared = Run(world, None)
            flow.prepare(prepared)
            world.snapshot()
            problems = attempt(flow, prepared, injector, None)
            assert problems == [], f"{flow.name}, no fault: {problems}"
            calls, faults = len(injector.calls), injector.faults()
            for fault in faults:
                world.restore()
                for problem in attempt(flow, prepared, injector, fault):
                    violations.append(f"{flow.name} | {fault}: {problem}")
    return calls, len(faults), violations


def attempt(flow: Flow, prepared: Run, injector: Injector, fault: Fault | None) -> list[str]:
    run = Run(prepared.world, fault, context=dict(prepared.context))
    injector.calls, injector.fault, injector.fired = [], fault, False
    injector.active = True
    try:
        flow.act(run)
    finally:
        injector.active = False
    flow.recover(run)
    return flow.check(run)


# `make test` enumerates this flow in full (the strongest guarantee: exactly-once create-lead);
# `make test-all` enumerates every flow. FAULT_FLOWS=<part of a name> runs the flows it names.
SMOKE = ("create-lead with an Idempotency-Key",)


def test_the_fault_matrix_of_the_strongest_guarantees_finds_no_violation(_pristine_tables, capsys):
    check_matrix([flow for flow in FLOWS if flow.name in SMOKE], _pristine_tables, capsys)


@pytest.mark.slow
def test_the_fault_matrix_finds_no_violation(_pristine_tables, capsys):
    only = os.environ.get("FAULT_FLOWS")
    check_matrix([flow for flow in FLOWS if not only or only in flow.name], _pristine_tables, capsys)


def check_matrix(flows: list[Flow], tables: dict, capsys) -> None:
    violations: list[str] = []
    size = 0
    for flow in flows:
        calls, runs, found = run_flow(flow, tables)  # what the service logs stays captured
        with capsys.disabled():
            print(f"fault matrix: {flow.name}: {calls} calls, {runs} faulted runs")
        size += runs
        violations += found
    with capsys.disabled():
        print(f"fault matrix: {size} faulted runs, {len(violations)} violations")
        for violation in violations:
            print("  " + violation)
    assert violations == []
