"""What a piece of work tells an idempotency key about its side effect (idempotency.py keeps the
key). A module of its own so that code which only reports progress (leads.py, reached by the
syncs) does not reach the idempotency table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Marks(Protocol):
    def mark_sending(self) -> None: ...

    def mark_applied(self, result: dict) -> None: ...


class Checkpoint:
    """What the work tells the key about its side effect: `sending()` right before it, then
    `checkpoint(result)` the moment it happened. Without a key both are no-ops."""

    def __init__(self, claim: Marks | None = None):
        self.claim = claim
        self.result: dict | None = None
        self.sent = False

    def sending(self) -> None:
        if self.claim is not None:
            self.claim.mark_sending()
        self.sent = True

    def __call__(self, result: dict) -> None:
        self.result = result
        if self.claim is not None:
            self.claim.mark_applied(result)

    def around(self, send: Callable[[], dict]) -> dict:
        """`send()`, the one side effect, between `sending()` and the report of its result."""
        self.sending()
        result = send()
        self(result)
        return result
