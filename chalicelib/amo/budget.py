"""One amoCRM request budget for the whole deployment: every Lambda, CLI run and local process.

amoCRM limits the integration, not a process (reference §3.4, §13), so request starts are
admitted through shared time slots kept in a small table (`BudgetStore`):

- Time is cut into blocks of `rate` slots. A block lasts `(1 + margin)` seconds, so the slots
  are `(1 + margin) / rate` apart and any rolling second holds at most `rate` slot starts. A
  slot is used at most TOLERANCE after its start, so `rate + 1` consecutive starts span at
  least `1 + margin - TOLERANCE` seconds: with the default margin of 0.08 s, 60 ms are left
  for jitter on the way to amoCRM and clock skew between hosts (Lambda's clocks are
  NTP-synced to well under a millisecond); AMO_RATE_MARGIN_SECONDS sets it. The margin is
  what the fleet gives up (7 per 1.08 s is 6.48 requests/s); BENCHMARKS.md §6 compares
  margins: 0.05 drew a 429 under a loaded machine, and how close a run came to one shows in
  the sandbox's tightest span of 8 consecutive starts.
- A slot is used by exactly one process: a process claims slots by adding to the block's
  counter (one atomic update hands out several consecutive slots, so the common case pays
  well under one table call per request) and sends each request at its slot's start. A slot
  whose start passed more than TOLERANCE ago is dropped, never used late.
- Nobody claims further ahead than HORIZON, so a process that dies holding slots wastes at
  most that much of the budget; nothing waits for it.
- Fair share: two of every seven slot positions are reserved. While interactive work (API
  routes, webhooks) is waiting, a sync (`bulk` lane) may not take them, so it uses at most
  five of seven; interactive work takes them first and then competes for the rest, so a
  slow sync leaves nothing unused. Each lane announces itself in the shared state for a few
  seconds at a time.
- One pause for everyone: a 429 with Retry-After, or amoCRM's HTML 403 block, is written to
  the shared state; every process honours it from its next claim on (state read at most
  STATE_TTL before),
  and a caller that would wait longer than MAX_WAIT_SECONDS gets the error at once.
- When the table cannot be reached, the process falls back to its own conservative pace
  (`fallback`, a quarter of the rate) for FALLBACK_SECONDS, then tries the table again.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from chalicelib.amo.budget_slots import (
    BudgetState,
    BudgetStore,
    BudgetUnavailable,
    SlotPlan,
)
from chalicelib.amo.ratelimit import BULK, INTERACTIVE, RateLimiter, refuse_long_wait

log = logging.getLogger(__name__)

TOLERANCE = 0.02  # a slot may be used this late
HANDOFF = 0.004  # a due slot waits this long for the caller whose turn it is
EARLY = 0.002  # a caller wakes this much before its slot and then waits out the rest in short sleeps
CLAIM_LEAD = 0.01  # slots this close are not worth claiming (the claim itself takes time) …
MAX_LEAD = 0.1  # … and the lead grows with how long claims actually take, up to this
HORIZON = 1.2  # never claim slots further ahead than this
BULK_HORIZON = 0.4  # a sync claims only what it is about to use, so interactive work can slot in
MAX_CLAIM = 4
STATE_TTL = 1.0
LANE_SIGNAL_SECONDS = 3.0
FALLBACK_SECONDS = 10.0
SLOT_TTL_SECONDS = 3600


class SharedBudget:
    def __init__(
        self,
        store: BudgetStore,
        rate: float,
        *,
        margin: float = 0.08,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        fallback: RateLimiter | None = None,
    ):
        self.store = store
        self.plan = SlotPlan(rate, margin)
        self.interval = self.plan.width
        self._clock = clock
        self._sleep = sleep
        self._fallback = fallback or RateLimiter(max(1.0, rate / 4))
        self._lock = threading.Lock()
        self._granted: list[float] = []  # a heap of claimed slot start times
        self._queue: list[tuple[int, int]] = []  # waiting callers: (0 interactive | 1 bulk, arrival)
        self._tickets = itertools.count()
        self._claiming = False
        self._next_claim_at = 0.0  # while everything up to the horizon is taken
        self._full: set[tuple[int, str]] = set()  # (block, counter) pairs known to be handed out
        self._seen: dict[tuple[int, str], int] = {}  # the highest value this process saw each counter at
        self._state = BudgetState()
        self._state_read_at = -math.inf
        self._store_down_until = 0.0
        self._lead = CLAIM_LEAD
        self._lone = False
        self.store_calls = 0

    # -- the Limiter protocol ---------------------------------------------------------------------

    def acquire(self, lane: str = INTERACTIVE) -> float:
        with self._lock:
            ticket = (0 if lane == INTERACTIVE else 1, next(self._tickets))
            bisect.insort(self._queue, ticket)
        try:
            while True:
                now = self._clock()
                if now < self._store_down_until:
                    return self._fallback.acquire(lane)
                self._honour_pause(now)
                sent, wait = self._take_or_claim(ticket, lane, now)
                if sent is not None:
                    return sent
                if wait > 0:
                    self._sleep(wait)
        finally:
            with self._lock:
                self._queue.remove(ticket)

    def pause(self, seconds: float) -> None:
        until = self._clock() + seconds
        self._drop_slots_before(until)
        self._fallback.pause(seconds)
        self._store_call(lambda: self.store.pause(until))
        self._learn(replace(self._state, paused_until=max(self._state.paused_until, until)))

    def block(self, seconds: float) -> None:
        now = self._clock()
        until = now + seconds
        self._drop_slots_before(until)
        self._fallback.block(seconds)
        if self._store_call(lambda: self.store.block(until, now)):
            log.error(
                "amoCRM blocked this integration (HTML 403 on every call); nothing is sent until %s",
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until)),
            )
        self._learn(replace(self._state, blocked_until=max(self._state.blocked_until, until)))

    def _learn(self, state: BudgetState) -> None:
        """What this process just told the table holds here at once; the rest is read again at
        the next claim."""
        self._state = state
        self._state_read_at = min(self._state_read_at, self._clock() - STATE_TTL)

    def describe(self) -> dict:
        state = self._fresh_state(self._clock())
        shared = self._clock() >= self._store_down_until
        return {
            "mode": "shared by the deployment" if shared else "this process only (budget table unreachable)",
            "ratePerSecond": self.plan.per_block,
            "pausedUntil": _iso(state.paused_until),
            "blockedUntil": _iso(state.blocked_until),
            "blockedCount": state.blocked_count,
        }

    # -- slots ------------------------------------------------------------------------------------

    def _take_or_claim(self, ticket: tuple[int, int], lane: str, now: float) -> tuple[float | None, float]:
        """(send time, 0) when a slot is due for this caller; else (None, seconds to wait), after
        claiming slots for everyone waiting or not. A due slot goes to the caller that has
        waited longest (interactive callers first); if that one is a moment late, to anyone."""
        with self._lock:
            while self._granted and self._granted[0] < now - TOLERANCE:
                heapq.heappop(self._granted)  # woke too late for it: never send in someone else's slot
            # the first claim's slots wait until the shared state (a pause, a block) has been read
            due = self._granted[0] if self._granted and self._state_read_at > -math.inf else None
            first = self._queue[0] == ticket
            if due is not None and (due <= now if first else due + HANDOFF <= now):
                heapq.heappop(self._granted)
                return now, 0.0
            if first and due is not None and due - now < self._lead:
                # its slot is nearer than a claim takes: claiming now would make it miss the slot
                return None, max(0.0005, due - now - EARLY)
            waiting = len(self._queue)
            interactive = self._queue[0][0] == 0
            # a sync keeps one slot in hand, so it claims the next ones before the last is due
            need = waiting + (0 if interactive else 1) - len(self._granted)
            if self._state_read_at == -math.inf:
                need = max(need, 1)  # the state is read after a claim: one must happen
            if need <= 0 or self._claiming or now < self._next_claim_at:
                if due is not None and due > now:
                    return None, max(0.0005, due - now - EARLY if first else due + HANDOFF - now)
                return None, min(max(self._next_claim_at - now, 0.002), 0.25)
            self._claiming = True
            lane = INTERACTIVE if interactive else lane
        slots: list[float] = []
        try:
            slots = self._claim(lane, self._claim_size(lane, need, waiting), now)
        except BudgetUnavailable:
            self._fall_back()
        finally:
            with self._lock:
                for slot in slots:
                    heapq.heappush(self._granted, slot)
        try:  # the shared state, read after the claim: its slots are already usable meanwhile
            self._refresh_state(lane, self._clock())
        except BudgetUnavailable:
            self._fall_back()
        finally:
            with self._lock:
                self._claiming = False
        return None, 0.0

    @staticmethod
    def _claim_size(lane: str, need: int, waiting: int) -> int:
        """Several waiting callers claim for all of them at once, and a sync one more (it always
        has more to ask), so the table is called once per several requests; a lone interactive
        request claims just its own slot, so nothing is wasted."""
        ahead = waiting + 1 if lane == BULK else max(1, waiting)
        return max(1, min(MAX_CLAIM, max(need, ahead)))

    def _claim(self, lane: str, need: int, now: float) -> list[float]:
        # The first claim goes out before the shared state is read (one table call less before a
        # process's first request; its slots are not used until the state is known), so it does
        # not know which lanes are busy yet: at most MAX_CLAIM slots are taken without that.
        state = self._state
        bulk_running, interactive_waiting = state.bulk_until > now, state.interactive_until > now
        if lane == BULK and interactive_waiting:
            kinds = ["g"]  # the reserved positions stay free for the work that is waiting
        else:
            kinds = ["p", "g"] if lane == INTERACTIVE and bulk_running else ["g", "p"]
        reserved_first = lane == INTERACTIVE and bulk_running
        self._lone = need == 1
        horizon = BULK_HORIZON if lane == BULK else HORIZON
        slots: list[float] = []
        block = self.plan.block_at(now + self._lead)
        while len(slots) < need and block * self.plan.block_seconds <= now + horizon:
            open_kinds = [k for k in kinds if (block, k) not in self._full]
            if open_kinds:
                slots += self._claim_in_block(block, open_kinds, need - len(slots), now, now + horizon, reserved_first)
            block += 1
        if len(slots) < need:  # everything up to the horizon is taken: look again a slot later
            self._next_claim_at = now + self.plan.width
        self._full = {(b, k) for b, k in self._full if (b + 1) * self.plan.block_seconds > now}
        self._seen = {(b, k): n for (b, k), n in self._seen.items() if (b + 1) * self.plan.block_seconds > now}
        return slots

    def _split(
        self, block: int, kinds: list[str], want: int, now: float, until: float, reserved_first: bool
    ) -> dict[str, tuple[int, int]]:
        """How many slots of each kind to ask for in one update, and where each counter starts
        if the block is new. Normally the `want` earliest positions still open (as far as this
        process has seen the counters), so one process's slots follow each other without gaps;
        an interactive claim during a sync asks for one of each kind and keeps the later."""
        firsts = {k: self.plan.first_index(block, k, now + self._lead) for k in kinds}
        ends = {k: self.plan.first_index(block, k, until + 1e-9) for k in kinds}
        starts = {k: max(firsts[k], self._seen.get((block, k), 0)) for k in kinds}
        left = {k: ends[k] - starts[k] for k in kinds if ends[k] > starts[k]}
        if reserved_first:  # interactive during a sync: see `_shares`
            return self._shares(block, firsts, starts, left, want, now)
        upcoming = sorted((self.plan.start(block, k, i), k) for k in left for i in range(starts[k], ends[k]))
        counts: dict[str, int] = {}
        for _, kind in upcoming[:want]:
            counts[kind] = counts.get(kind, 0) + 1
        return {k: (n, firsts[k]) for k, n in counts.items()}

    def _shares(
        self, block: int, firsts: dict[str, int], starts: dict[str, int], left: dict[str, int], want: int, now: float
    ) -> dict[str, tuple[int, int]]:
        """Interactive work while a sync runs: the reserved positions first, then the general
        ones in turn with the sync (nothing is left unused when the sync asks less than 5 of 7);
        a lone caller asks for one of each and keeps the later slot for its next request."""
        asks = {"p": min(want, left.get("p", 0))}
        if "g" in left:
            asks["g"] = min(left["g"], 1 if self._lone else want - asks["p"])
        return {k: (n, firsts[k]) for k, n in asks.items() if n}

    def _claim_in_block(
        self, block: int, kinds: list[str], want: int, now: float, until: float, reserved_first: bool
    ) -> list[float]:
        """Slots of one block, before `until`, in one table update; again while the counters lag
        behind the clock."""
        got: list[float] = []
        for _ in range(3):
            asks = self._split(block, kinds, want - len(got), self._clock(), until, reserved_first)
            if not asks:
                break
            asked = self._clock()
            afters = self.store.claim(block, asks, now + SLOT_TTL_SECONDS)
            self.store_calls += 1
            took = self._clock() - asked  # the lead: slots closer than about two claims are not asked for
            self._lead = min(MAX_LEAD, max(CLAIM_LEAD, 0.7 * self._lead + 0.3 * 2 * took))
            fresh = self._clock() - TOLERANCE
            lagged = False
            for kind, (count, _) in asks.items():
                positions = len(self.plan.positions[kind])
                after = afters[kind]
                self._seen[(block, kind)] = after
                mine = [self.plan.start(block, kind, i) for i in range(max(0, after - count), min(after, positions))]
                usable = [t for t in mine if t >= fresh]
                got += usable
                lagged = lagged or len(usable) < len(mine)
                if after >= positions:
                    self._full.add((block, kind))
            kinds = [k for k in kinds if (block, k) not in self._full]
            if not lagged or len(got) >= want or not kinds:
                break
        return got

    def _refresh_state(self, lane: str, now: float) -> None:
        if lane == BULK and now - self._state_read_at >= STATE_TTL and now >= self._store_down_until:
            # a sync announces itself every second instead of reading the state: the write answers
            # with the whole state (one call a second, where a read plus a signal every other
            # second took one and a half)
            self._state = self.store.signal(lane, now + LANE_SIGNAL_SECONDS)
            self._state_read_at = now
            self.store_calls += 1
            return
        self._announce(lane, self._fresh_state(now), now)

    def _announce(self, lane: str, state: BudgetState, now: float) -> BudgetState:
        """Keep this lane's announcement fresh, so the other lane shares fairly; the write
        answers with the whole state, which is then as fresh as it gets."""
        current = state.bulk_until if lane == BULK else state.interactive_until
        others_matter = lane == BULK or state.bulk_until > now
        if not others_matter or current >= now + LANE_SIGNAL_SECONDS / 3 or now < self._store_down_until:
            return state
        self._state = self.store.signal(lane, now + LANE_SIGNAL_SECONDS)
        self._state_read_at = now
        self.store_calls += 1
        return self._state

    def _drop_slots_before(self, until: float) -> None:
        with self._lock:
            self._granted = [t for t in self._granted if t >= until]
            heapq.heapify(self._granted)

    # -- shared state -------------------------------------------------------------------------------

    def _fresh_state(self, now: float) -> BudgetState:
        if now - self._state_read_at >= STATE_TTL and now >= self._store_down_until:
            try:
                self._state = self.store.state()
                self.store_calls += 1
            except BudgetUnavailable:
                self._fall_back()
            self._state_read_at = now
        return self._state

    def _honour_pause(self, now: float) -> None:
        """The pause the shared state knows of (read when claiming, at most STATE_TTL old)."""
        state = self._state
        until = max(state.paused_until, state.blocked_until)
        if until > now:
            refuse_long_wait(until, now, blocked=state.blocked_until > now)
            self._sleep(until - now)

    def _store_call(self, call: Callable[[], object]) -> object:
        try:
            return call()
        except BudgetUnavailable:
            self._fall_back()
            return None

    def _fall_back(self) -> None:
        if self._clock() >= self._store_down_until:
            log.warning(
                "the shared amoCRM budget cannot be reached; this process paces itself at %.2g requests/s for %ds",
                1.0 / self._fallback.interval,
                FALLBACK_SECONDS,
            )
        self._store_down_until = self._clock() + FALLBACK_SECONDS


def _iso(timestamp: float) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp)) if timestamp > time.time() else None
