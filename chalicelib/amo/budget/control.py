"""The shared budget's state, as one process keeps it: what holds every process back (a pause,
the cool-down after 429s, amoCRM's block), the deployment's margin, this process's clock, and
the fallback when the table cannot be reached. shared.py claims slots; this decides whether
and on what schedule it may.

- A 429 counts one more in the shared streak and pauses everyone for 1, 2, 4 … 60 s (amoCRM
  sends no Retry-After, reference §3.4; one it does send is believed up to 120 s, retry.py);
  SUCCESSES_TO_END_STREAK successes in a row end the streak.
- amoCRM's HTML 403 block is held until someone clears it (`budget clear`) or, every
  BLOCK_PROBE_EVERY_SECONDS, one process wins the probe and sends one request: a success
  lifts the block for everyone, another block page holds it.
- Every pause and block carries a note of who set it, when and why (`budget show`, `status`).
- The margin: each process asks for its own (AMO_RATE_MARGIN_SECONDS plus twice what it does
  not know of its clock beyond what a trusted one may be off); the largest stored wins,
  switched at a future block (slots.py).
- The fallback is fleet-safe: a process that cannot reach the table refuses bulk work (a sync
  stops and continues later) and paces interactive calls at `rate // fallback_processes`
  per `1 + margin` seconds, so that many processes in the same outage stay within the rate.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace

from chalicelib.amo.budget import tuning
from chalicelib.amo.budget.clock import ClockRefused, TableClock
from chalicelib.amo.budget.local import BULK, RateLimiter, refuse_long_wait
from chalicelib.amo.budget.slots import BudgetState, BudgetStore, BudgetUnavailable, Margin, Schedule
from chalicelib.amo.errors import AmoBlocked, AmoUnavailable

log = logging.getLogger(__name__)


class BudgetControl:
    def __init__(
        self,
        store: BudgetStore,
        *,
        rate: float,
        margin: float,
        clock: TableClock,
        sleep: Callable[[float], None],
        who: str,
        fallback_processes: int,
    ):
        self.store = store
        self.rate = rate
        self.configured_margin = margin
        self.clock = clock
        self._sleep = sleep
        self.who = who
        self.state = BudgetState()
        self.read_at = -math.inf  # when the state was last read (the budget's clock)
        self.down_until = -math.inf  # the table failed: fallback until then
        self.resume_at = -math.inf  # after a fallback, shared slots are used from then on
        self.schedule = Schedule(rate, Margin(margin, margin))
        self.schedule_changed = False  # the slots claimed so far were planned on another schedule
        per_window = max(1, int(rate) // max(1, fallback_processes))
        self.fallback = RateLimiter(per_window, margin=margin, clock=clock.local, sleep=sleep)
        self.calls = 0
        self._successes = 0
        self._probe_pass = False  # this process won the probe of the held block: one send passes
        self._probe_in_flight = False

    # -- the table -------------------------------------------------------------------------------

    def down(self) -> bool:
        return self.clock.now() < self.down_until

    def fall_back(self) -> None:
        """The table failed: fall back until the next FALLBACK_SECONDS_BEFORE_RETRYING_TABLE mark
        of the table's time, when every process cut off tries it again at once. The first
        fallback send waits until the slots the others claimed before the outage are past, and
        after the outage no shared slot is used until a full block after the mark, so fallback
        and shared sends never meet in one second."""
        now = self.clock.now()
        if not self.down():
            log.warning(
                "the shared amoCRM budget cannot be reached; this process refuses syncs and paces its own "
                "calls at %.2g requests/s until it tries the table again",
                1.0 / self.fallback.interval,
            )
            # a claim may hand out any slot of a block that starts within the horizon
            claimed_ahead = tuning.CLAIM_HORIZON_SECONDS + self.schedule.after.block_seconds
            self.fallback.pause(claimed_ahead + tuning.SLOT_LATENESS_ALLOWED_SECONDS)
        period = tuning.FALLBACK_SECONDS_BEFORE_RETRYING_TABLE
        self.down_until = (math.floor(now / period) + 1) * period
        self.resume_at = self.down_until + self.schedule.after.block_seconds

    def fallback_acquire(self, lane: str) -> float | None:
        """A send at this process's fallback pace; None when the fallback ended first."""
        if lane == BULK:
            raise AmoUnavailable(
                "the shared amoCRM budget's table cannot be reached: the sync stops here and continues later"
            )
        return self.fallback.acquire_before(self.down_until - self.clock.offset)

    def call(self, call: Callable[[], object]) -> object:
        try:
            self.calls += 1
            return call()
        except BudgetUnavailable:
            self.fall_back()
            return None

    # -- reading the state -----------------------------------------------------------------------

    def known(self) -> bool:
        return self.read_at > -math.inf

    def stale(self, now: float) -> bool:
        return now - self.read_at >= tuning.STATE_MAX_AGE_SECONDS and not self.down()

    def fresh(self, now: float) -> BudgetState:
        if self.stale(now):
            self.read(probe=False)
        return self.state

    def read(self, *, probe: bool) -> None:
        """Read the state; its answer also checks this process's clock."""
        sent = self.clock.local()
        try:
            state = self.store.state()
        except BudgetUnavailable:
            self.fall_back()
            return
        finally:
            self.calls += 1
        if self.clock.learn(sent, received=self.clock.local(), server_second=state.server_second, probe=probe):
            self.schedule_changed = True
        self.take(state, self.clock.now())

    def take(self, state: BudgetState, now: float) -> None:
        """A state the table answered with: follow its margin, ask for ours."""
        self.state, self.read_at = state, now
        if state.margin is not None:
            self._follow(state.margin)
        if self.clock.settled():
            self._ask_margin(state.margin, now)

    def _follow(self, margin: Margin) -> None:
        if margin != self.schedule.margin:
            self.schedule = Schedule(self.rate, margin)
            self.schedule_changed = True

    def learn(self, state: BudgetState) -> None:
        """What this process just told the table holds here at once; the rest is read again at
        the next claim."""
        self.state = state
        self.read_at = min(self.read_at, self.clock.now() - tuning.STATE_MAX_AGE_SECONDS)

    def calibrate(self) -> None:
        """One probe of the table's clock, timed to halve what is unknown of this one's offset."""
        self._sleep(max(0.0, self.clock.next_probe(self.clock.local()) - self.clock.local()))
        self.read(probe=True)
        self.schedule_changed = True
        try:
            self.clock.check()
        except ClockRefused as refused:
            raise AmoUnavailable(str(refused)) from None

    # -- the margin ------------------------------------------------------------------------------

    def asked_margin(self) -> float:
        """Ours: the configured margin, plus what two clocks may disagree by (ours at its worst)
        beyond what the configured margin already allows a trusted clock: a Lambda's clock runs
        unprobed until it is found TRUSTED_CLOCK_DISTRUSTED_BEYOND_SECONDS off, so a measured clock
        known at least that well asks for no more. (Counted in full, every CLI command, measured
        to about 10 ms, raised the deployment's margin from 0.08 to 0.1 s for good.)"""
        if self.clock.trusted:
            return self.configured_margin
        step = tuning.MARGIN_STEP_SECONDS  # asks in steps, so a clock known a little less asks no new switch
        unknown = max(0.0, min(self.clock.uncertainty, 1.0) - tuning.TRUSTED_CLOCK_DISTRUSTED_BEYOND_SECONDS)
        wanted = self.configured_margin + 2 * unknown
        return round(math.ceil(wanted / step - 1e-9) * step, 4)

    def _ask_margin(self, stored: Margin | None, now: float) -> None:
        asked = self.asked_margin()
        if stored is not None and (asked <= stored.margin or now < stored.since):
            return  # a larger one wins; one change at a time
        if stored is None:
            proposal = Margin(asked, asked)  # a new table: the plan every process starts from
        else:
            block = self.schedule.block_at(now + tuning.MARGIN_SWITCH_LEAD_SECONDS) + 1
            proposal = Margin(asked, stored.margin, self.schedule.block_start(block), block)
        won = self.call(lambda: self.store.propose_margin(proposal, stored))
        if won:
            log.info("the deployment's amoCRM margin is %.3fs from %s on", asked, _iso(proposal.since) or "now")
            self.state = replace(self.state, margin=proposal)
            self._follow(proposal)
        elif won is False:  # another process changed it first: follow theirs now
            self.read(probe=False)

    # -- what holds everyone back ----------------------------------------------------------------

    def honour(self, now: float) -> None:
        """The pause, cool-down or block the shared state knows of (read when claiming, at most
        STATE_MAX_AGE_SECONDS old); the probe of a held block when it is due. A caller held
        back reads the state again first when it is stale: a cleared block frees it at once."""
        state = self.state
        if (state.block_held or max(state.paused_until, state.blocked_until) > now) and self.stale(now):
            self.read(probe=False)
            state = self.state
        if state.block_held and state.blocked_until <= now and not self._probe_pass:
            self._take_block_probe(state, now)
            state = self.state
        # a pause further ahead than any this code sets was not set by it (an unbounded Retry-After
        # of older code): not honoured, and `budget clear` removes it
        paused = state.paused_until if state.paused_until <= now + tuning.LONGEST_PAUSE_SECONDS else 0.0
        until = max(paused, 0.0 if self._probe_pass else state.blocked_until)
        if until > now:
            refuse_long_wait(until, now, blocked=state.blocked_until > now)
            self._sleep(until - now)

    def sending(self) -> None:
        """The caller that passed `honour` sends now: a probe's pass is used up."""
        if self._probe_pass:
            self._probe_pass, self._probe_in_flight = False, True

    def _take_block_probe(self, state: BudgetState, now: float) -> None:
        until = now + tuning.BLOCK_PROBE_EVERY_SECONDS
        if self.call(lambda: self.store.take_block_probe(state.blocked_until, until)):
            log.warning("probing amoCRM's block with one request")
            self._probe_pass = True
        else:
            self.read(probe=False)  # another process probes: its new time holds here
            if self.state.block_held and self.state.blocked_until <= now:
                raise AmoBlocked("amoCRM has blocked this integration (HTML 403); another process is probing", 403)

    def note(self, why: str) -> str:
        return f"{self.who} at {_iso(self.clock.now())}: {why}"

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: one more in the streak, and a cool-down for everyone that doubles with it."""
        now = self.clock.now()
        self._successes = 0
        why = "amoCRM answered 429" + (f" (Retry-After {retry_after:g}s)" if retry_after is not None else "")
        streak = self.call(lambda: self.store.rate_limited(now, self.note(why)))
        streak = streak if isinstance(streak, int) else self.state.streak + 1
        cool = min(tuning.LONGEST_COOL_DOWN_SECONDS, tuning.FIRST_COOL_DOWN_SECONDS * 2 ** (streak - 1))
        seconds = max(cool, retry_after or 0.0)
        note = self.note(f"{why}, {streak} in a row: cooling down {seconds:g}s")
        self.fallback.pause(seconds)
        self.call(lambda: self.store.pause(now + seconds, note))
        self._take_slots_until(now, now + seconds)
        paused_until = max(self.state.paused_until, now + seconds)
        self.learn(replace(self.state, paused_until=paused_until, streak=streak, pause_note=note))

    def _take_slots_until(self, now: float, until: float) -> None:
        """Hand out the slots before `until` of the blocks others may claim in before they read
        the state again (STATE_MAX_AGE_SECONDS, plus how far ahead they claim) to nobody: a
        process that has not read the pause yet finds no slot in it to claim."""
        schedule = self.schedule
        block = schedule.block_at(now)
        expires = now + tuning.BLOCK_ITEM_EXPIRY_SECONDS
        last = min(until, now + tuning.STATE_MAX_AGE_SECONDS + tuning.CLAIM_HORIZON_SECONDS)
        while schedule.block_start(block) < last and not self.down():
            asks = {
                counter: (sum(schedule.start(block, counter, i) < until for i in range(len(positions))), 0)
                for counter, positions in schedule.positions.items()
            }
            self.call(functools.partial(self.store.claim, block, asks, expires))
            block += 1

    def succeeded(self) -> None:
        """amoCRM answered without a 429 or a block page: ends a probe, counts towards a streak's end."""
        if self._probe_in_flight:
            self._probe_in_flight = False
            self.call(self.store.clear_block)
            log.warning("amoCRM's block is lifted: the probe got through")
            self.learn(replace(self.state, block_held=False, blocked_until=0.0))
        if self.state.streak:
            self._successes += 1
            if self._successes >= tuning.SUCCESSES_TO_END_STREAK:
                seen = self.state.streak
                self.call(lambda: self.store.reset_streak(seen))
                self.state, self._successes = replace(self.state, streak=0), 0

    def blocked(self, seconds: float) -> None:
        now = self.clock.now()
        until = now + seconds
        self._probe_pass = self._probe_in_flight = False
        self.fallback.block(seconds)
        blocked = self.call(lambda: self.store.block(until, now, self.note("amoCRM answered its HTML 403 block page")))
        self._take_slots_until(now, until)
        if blocked:
            log.error(
                "amoCRM blocked this integration (HTML 403 on every call); nothing is sent until it is "
                "cleared (`budget clear`) or a probe gets through after %s",
                _iso(until),
            )
        blocked_until = max(self.state.blocked_until, until)
        self.learn(replace(self.state, blocked_until=blocked_until, block_held=True))

    def describe(self) -> dict:
        now = self.clock.now()
        state = self.fresh(now)
        margin = state.margin.margin if state.margin is not None else self.schedule.margin.margin
        return {
            "mode": "this process only (budget table unreachable)" if self.down() else "shared by the deployment",
            "ratePerSecond": self.schedule.per_block,
            "marginSeconds": margin,
            "pausedUntil": _iso(state.paused_until) if state.paused_until > now else None,
            "pausedBy": state.pause_note or None if state.paused_until > now else None,
            "blocked": state.block_held,
            "blockedUntil": _iso(state.blocked_until) if state.block_held else None,
            "blockedBy": state.block_note or None if state.block_held else None,
            "blockedCount": state.blocked_count,
            "rateLimitedInARow": state.streak,
            **self.clock.describe(),
        }


def _iso(timestamp: float) -> str | None:
    if not math.isfinite(timestamp) or not 0 < timestamp < 253402300799:  # year 9999
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
