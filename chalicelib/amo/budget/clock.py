"""This process's clock, checked against the budget table's: the shared slots are moments in
time, so every process must read the same time (issue 23: two processes 2 s apart sent 14/s).

The reference is DynamoDB's own clock, in the `Date` header of each answer (whole seconds).
One read sent at local time t0 and answered at t1 with `Date: D` bounds this process's offset
(table time minus local time) to [D - t1, D + 1 - t0]; reads timed to land on the table's
second tick (`next_probe`) narrow that interval, so a dozen or two probes, in one to three
seconds, measure the offset to 10 ms when round trips are short (to a round trip otherwise). The budget then runs on
`local + offset`, and asks the deployment for a margin wide enough for what is still
unknown (`uncertainty`).

A Lambda's clock is kept by AWS's time sync and is trusted without probing (cold starts must
stay fast); each ordinary state read still checks it, and one found off by more than
TRUSTED_CLOCK_DISTRUSTED_BEYOND_SECONDS is probed like any other. What earlier answers said is
widened by CLOCK_DRIFT_PER_SECOND as it ages, so a drifting clock is followed, not pinned; once
it is twice as uncertain as its last measurement left it, it is measured again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from chalicelib.amo.budget import tuning

log = logging.getLogger(__name__)


class ClockRefused(Exception):
    """This host's clock cannot be used for the shared budget (too far off, or not measurable)."""


class TableClock:
    def __init__(self, local: Callable[[], float], *, trusted: bool):
        self.local = local
        self.trusted = trusted
        self.low, self.high = -math.inf, math.inf  # what the offset may be, from every probe so far
        self.probes = 0
        self.round_trip = 0.0
        self._learned_at = 0.0
        self._settled_to: float | None = None  # the uncertainty its last probing ended with
        self._planned: list[float] = []  # the probes of this round still to send (local times)

    @property
    def offset(self) -> float:
        return 0.0 if self.trusted or not self._measured() else (self.low + self.high) / 2

    @property
    def uncertainty(self) -> float:
        """How far `now()` may be from the table's time, at most."""
        if self.trusted:
            return tuning.TRUSTED_CLOCK_UNCERTAINTY_SECONDS
        return (self.high - self.low) / 2 if self._measured() else math.inf

    def now(self) -> float:
        return self.local() + self.offset

    def settled(self) -> bool:
        """Known well enough to claim slots: trusted, measured to the tolerance (or to a round
        trip, which bounds what probes can tell), or probed enough."""
        good_enough = max(tuning.CLOCK_TOLERANCE_SECONDS, self.round_trip)  # round trips bound the precision
        return self.trusted or (
            self._measured() and (self.uncertainty <= good_enough or self.probes >= tuning.MAX_CLOCK_PROBES)
        )

    def check(self) -> None:
        """Refuse a clock the budget cannot work with, with a message that says what to fix."""
        if not self.settled():
            return
        if abs(self.offset) > tuning.MAX_CLOCK_OFFSET_SECONDS:
            raise ClockRefused(
                f"this host's clock is {self.offset:+.1f}s off DynamoDB's; fix its time sync (NTP) "
                "before it sends to amoCRM through the shared budget"
            )
        if self.uncertainty > tuning.MAX_CLOCK_UNCERTAINTY_SECONDS:
            raise ClockRefused(
                f"this host's clock cannot be checked to {tuning.MAX_CLOCK_UNCERTAINTY_SECONDS:g}s against "
                f"DynamoDB's (round trips of {self.round_trip:.2f}s); run it closer to the table's region"
            )

    def learn(self, sent: float, *, received: float, server_second: int | None, probe: bool = False) -> bool:
        """One answer of the table, timed on the local clock; True when the trusted clock was
        found off (the caller forgets what it planned with it)."""
        if server_second is None:
            return False
        self.probes += probe
        self.round_trip = received - sent
        if self._measured():  # what earlier answers said holds less with time: clocks drift apart
            drift = tuning.CLOCK_DRIFT_PER_SECOND * max(0.0, received - self._learned_at)
            self.low, self.high = self.low - drift, self.high + drift
        self._learned_at = received
        low, high = server_second - received, server_second + 1 - sent
        if low > self.high or high < self.low:  # the local clock was stepped meanwhile: start again
            self.low, self.high = low, high
        else:
            self.low, self.high = max(self.low, low), min(self.high, high)
        if not self.trusted and self.settled():
            if self._settled_to is None:
                self._settled_to = self.uncertainty
            elif self.uncertainty > 2 * max(self._settled_to, tuning.CLOCK_TOLERANCE_SECONDS):
                self.probes, self._settled_to = 0, None  # drifted: measure again before the next claim
        tolerance = tuning.TRUSTED_CLOCK_DISTRUSTED_BEYOND_SECONDS
        if self.trusted and (self.low > tolerance or self.high < -tolerance):
            log.warning(
                "this host's clock is off DynamoDB's by at least %.3fs: measuring it before using the shared budget",
                self.low if self.low > 0 else -self.high,
            )
            self.trusted, self.probes = False, 0
            return True
        return False

    def next_probe(self, local_now: float) -> float:
        """When to send the next probe (local time). Probes go in rounds: a round is planned on
        what the offset may be when it starts, with one probe for each of up to
        CLOCK_PROBE_SPLITS points evenly inside it, each timed to reach the table as the table's
        second ticks were the offset that point; their answers leave what lies between two
        neighbouring points (and a round trip). The points of a round are all tried within a
        second; points closer than a few round trips teach nothing new, so late rounds halve."""
        if not self._measured():
            return local_now
        self._planned = [moment for moment in self._planned if moment >= local_now]
        if not self._planned:
            width, half_trip = self.high - self.low, self.round_trip / 2
            splits = max(1, min(tuning.CLOCK_PROBE_SPLITS, int(width / (6 * half_trip + 0.001)) - 1))
            points = (self.low + width * j / (splits + 1) for j in range(1, splits + 1))
            self._planned = sorted(math.ceil(local_now + half_trip + p) - p - half_trip for p in points)
        return self._planned.pop(0)

    def describe(self) -> dict:
        return {
            "clock": "trusted (AWS time sync)" if self.trusted else "measured against DynamoDB's",
            "clockOffsetSeconds": round(self.offset, 4),
            "clockUncertaintySeconds": round(self.uncertainty, 4) if math.isfinite(self.uncertainty) else None,
        }

    def _measured(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)
