"""The shared budget's two halves that do not move: where a block's slots lie in time
(`SlotPlan`, and `Schedule` across a change of the deployment's margin), and what the budget
needs from its table (`BudgetStore`, kept in services/budget_store.py). The admission logic
that uses them is shared.py.

- Time is cut into blocks of `rate` slots. A block lasts `(1 + margin)` seconds, so the slots
  are `(1 + margin) / rate` apart and any rolling second holds at most `rate` slot starts. A
  slot is used at most SLOT_LATENESS_ALLOWED_SECONDS after its start, so `rate + 1`
  consecutive starts span at least `1 + margin - SLOT_LATENESS_ALLOWED_SECONDS` seconds: with
  the default margin of 0.08 s, 60 ms are left for jitter on the way to amoCRM and clock skew
  between hosts (Lambda's clocks are NTP-synced to well under a millisecond);
  AMO_RATE_MARGIN_SECONDS sets it. The margin is what the fleet gives up (7 per 1.08 s is 6.48
  requests/s); BENCHMARKS.md §6 compares margins: 0.05 drew a 429 under a loaded machine, and
  how close a run came to one shows in the sandbox's tightest span of 8 consecutive starts.
- The margin is one value for the whole deployment, stored with the budget (`Margin`): the
  largest any process asks for wins. A change takes effect at a block boundary at least
  MARGIN_SWITCH_LEAD_SECONDS ahead, later than any process can have claimed under the old
  one without reading the state again, so two plans never share a second (`Schedule`).
- Each block has two counters of slots handed out: `reserved` (RESERVED_SHARE of the
  positions, spread over the block) and `general` (the rest). A counter only grows, so a slot
  is handed out to exactly one process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from chalicelib.amo.budget.tuning import RESERVED_SHARE

RESERVED, GENERAL = "reserved", "general"  # a block's two counters


class BudgetUnavailable(Exception):
    """The budget's table could not be read or written (the store wraps its own errors)."""


@dataclass(frozen=True)
class Margin:
    """The deployment's margin: `before` until `since` (the start of block `block`), then `margin`."""

    margin: float
    before: float
    since: float = 0.0
    block: int = 0


@dataclass(frozen=True)
class BudgetState:
    paused_until: float = 0.0
    blocked_until: float = 0.0
    blocked_count: int = 0
    bulk_until: float = 0.0
    interactive_until: float = 0.0
    block_held: bool = False  # amoCRM's block holds until cleared or a probe gets through
    streak: int = 0  # consecutive 429s: the next cool-down is twice the last
    pause_note: str = ""  # who set the pause, when and why
    block_note: str = ""
    margin: Margin | None = None
    server_second: int | None = None  # the table's clock when it answered (its Date header)


class BudgetStore(Protocol):
    def claim(self, block: int, asks: dict[str, tuple[int, int]], expires: float) -> dict[str, int]:
        """For each counter (RESERVED, GENERAL) of the block, `(count, first)`: add `count` to it
        (starting from `first` if it is new); return every counter's new value. One atomic update."""

    def state(self) -> BudgetState: ...

    def signal(self, lane: str, until: float) -> BudgetState:
        """Announce that `lane` has work until `until` (never moves an announcement back);
        the state as it is after the write."""

    def pause(self, until: float, note: str) -> None: ...

    def rate_limited(self, now: float, note: str) -> int:
        """Count one more consecutive 429; the streak after it."""

    def reset_streak(self, seen: int) -> None:
        """Successes again: the streak restarts, unless more 429s than `seen` came meanwhile."""

    def block(self, until: float, now: float, note: str) -> bool:
        """Record amoCRM's block (held until cleared or probed); True only for the call that
        starts a new block episode (nobody saw a block in the `until - now` before)."""

    def take_block_probe(self, seen_until: float, until: float) -> bool:
        """The held block's probe: True for the one process that may send one request now."""

    def clear_block(self) -> None: ...

    def propose_margin(self, margin: Margin, expected: Margin | None) -> bool:
        """Store `margin` unless another process changed the stored one meanwhile."""


class SlotPlan:
    """Where the slots of a block lie in time, and which positions are reserved."""

    def __init__(self, rate: float, margin: float):
        self.per_block = max(1, int(rate))
        self.block_seconds = (1.0 + margin) * self.per_block / rate
        self.width = self.block_seconds / self.per_block
        reserved = int(self.per_block * RESERVED_SHARE)
        step = self.per_block / reserved if reserved else 0
        self.positions = {RESERVED: [int((n + 0.5) * step) for n in range(reserved)]}
        self.positions[GENERAL] = [i for i in range(self.per_block) if i not in self.positions[RESERVED]]


class Schedule:
    """The slots of the deployment's margin (`Margin`): one `SlotPlan` before its switch, another
    from it on; block numbers run on across the switch, so no block item is used by both."""

    def __init__(self, rate: float, margin: Margin):
        self.margin = margin
        self.before, self.after = SlotPlan(rate, margin.before), SlotPlan(rate, margin.margin)
        self.per_block, self.positions = self.after.per_block, self.after.positions

    @property
    def width(self) -> float:
        return self.after.width

    def _plan(self, block: int) -> SlotPlan:
        return self.after if block >= self.margin.block else self.before

    def block_at(self, moment: float) -> int:
        plan = self.after if moment >= self.margin.since else self.before
        return self.margin.block + math.floor((moment - self.margin.since) / plan.block_seconds)

    def block_start(self, block: int) -> float:
        return self.margin.since + (block - self.margin.block) * self._plan(block).block_seconds

    def start(self, block: int, counter: str, index: int) -> float:
        return self.block_start(block) + self.positions[counter][index] * self._plan(block).width

    def first_index(self, block: int, counter: str, moment: float) -> int:
        """Index of the first position of `counter` in `block` that starts at or after `moment`."""
        return next(
            (i for i in range(len(self.positions[counter])) if self.start(block, counter, i) >= moment),
            len(self.positions[counter]),
        )
