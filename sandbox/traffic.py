"""Traffic: the rolling-second rate limit (429) and the counters behind `GET /_sandbox/stats`."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from sandbox.account import Account

if TYPE_CHECKING:
    from sandbox.webhooks import Dispatcher


@dataclass
class Stats:
    requests: int = 0
    by_path: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    rate_limited: int = 0
    injected_faults: int = 0
    peak_rps: int = 0
    refreshes: int = 0
    code_grants: int = 0
    subdomain_lookups: int = 0


class Traffic(Account):
    arrivals: list[float]  # monotonic times of the requests admitted in the last second
    dispatcher: Dispatcher

    def admit(self, path_key: str) -> bool:
        """Count one API request; False when it exceeds the rate limit (→ 429)."""
        moment = time.monotonic()
        with self.lock:
            self.arrivals = [t for t in self.arrivals if moment - t < 1.0]
            allowed = len(self.arrivals) < self.config.rate_limit
            self.stats.requests += 1
            self.stats.by_path[path_key] = self.stats.by_path.get(path_key, 0) + 1
            if allowed:
                self.arrivals.append(moment)
                self.stats.peak_rps = max(self.stats.peak_rps, len(self.arrivals))
            else:
                self.stats.rate_limited += 1
            return allowed

    def record_status(self, status: int) -> None:
        with self.lock:
            key = str(status)
            self.stats.statuses[key] = self.stats.statuses.get(key, 0) + 1

    def record_fault(self) -> None:
        with self.lock:
            self.stats.injected_faults += 1

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = Stats()

    def stats_view(self) -> dict:
        with self.lock:
            return {**asdict(self.stats), "deliveries": len(self.dispatcher.deliveries)}
