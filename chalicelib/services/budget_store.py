"""The shared amoCRM budget's table (models.RateBudget) behind amo/budget's `BudgetStore`.

Every call is one small DynamoDB request that fails fast (1 s timeouts, one retry): any
failure becomes BudgetUnavailable, and the budget falls back to a local pace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import PynamoDBException

from chalicelib.amo.budget import BULK, BudgetState, BudgetUnavailable
from chalicelib.locking import wrote
from chalicelib.models import RateBudget

T = TypeVar("T")


def _guarded(call: Callable[[], T]) -> T:
    try:
        return call()
    except (PynamoDBException, BotoCoreError) as error:
        raise BudgetUnavailable(type(error).__name__) from None


def _state_of(item: RateBudget) -> BudgetState:
    return BudgetState(
        paused_until=item.paused_until or 0.0,
        blocked_until=item.blocked_until or 0.0,
        blocked_count=int(item.blocked_count or 0),
        bulk_until=item.bulk_until or 0.0,
        interactive_until=item.interactive_until or 0.0,
    )


class DynamoBudgetStore:
    def claim(self, block: int, asks: dict[str, tuple[int, int]], expires: float) -> dict[str, int]:
        def update() -> dict[str, int]:
            item = RateBudget(key=f"block#{block}")
            actions: list = [RateBudget.expires_at.set(datetime.fromtimestamp(expires, UTC))]
            for counter, (count, first) in asks.items():
                attribute = getattr(RateBudget, counter)
                actions.append(attribute.set((attribute | first) + count))
            item.update(actions=actions)
            return {counter: int(getattr(item, counter)) for counter in asks}

        return _guarded(update)

    def state(self) -> BudgetState:
        def read() -> BudgetState:
            try:
                return _state_of(RateBudget.get(RateBudget.STATE_KEY, consistent_read=True))
            except RateBudget.DoesNotExist:
                return BudgetState()

        return _guarded(read)

    def _move_forward(self, attribute: Any, until: float) -> BudgetState | None:
        """Set a time on the state item unless it already holds a later one; the state after
        the write (None when the stored time was already later)."""

        def update() -> BudgetState | None:
            item = RateBudget(key=RateBudget.STATE_KEY)
            done = wrote(
                lambda: item.update(
                    actions=[attribute.set(until)], condition=attribute.does_not_exist() | (attribute < until)
                )
            )
            return _state_of(item) if done else None

        return _guarded(update)

    def signal(self, lane: str, until: float) -> BudgetState:
        state = self._move_forward(RateBudget.bulk_until if lane == BULK else RateBudget.interactive_until, until)
        return state if state is not None else self.state()

    def pause(self, until: float) -> None:
        self._move_forward(RateBudget.paused_until, until)

    def block(self, until: float, now: float) -> bool:
        """A new episode (no block seen for as long as this one lasts) is counted once."""
        quiet_since = now - (until - now)

        def new_episode() -> None:
            RateBudget(key=RateBudget.STATE_KEY).update(
                actions=[
                    RateBudget.blocked_until.set(until),
                    RateBudget.blocked_count.set((RateBudget.blocked_count | 0) + 1),
                ],
                condition=RateBudget.blocked_until.does_not_exist() | (RateBudget.blocked_until < quiet_since),
            )

        if _guarded(lambda: wrote(new_episode)):
            return True
        self._move_forward(RateBudget.blocked_until, until)
        return False
