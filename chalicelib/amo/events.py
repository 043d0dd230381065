"""amoCRM's events log, `GET /api/v4/events` (reference §10.1): the one place a delete that no
webhook delivered can be seen (lists of leads, contacts and tasks show only live objects).

Its pages hold at most 100 events (a bigger `limit` is silently served as 50, §3.3), so it has
its own pager instead of the 250-item one; paging stops at a 204 or a page without a next link.
Event ids are strings; `entity_id` and `created_at` are ints.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.amo.client import AmoClient
from chalicelib.amo.pages import embedded, next_href

EVENTS_LIMIT = 100
MAX_PAGES = 10_000  # a guard against a next link that never ends, far above any real window


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    entity_type: str
    entity_id: int
    created_at: int


def read_event(raw: Any) -> Event | None:
    """One event as we use it; None for an item without a usable id, type, entity or time."""
    if not isinstance(raw, dict):
        return None
    event_id, entity_id, created_at = raw.get("id"), raw.get("entity_id"), raw.get("created_at")
    if not isinstance(entity_id, int) or not isinstance(created_at, int) or isinstance(entity_id, bool):
        return None
    if not isinstance(event_id, (str, int)) or not isinstance(raw.get("type"), str):
        return None
    return Event(str(event_id), raw["type"], str(raw.get("entity_type") or ""), entity_id, created_at)


class Events:
    path = "/api/v4/events"

    def __init__(self, client: AmoClient):
        self.client = client

    def pages(self, types: Sequence[str], *, created_from: int, created_to: int) -> Iterator[list[Event]]:
        """The events of these types created in [created_from, created_to], a page (≤ 100) at a
        time, in amoCRM's order; one request per page."""
        params: dict[str, Any] = {
            "filter[type][]": list(types),
            "filter[created_at][from]": created_from,
            "filter[created_at][to]": created_to,
            "limit": EVENTS_LIMIT,
        }
        for number in range(1, MAX_PAGES + 1):
            body = self.client.get(self.path, {**params, "page": number})
            events = [event for event in map(read_event, embedded(body, "events")) if event is not None]
            if events:
                yield events
            if not body or next_href(body) is None:
                return
