"""The shared budget's two halves that do not move: where a block's slots lie in time
(`SlotPlan`), and what the budget needs from its table (`BudgetStore`, kept in
services/budget_store.py). The admission logic that uses them is amo/budget.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class BudgetUnavailable(Exception):
    """The budget's table could not be read or written (the store wraps its own errors)."""


@dataclass(frozen=True)
class BudgetState:
    paused_until: float = 0.0
    blocked_until: float = 0.0
    blocked_count: int = 0
    bulk_until: float = 0.0
    interactive_until: float = 0.0


class BudgetStore(Protocol):
    def claim(self, block: int, asks: dict[str, tuple[int, int]], expires: float) -> dict[str, int]:
        """For each counter of the block, `(count, first)`: add `count` to it (starting from
        `first` if it is new); return every counter's new value. One atomic update."""

    def state(self) -> BudgetState: ...

    def signal(self, lane: str, until: float) -> BudgetState:
        """Announce that `lane` has work until `until` (never moves an announcement back);
        the state as it is after the write."""

    def pause(self, until: float) -> None: ...

    def block(self, until: float, now: float) -> bool:
        """Record amoCRM's block; True only for the call that starts a new block episode
        (nobody saw a block in the `until - now` before)."""


class SlotPlan:
    """Where the slots of a block lie in time, and which positions are reserved."""

    def __init__(self, rate: float, margin: float):
        self.per_block = max(1, int(rate))
        self.block_seconds = (1.0 + margin) * self.per_block / rate
        self.width = self.block_seconds / self.per_block
        reserved = self.per_block * 2 // 7
        step = self.per_block / reserved if reserved else 0
        self.positions = {"p": [int((k + 0.5) * step) for k in range(reserved)]}
        self.positions["g"] = [i for i in range(self.per_block) if i not in self.positions["p"]]

    def block_at(self, t: float) -> int:
        return math.floor(t / self.block_seconds)

    def start(self, block: int, counter: str, index: int) -> float:
        return block * self.block_seconds + self.positions[counter][index] * self.width

    def first_index(self, block: int, counter: str, t: float) -> int:
        """Index of the first position of `counter` in `block` that starts at or after `t`."""
        return next(
            (i for i in range(len(self.positions[counter])) if self.start(block, counter, i) >= t),
            len(self.positions[counter]),
        )
