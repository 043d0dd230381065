"""The shared amoCRM budget's table (models.RateBudget) behind amo/budget's `BudgetStore`,
and what the operator sees of it and clears (`budget show`, `budget clear`).

Every call is one small DynamoDB request that fails fast (1 s timeouts, one retry): any
failure becomes BudgetUnavailable, and the budget falls back to a local pace. A state read
also answers with DynamoDB's clock (its `Date` header), which every process checks its own
against (amo/budget/clock.py).
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import PynamoDBException

from chalicelib.amo.budget import BULK, BudgetState, BudgetUnavailable, Margin
from chalicelib.amo.budget.slots import Schedule
from chalicelib.locking import wrote
from chalicelib.models import RateBudget

T = TypeVar("T")


def _guarded(call: Callable[[], T]) -> T:
    try:
        return call()
    except (PynamoDBException, BotoCoreError) as error:
        raise BudgetUnavailable(type(error).__name__) from None


def _margin_of(item: RateBudget) -> Margin | None:
    if item.margin is None:
        return None
    before = item.margin_before if item.margin_before is not None else item.margin
    return Margin(float(item.margin), float(before), float(item.margin_since or 0.0), int(item.margin_block or 0))


def _state_of(item: RateBudget, server_second: int | None = None) -> BudgetState:
    return BudgetState(
        paused_until=item.paused_until or 0.0,
        blocked_until=item.blocked_until or 0.0,
        blocked_count=int(item.blocked_count or 0),
        bulk_until=item.bulk_until or 0.0,
        interactive_until=item.interactive_until or 0.0,
        block_held=bool(item.block_held),
        streak=int(item.streak or 0),
        pause_note=item.pause_note or "",
        block_note=item.block_note or "",
        margin=_margin_of(item),
        server_second=server_second,
    )


def _date_of(answer: dict) -> int | None:
    """DynamoDB's clock when it answered (the `Date` header, whole seconds)."""
    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return int(email.utils.parsedate_to_datetime(date).timestamp()) if date else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


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
            answer = RateBudget._get_connection().get_item(RateBudget.STATE_KEY, consistent_read=True)
            item = RateBudget.from_raw_data(answer["Item"]) if answer.get("Item") else RateBudget()
            return _state_of(item, self._server_second(answer))

        return _guarded(read)

    def _server_second(self, answer: dict) -> int | None:
        return _date_of(answer)

    def _move_forward(self, attribute: Any, until: float, *also: Any) -> BudgetState | None:
        """Set a time on the state item unless it already holds a later one (and `also` with
        it); the state after the write (None when the stored time was already later)."""

        def update() -> BudgetState | None:
            item = RateBudget(key=RateBudget.STATE_KEY)
            done = wrote(
                lambda: item.update(
                    actions=[attribute.set(until), *also],
                    condition=attribute.does_not_exist() | (attribute < until),
                )
            )
            return _state_of(item) if done else None

        return _guarded(update)

    def signal(self, lane: str, until: float) -> BudgetState:
        state = self._move_forward(RateBudget.bulk_until if lane == BULK else RateBudget.interactive_until, until)
        return state if state is not None else self.state()

    def pause(self, until: float, note: str) -> None:
        self._move_forward(RateBudget.paused_until, until, RateBudget.pause_note.set(note))

    def rate_limited(self, now: float, note: str) -> int:
        def update() -> int:
            item = RateBudget(key=RateBudget.STATE_KEY)
            item.update(actions=[RateBudget.streak.set((RateBudget.streak | 0) + 1)])
            return int(item.streak or 1)

        return _guarded(update)

    def reset_streak(self, seen: int) -> None:
        _guarded(
            lambda: wrote(
                lambda: RateBudget(key=RateBudget.STATE_KEY).update(
                    actions=[RateBudget.streak.set(0)], condition=RateBudget.streak <= seen
                )
            )
        )

    def block(self, until: float, now: float, note: str) -> bool:
        """A new episode (no block held, none seen for as long as this one lasts) is counted once."""
        quiet_since = now - (until - now)
        held = [RateBudget.block_held.set(True), RateBudget.block_note.set(note)]

        def new_episode() -> None:
            RateBudget(key=RateBudget.STATE_KEY).update(
                actions=[
                    RateBudget.blocked_until.set(until),
                    RateBudget.blocked_count.set((RateBudget.blocked_count | 0) + 1),
                    *held,
                ],
                condition=(RateBudget.block_held.does_not_exist() | (RateBudget.block_held == False))  # noqa: E712
                & (RateBudget.blocked_until.does_not_exist() | (RateBudget.blocked_until < quiet_since)),
            )

        if _guarded(lambda: wrote(new_episode)):
            return True
        self._move_forward(RateBudget.blocked_until, until, RateBudget.block_held.set(True))
        return False

    def take_block_probe(self, seen_until: float, until: float) -> bool:
        return _guarded(
            lambda: wrote(
                lambda: RateBudget(key=RateBudget.STATE_KEY).update(
                    actions=[RateBudget.blocked_until.set(until)],
                    condition=(RateBudget.blocked_until == seen_until) & (RateBudget.block_held == True),  # noqa: E712
                )
            )
        )

    def clear_block(self) -> None:
        _guarded(
            lambda: RateBudget(key=RateBudget.STATE_KEY).update(
                actions=[RateBudget.block_held.remove(), RateBudget.blocked_until.set(0)]
            )
        )

    def propose_margin(self, margin: Margin, expected: Margin | None) -> bool:
        if expected is None:
            condition = RateBudget.margin.does_not_exist()
        else:
            condition = (RateBudget.margin == expected.margin) & (RateBudget.margin_since == expected.since)
        actions: list = [
            RateBudget.margin.set(margin.margin),
            RateBudget.margin_before.set(margin.before),
            RateBudget.margin_since.set(margin.since),
            RateBudget.margin_block.set(margin.block),
        ]
        return _guarded(
            lambda: wrote(lambda: RateBudget(key=RateBudget.STATE_KEY).update(actions=actions, condition=condition))
        )


