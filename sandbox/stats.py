"""The counters behind `GET /_sandbox/stats`: requests, answers, rate-limit pressure and grants.

Kept apart from traffic.py, which updates most of them, because every mixin of the account
(oauth.py counts grants) reaches them through `Account.stats`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Stats:
    requests: int = 0
    by_path: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    rate_limited: int = 0
    blocks: int = 0  # times the account blocked itself after too many 429s
    injected_faults: int = 0
    peak_rps: int = 0  # most requests (admitted or not) in any rolling second
    # the shortest time in which rate_limit + 1 consecutive requests started: under 1000 ms is
    # one request too many in a rolling second; how far above 1000 a run stays is its headroom
    tightest_span_ms: float | None = None
    refreshes: int = 0
    code_grants: int = 0
    subdomain_lookups: int = 0
    first_request_at: float | None = None  # unix time of the first API request since the reset
    last_request_at: float | None = None
    per_second: dict[int, int] = field(default_factory=dict)  # wall-clock second → API requests
