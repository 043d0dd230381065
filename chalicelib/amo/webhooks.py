"""amoCRM's webhook subscriptions API (reference §9.6): `/api/v4/webhooks`, admin only.

There is no PATCH: re-POSTing a destination replaces its settings; DELETE takes the
destination in a JSON body and answers 204.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.amo.client import AmoClient
from chalicelib.amo.pages import embedded


@dataclass(frozen=True)
class Subscription:
    destination: str
    settings: tuple[str, ...]
    disabled: bool


def read_subscription(raw: dict) -> Subscription:
    settings = raw.get("settings")
    if not isinstance(settings, list):
        settings = []
    return Subscription(
        destination=str(raw.get("destination") or ""),
        settings=tuple(str(s) for s in settings),
        disabled=bool(raw.get("disabled")),
    )


class Webhooks:
    path = "/api/v4/webhooks"

    def __init__(self, client: AmoClient):
        self.client = client

    def find(self, destination: str) -> Subscription | None:
        """The subscription for exactly this destination, if amoCRM has one."""
        found: list[Any] = embedded(self.client.get(self.path, {"filter[destination]": destination}), "webhooks")
        return next(
            (read_subscription(w) for w in found if isinstance(w, dict) and w.get("destination") == destination), None
        )

    def all(self) -> list[Subscription]:
        """Every subscription of the account (up to 100 exist, one page)."""
        found: list[Any] = embedded(self.client.get(self.path), "webhooks")
        return [read_subscription(w) for w in found if isinstance(w, dict)]

    def subscribe(self, destination: str, settings: list[str]) -> None:
        self.client.post(self.path, {"destination": destination, "settings": list(settings), "sort": 10})

    def unsubscribe(self, destination: str) -> None:
        self.client.delete(self.path, {"destination": destination})