# -- what the operator sees and clears (cli.py `budget show`, `budget clear`) -------------------


def show() -> dict:
    """The shared state as stored: pause and block with who set them, the 429 streak, the margin."""
    state = DynamoBudgetStore().state()
    now = datetime.now(UTC).timestamp()
    margin = state.margin
    return {
        "paused": state.paused_until > now,
        "pausedUntil": _iso(state.paused_until),
        "pausedBy": state.pause_note or None,
        "blocked": state.block_held or state.blocked_until > now,
        "blockedUntil": _iso(state.blocked_until),
        "blockedBy": state.block_note or None,
        "blockedCount": state.blocked_count,
        "rateLimitedInARow": state.streak,
        "marginSeconds": margin.margin if margin else None,
        "marginSince": _iso(margin.since) if margin and margin.since > now else None,
    }


def clear() -> dict:
    """Lift the shared pause, the cool-down streak and amoCRM's block as this service holds it
    (once amoCRM's support lifted the real one): every process sends again from its next
    state read (within a second)."""
    before = show()

    def update() -> None:
        actions: list = [
            RateBudget.paused_until.set(0),
            RateBudget.blocked_until.set(0),
            RateBudget.streak.set(0),
            RateBudget.block_held.remove(),
            RateBudget.pause_note.remove(),
            RateBudget.block_note.remove(),
        ]
        RateBudget(key=RateBudget.STATE_KEY).update(actions=actions)

    _guarded(update)
    return {"cleared": [what for what in ("paused", "blocked") if before[what]], "before": before}


# the operator's own clock may be a few seconds off the table's: a change it writes starts later
OPERATOR_SWITCH_LEAD_SECONDS = 10.0


def set_margin(seconds: float, rate: float) -> dict:
    """Set the deployment's margin (to lower it: the largest any process asks for wins, so
    lower AMO_RATE_MARGIN_SECONDS everywhere first). It applies from a block boundary
    OPERATOR_SWITCH_LEAD_SECONDS ahead, like any change, so no second runs two schedules."""
    if not 0 < seconds <= 1:
        raise ValueError("the margin must be more than 0 and at most 1 second")
    store = DynamoBudgetStore()
    stored = store.state().margin
    now = datetime.now(UTC).timestamp()
    if stored is not None and now < stored.since:
        raise ValueError(f"a change of the margin is pending until {_iso(stored.since)}; try again after it")
    if stored is None:
        proposal = Margin(seconds, seconds)
    else:
        schedule = Schedule(rate, stored)
        block = schedule.block_at(now + OPERATOR_SWITCH_LEAD_SECONDS) + 1
        proposal = Margin(seconds, stored.margin, schedule.block_start(block), block)
    if not store.propose_margin(proposal, stored):
        raise ValueError("another process changed the margin meanwhile; look again (`budget show`)")
    return {
        "marginSeconds": seconds,
        "from": _iso(proposal.since) or "now",
        "before": stored.margin if stored else None,
    }


def _iso(timestamp: float) -> str | None:
    if not 0 < timestamp < 253402300799:  # up to the year 9999
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
