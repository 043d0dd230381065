"""One amoCRM request budget for the whole deployment: every Lambda, CLI run and local process.

amoCRM limits the integration, not a process (reference §3.4, §13), so request starts are
admitted through shared time slots kept in a small table (`BudgetStore`). Where the slots lie,
and why no rolling second of `1 + margin` seconds holds more than `rate` of them, is slots.py.

- A slot is used by exactly one process: a process claims slots by adding to the block's
  counter (one atomic update hands out several consecutive slots, so the common case pays
  well under one table call per request) and sends each request at its slot's start. A slot
  whose start passed more than SLOT_LATENESS_ALLOWED_SECONDS ago is dropped, never used late.
- Nobody claims further ahead than CLAIM_HORIZON_SECONDS, so a process that dies holding
  slots wastes at most that much of the budget; nothing waits for it.
- Fair share: two of every seven slot positions are reserved. While interactive work (API
  routes, webhooks) is waiting, a sync (`bulk` lane) may not take them, so it uses at most
  five of seven; interactive work takes them first and then competes for the rest, so a
  slow sync leaves nothing unused. Each lane announces itself in the shared state for a few
  seconds at a time.
- One pause for everyone: the cool-down after 429s, or amoCRM's HTML 403 block, is written
  to the shared state; every process honours it from its next claim on (state read at most
  STATE_MAX_AGE_SECONDS before), and a caller that would wait longer than MAX_WAIT_SECONDS
  gets the error at once (control.py).
- One time for everyone: slots are moments on the table's clock, which this process measures
  its own against (clock.py); one margin for everyone, the largest asked (control.py).
- When the table cannot be reached, the process refuses bulk work and paces interactive calls
  at its share of a fleet of `fallback_processes` for FALLBACK_SECONDS_BEFORE_RETRYING_TABLE,
  then tries the table again (control.py).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
import time
from collections.abc import Callable

from chalicelib.amo.budget import tuning
from chalicelib.amo.budget.clock import TableClock
from chalicelib.amo.budget.control import BudgetControl
from chalicelib.amo.budget.local import BULK, INTERACTIVE
from chalicelib.amo.budget.slots import GENERAL, RESERVED, BudgetStore, BudgetUnavailable

_INTERACTIVE_RANK, _BULK_RANK = 0, 1  # waiting callers queue as (rank, arrival): interactive ones first


class SharedBudget:
    def __init__(
        self,
        store: BudgetStore,
        *,
        rate: float,
        margin: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        trusted_clock: bool = False,
        who: str = "a process",
        fallback_processes: int = 7,
    ):
        self.store = store
        self.clock = TableClock(clock, trusted=trusted_clock)
        self.control = BudgetControl(
            store,
            rate=rate,
            margin=margin,
            clock=self.clock,
            sleep=sleep,
            who=who,
            fallback_processes=fallback_processes,
        )
        self._clock = self.clock.now
        self._sleep = sleep
        self._lock = threading.Lock()
        self._granted: list[float] = []  # a heap of claimed slot start times
        self._queue: list[tuple[int, int]] = []  # waiting callers: (rank, arrival)
        self._tickets = itertools.count()
        self._claiming = False
        self._next_claim_at = 0.0  # while everything up to the horizon is taken
        self._full: set[tuple[int, str]] = set()  # (block, counter) pairs known to be handed out
        self._seen: dict[tuple[int, str], int] = {}  # the highest value this process saw each counter at
        self._lead = tuning.MIN_CLAIM_LEAD_SECONDS
        self._claiming_for_one = False
        self._calibrating = False

    @property
    def plan(self):  # the deployment's schedule of slots, as this process knows it
        return self.control.schedule

    @property
    def interval(self) -> float:
        return self.plan.width

    @property
    def store_calls(self) -> int:
        return self.control.calls

    # -- the Limiter protocol ---------------------------------------------------------------------

    def acquire(self, lane: str = INTERACTIVE) -> float:
        with self._lock:
            ticket = (_INTERACTIVE_RANK if lane == INTERACTIVE else _BULK_RANK, next(self._tickets))
            bisect.insort(self._queue, ticket)
        try:
            while True:
                if self.control.down():
                    sent = self.control.fallback_acquire(lane)
                    if sent is not None:
                        return sent
                    continue
                if not self.clock.settled():
                    self._calibrate()
                    continue
                now = self._clock()
                if now < self.control.resume_at:  # just back from a fallback: its sends are a second past
                    self._sleep(self.control.resume_at - now)
                    continue
                self.control.honour(now)
                sent, wait = self._take_or_claim(ticket, lane, now)
                if sent is not None:
                    self.control.sending()
                    return sent
                if wait > 0:
                    self._sleep(wait)
        finally:
            with self._lock:
                self._queue.remove(ticket)

    def rate_limited(self, retry_after: float | None) -> None:
        self.control.rate_limited(retry_after)
        self._drop_slots_before(self.control.state.paused_until)

    def succeeded(self) -> None:
        self.control.succeeded()

    def claim_ahead(self, lane: str = INTERACTIVE) -> None:
        """Claim slots and know the state before a caller asks (a sync, while it writes its lease).
        The state is read first (a sync's lane announcement answers with it), so the slots lie on
        the deployment's schedule, not on the configured margin, where a state showing another dropped them."""
        with self._lock:
            if self._granted or not self._may_claim_now(1, self._clock()):
                return
            self._claiming = True
        handed_on = False  # once _claim_then_read_state runs, it clears the flag
        try:
            if not self.control.known():
                self._refresh_state(lane, self._clock())
                with self._lock:
                    self._forget_other_schedules()  # nothing is in hand yet: only the flag is cleared
            if not self.control.down():  # else the fallback paces this process: no claim
                handed_on = True
                self._claim_then_read_state(lane, tuning.MAX_SLOTS_PER_CLAIM, self._clock())
        except BudgetUnavailable:
            self.control.fall_back()
        finally:
            if not handed_on:  # whatever was raised, the process's claims go on
                with self._lock:
                    self._claiming = False

    def block(self, seconds: float) -> None:
        self.control.blocked(seconds)
        self._drop_slots_before(self.control.state.blocked_until)

    def describe(self) -> dict:
        return self.control.describe()

    def _calibrate(self) -> None:
        """Probe the table's clock (one caller of this process at a time; the others wait)."""
        with self._lock:
            mine, self._calibrating = not self._calibrating, True
        if not mine:
            self._sleep(tuning.LONGEST_IDLE_WAIT_SECONDS / 5)
            return
        try:
            self.control.calibrate()
        finally:
            with self._lock:
                self._calibrating = False

    # -- taking a slot --------------------------------------------------------------------------

    def _take_or_claim(self, ticket: tuple[int, int], lane: str, now: float) -> tuple[float | None, float]:
        """(send time, 0) when a slot is due for this caller; else (None, seconds to wait), after
        claiming slots for everyone waiting or not. A due slot goes to the caller that has
        waited longest (interactive callers first); if that one is a moment late, to anyone."""
        with self._lock:
            self._forget_other_schedules()
            self._drop_missed_slots(now)
            due, my_turn = self._due_slot(), self._is_my_turn(ticket)
            if due is not None and self._may_send_in(due, my_turn, now):
                heapq.heappop(self._granted)
                return now, 0.0
            if my_turn and due is not None and self._slot_too_close_to_claim(due, now):
                return None, self._wait_for_slot(due, my_turn, now)  # send first, claim afterwards
            waiting, needed = len(self._queue), self._slots_needed()
            if not self._may_claim_now(needed, now):
                if due is not None and due > now:
                    return None, self._wait_for_slot(due, my_turn, now)
                return None, self._idle_wait(now)
            self._claiming = True
            lane = INTERACTIVE if self._interactive_first_in_line() else lane
        self._claim_then_read_state(lane, self._claim_size(lane, needed, waiting), now)
        return None, 0.0

    def _forget_other_schedules(self) -> None:
        """Slots planned on a schedule or a clock that has changed since are not used; the next
        claim goes at once (how much room the horizon had was judged on the old schedule too)."""
        if self.control.schedule_changed:
            self.control.schedule_changed = False
            self._granted, self._full, self._seen = [], set(), {}
            self._next_claim_at = 0.0

    def _drop_missed_slots(self, now: float) -> None:
        """Slots this process woke too late for: never send in someone else's slot."""
        while self._granted and self._granted[0] < now - tuning.SLOT_LATENESS_ALLOWED_SECONDS:
            heapq.heappop(self._granted)

    def _due_slot(self) -> float | None:
        """The earliest slot in hand; none until the shared state (a pause, a block) has been read,
        so the slots of a process's first claim wait for it."""
        return self._granted[0] if self._granted and self.control.known() else None

    def _is_my_turn(self, ticket: tuple[int, int]) -> bool:
        return self._queue[0] == ticket

    def _interactive_first_in_line(self) -> bool:
        return self._queue[0][0] == _INTERACTIVE_RANK

    @staticmethod
    def _may_send_in(due: float, my_turn: bool, now: float) -> bool:
        """The caller whose turn it is sends once the slot starts; anyone else once that caller is late."""
        return due <= now if my_turn else due + tuning.TURN_HANDOFF_SECONDS <= now

    def _slot_too_close_to_claim(self, due: float, now: float) -> bool:
        """The slot is nearer than a claim takes: claiming now would make its caller miss it."""
        return due - now < self._lead

    def _slots_needed(self) -> int:
        """One slot per waiting caller, less those in hand; a sync keeps one more in hand, so it
        claims the next ones before the last is due."""
        needed = len(self._queue) + (0 if self._interactive_first_in_line() else 1) - len(self._granted)
        if not self.control.known():
            needed = max(needed, 1)  # the state is read after a claim: one must happen
        return needed

    def _may_claim_now(self, needed: int, now: float) -> bool:
        """Slots are missing, no other caller of this process is claiming, and the horizon had room."""
        return needed > 0 and not self._claiming and now >= self._next_claim_at

    @staticmethod
    def _wait_for_slot(due: float, my_turn: bool, now: float) -> float:
        """Until just before the slot (whose turn it is), or until it may go to anyone (the others)."""
        return max(
            tuning.SHORTEST_SLEEP_SECONDS,
            due - now - tuning.WAKE_EARLY_SECONDS if my_turn else due + tuning.TURN_HANDOFF_SECONDS - now,
        )

    def _idle_wait(self, now: float) -> float:
        """No slot in hand and none to claim yet: look again soon, or once the horizon has room."""
        return min(max(self._next_claim_at - now, tuning.SHORTEST_IDLE_WAIT_SECONDS), tuning.LONGEST_IDLE_WAIT_SECONDS)

    def _drop_slots_before(self, until: float) -> None:
        with self._lock:
            self._granted = [start for start in self._granted if start >= until]
            heapq.heapify(self._granted)

    # -- claiming slots -------------------------------------------------------------------------

    def _claim_then_read_state(self, lane: str, count: int, now: float) -> None:
        """Claim `count` slots for the callers waiting, then read the shared state; outside the
        lock (both are table calls), by one caller of this process at a time. Whatever either
        raises, the claiming flag is cleared: a flag left set would stall every later request."""
        slots: list[float] = []
        try:
            try:
                slots = self._claim(lane, count, now)
            except BudgetUnavailable:
                self.control.fall_back()
            finally:
                with self._lock:
                    for slot in slots:
                        heapq.heappush(self._granted, slot)
            try:  # the shared state, read after the claim: its slots are already usable meanwhile
                self._refresh_state(lane, self._clock())
            except BudgetUnavailable:
                self.control.fall_back()
        finally:
            with self._lock:
                self._claiming = False

    @staticmethod
    def _claim_size(lane: str, needed: int, waiting: int) -> int:
        """Several waiting callers claim for all of them at once, and a sync one more (it always
        has more to ask), so the table is called once per several requests; a lone interactive
        request claims just its own slot, so nothing is wasted."""
        ahead = waiting + 1 if lane == BULK else max(1, waiting)
        return max(1, min(tuning.MAX_SLOTS_PER_CLAIM, max(needed, ahead)))

    def _claim(self, lane: str, count: int, now: float) -> list[float]:
        # The first claim goes out before the shared state is read (one table call less before a
        # process's first request; its slots are not used until the state is known), so it does
        # not know which lanes are busy yet: at most MAX_SLOTS_PER_CLAIM slots are taken without that.
        counters, reserved_first = self._counters_to_claim(lane, now)
        self._claiming_for_one = count == 1
        horizon = tuning.BULK_CLAIM_HORIZON_SECONDS if lane == BULK else tuning.CLAIM_HORIZON_SECONDS
        slots: list[float] = []
        block = self.plan.block_at(now + self._lead)
        while len(slots) < count and self.plan.block_start(block) <= now + horizon:
            open_counters = [counter for counter in counters if (block, counter) not in self._full]
            if open_counters:
                slots += self._claim_in_block(
                    block,
                    counters=open_counters,
                    want=count - len(slots),
                    now=now,
                    until=now + horizon,
                    reserved_first=reserved_first,
                )
            block += 1
        if len(slots) < count:  # everything up to the horizon is taken: look again a slot later
            self._next_claim_at = now + self.plan.width
        self._forget_past_blocks(now)
        return slots

    def _counters_to_claim(self, lane: str, now: float) -> tuple[list[str], bool]:
        """The counters to claim from, in order, and whether this is interactive work during a
        sync (which asks for the reserved positions first, see `_shares`)."""
        state = self.control.state
        bulk_announced, interactive_announced = state.bulk_until > now, state.interactive_until > now
        if lane == BULK and interactive_announced:
            return [GENERAL], False  # the reserved positions stay free for the work that is waiting
        if lane == INTERACTIVE and bulk_announced:
            return [RESERVED, GENERAL], True
        return [GENERAL, RESERVED], False

    def _forget_past_blocks(self, now: float) -> None:
        def current(block: int) -> bool:
            return self.plan.block_start(block + 1) > now

        self._full = {(block, counter) for block, counter in self._full if current(block)}
        self._seen = {key: seen for key, seen in self._seen.items() if current(key[0])}

    def _split(
        self, block: int, *, counters: list[str], want: int, now: float, until: float, reserved_first: bool
    ) -> dict[str, tuple[int, int]]:
        """How many slots of each counter to ask for in one update, and where each counter starts
        if the block is new. Normally the `want` earliest positions still open (as far as this
        process has seen the counters), so one process's slots follow each other without gaps;
        an interactive claim during a sync asks for one of each counter and keeps the later."""
        firsts = {counter: self.plan.first_index(block, counter, now + self._lead) for counter in counters}
        ends = {counter: self.plan.first_index(block, counter, until + 1e-9) for counter in counters}
        starts = {counter: max(firsts[counter], self._seen.get((block, counter), 0)) for counter in counters}
        left = {counter: ends[counter] - starts[counter] for counter in counters if ends[counter] > starts[counter]}
        if reserved_first:  # interactive during a sync: see `_shares`
            return self._shares(firsts, left, want)
        upcoming = sorted(
            (self.plan.start(block, counter, i), counter)
            for counter in left
            for i in range(starts[counter], ends[counter])
        )
        counts: dict[str, int] = {}
        for _, counter in upcoming[:want]:
            counts[counter] = counts.get(counter, 0) + 1
        return {counter: (count, firsts[counter]) for counter, count in counts.items()}

    def _shares(self, firsts: dict[str, int], left: dict[str, int], want: int) -> dict[str, tuple[int, int]]:
        """Interactive work while a sync runs: the reserved positions first, then the general
        ones in turn with the sync (nothing is left unused when the sync asks less than 5 of 7);
        a lone caller asks for one of each and keeps the later slot for its next request."""
        asks = {RESERVED: min(want, left.get(RESERVED, 0))}
        if GENERAL in left:
            asks[GENERAL] = min(left[GENERAL], 1 if self._claiming_for_one else want - asks[RESERVED])
        return {counter: (count, firsts[counter]) for counter, count in asks.items() if count}

    def _claim_in_block(
        self, block: int, *, counters: list[str], want: int, now: float, until: float, reserved_first: bool
    ) -> list[float]:
        """Slots of one block, before `until`, in one table update; again while the counters lag
        behind the clock."""
        got: list[float] = []
        for _ in range(tuning.CLAIM_TRIES_PER_BLOCK):
            asks = self._split(
                block,
                counters=counters,
                want=want - len(got),
                now=self._clock(),
                until=until,
                reserved_first=reserved_first,
            )
            if not asks:
                break
            asked_at = self._clock()
            self.control.calls += 1
            counts_after = self.store.claim(block, asks, now + tuning.BLOCK_ITEM_EXPIRY_SECONDS)
            self._learn_claim_time(self._clock() - asked_at)
            earliest_usable = self._clock() - tuning.SLOT_LATENESS_ALLOWED_SECONDS
            lagged = False
            for counter, (count, _) in asks.items():
                positions = len(self.plan.positions[counter])
                after = counts_after[counter]
                self._seen[(block, counter)] = after
                mine = [self.plan.start(block, counter, i) for i in range(max(0, after - count), min(after, positions))]
                usable = [start for start in mine if start >= earliest_usable]
                got += usable
                lagged = lagged or len(usable) < len(mine)
                if after >= positions:
                    self._full.add((block, counter))
            counters = [counter for counter in counters if (block, counter) not in self._full]
            if not lagged or len(got) >= want or not counters:
                break
        return got

    def _learn_claim_time(self, seconds: float) -> None:
        """The lead follows how long claims take: slots closer than about two claims are not asked for."""
        learned = (
            tuning.CLAIM_LEAD_KEPT * self._lead + tuning.CLAIM_LEAD_LEARNED * tuning.CLAIM_LEAD_IN_CLAIMS * seconds
        )
        self._lead = min(tuning.MAX_CLAIM_LEAD_SECONDS, max(tuning.MIN_CLAIM_LEAD_SECONDS, learned))

    # -- shared state -------------------------------------------------------------------------------

    def _refresh_state(self, lane: str, now: float) -> None:
        control = self.control
        if lane == BULK and control.stale(now):
            # a sync announces itself every second instead of reading the state: the write answers
            # with the whole state (one call a second, where a read plus a signal every other
            # second took one and a half)
            control.calls += 1
            control.take(self.store.signal(lane, now + tuning.LANE_ANNOUNCEMENT_SECONDS), now)
            return
        self._announce(lane, control.fresh(now), now)

    def _announce(self, lane: str, state, now: float) -> None:
        """Keep this lane's announcement fresh, so the other lane shares fairly; the write
        answers with the whole state, which is then as fresh as it gets."""
        current = state.bulk_until if lane == BULK else state.interactive_until
        others_matter = lane == BULK or state.bulk_until > now
        if not others_matter or current >= now + tuning.LANE_ANNOUNCEMENT_RENEW_SECONDS or self.control.down():
            return
        self.control.calls += 1
        self.control.take(self.store.signal(lane, now + tuning.LANE_ANNOUNCEMENT_SECONDS), now)
