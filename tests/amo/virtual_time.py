"""Several budget processes on one virtual clock, sharing one moto table (tests/amo/test_budget*.py).

Virtual time only moves when every simulated thread sleeps, so the rolling-second counts are
exact, whatever else the machine is doing. Each process may have its own clock, off the true
(virtual) time by a skew; the table's `Date` header tells the true time.
"""

import math
import threading

from chalicelib.amo.budget import INTERACTIVE, SharedBudget
from chalicelib.services.budget_store import DynamoBudgetStore


class VirtualTime:
    """A clock shared by threads: when all of them sleep, it jumps to the earliest wake-up."""

    def __init__(self, start=2_000_000_000.0):
        self.now = start
        self.cond = threading.Condition()
        self.running = 0
        self.sleeping: dict[int, float] = {}

    def clock(self):
        return self.now

    def sleep(self, seconds):
        with self.cond:
            me = threading.get_ident()
            self.sleeping[me] = self.now + max(seconds, 1e-6)
            self._advance()
            while self.now < self.sleeping[me]:
                self.cond.wait()
            del self.sleeping[me]

    def _advance(self):
        if self.sleeping and len(self.sleeping) == self.running:
            self.now = max(self.now, min(self.sleeping.values()))
            self.cond.notify_all()

    def run(self, *targets):
        """Run the targets as threads on this clock until all have returned."""
        errors = []

        def wrapped(target):
            try:
                target()
            except BaseException as error:  # surfaced to the test below
                errors.append(error)
            finally:
                with self.cond:
                    self.running -= 1
                    self._advance()

        threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
        with self.cond:
            self.running += len(threads)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        if errors:
            raise errors[0]


MARGIN = 0.08  # the default of AMO_RATE_MARGIN_SECONDS


class VirtualDate(DynamoBudgetStore):
    """DynamoDB whose `Date` header tells the virtual time (the true time every clock is off from)."""

    def __init__(self, vt):
        self.vt = vt

    def _server_second(self, answer):
        return math.floor(self.vt.now)


def budget(vt, store=None, rate=7, *, skew=None, margin=MARGIN, fallback_processes=7):
    """A process on the virtual clock; `skew` set: its clock is that far off and not trusted."""
    return SharedBudget(
        store or VirtualDate(vt),
        rate=rate,
        margin=margin,
        clock=vt.clock if skew is None else (lambda: vt.now + skew),
        sleep=vt.sleep,
        trusted_clock=skew is None,
        fallback_processes=fallback_processes,
    )


def max_in_rolling_second(times):
    times = sorted(times)
    return max((sum(1 for t in times if start <= t < start + 1.0) for start in times), default=0)


def sender(limiter, sends, count, lane=INTERACTIVE, vt=None):
    def run():
        for _ in range(count):
            limiter.acquire(lane)
            sends.append(vt.clock())

    return run
