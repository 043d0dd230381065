"""The events log, `GET /api/v4/events` and `/api/v4/events/{id}` (reference §10.1, §13): what
the sandbox records (deletes and restores of leads, contacts and tasks, tasks added and
completed), its filters, pages of at most 100, string ids, empty `value_after`/`value_before`."""

from __future__ import annotations

import time
from typing import Any

from sandbox import query as q
from sandbox.account import Account, now
from sandbox.errors import problem, validation_error

MAX_EVENTS_LIMIT = 100  # §10.1: Kommo's English pages say 250, practice says 100 (§12)
MAX_IDS = 10  # filter[entity_id] and filter[created_by]
PATHS = {"lead": "leads", "contact": "contacts", "company": "companies", "customer": "customers", "task": "tasks"}
# base32 without i, l, o, u, lower-case: ids look like amoCRM's ("01pz58t6p04ymgsgfbmfyfy1mf")
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 32)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def _words(query: dict, name: str) -> list[str]:
    """Every value of `name` (`name`, `name[]`, `name[0]`…), comma-separated ones split."""
    return [part.strip() for value in q.values(query, name) for part in value.split(",") if part.strip()]


class EventsLog(Account):
    events: list[dict]  # oldest first

    def record_event(self, type_: str, entity_type: str, entity_id: int) -> None:
        """One event with empty values, as amoCRM writes deletes, restores, added and completed
        tasks (§10.1). The caller holds the lock."""
        sequence = len(self.events) + 1
        self.events.append(
            {
                "id": _base32(int(time.time() * 1000), 10) + _base32(sequence, 16),
                "type": type_,
                "entity_id": entity_id,
                "entity_type": entity_type,
                "created_by": self.first_user_id(),
                "created_at": now(),
                "value_after": [],
                "value_before": [],
                "account_id": self.config.account_id,
            }
        )

    def render_event(self, event: dict) -> dict:
        path = PATHS.get(event["entity_type"], event["entity_type"])
        return {
            **event,
            "value_after": list(event["value_after"]),
            "value_before": list(event["value_before"]),
            "_links": self.link(f"/api/v4/events/{event['id']}"),
            "_embedded": {
                "entity": {"id": event["entity_id"], "_links": self.link(f"/api/v4/{path}/{event['entity_id']}")}
            },
        }

    def require_events_rights(self) -> None:
        """What the log shows depends on the user's rights (§10.1); how a user without any is
        answered is undocumented: Config.events_api "forbidden" answers 403 problem+json."""
        if self.config.events_api == "forbidden":
            raise problem(403, "Forbidden", "Access denied: the user has no rights to the events log")

    def list_events(self, query: dict) -> tuple[int, Any]:
        """Newest first (the order is not documented; a reader must dedupe by id anyway, §10.1)."""
        self.require_events_rights()
        ids = set(_words(query, "filter[id]"))
        types = set(_words(query, "filter[type]"))
        kinds = set(_words(query, "filter[entity]"))
        entity_ids = set(q.int_list(query, "filter[entity_id]"))
        authors = set(q.int_list(query, "filter[created_by]"))
        if entity_ids and len(kinds) != 1:
            raise _invalid("filter.entity_id", "filter[entity_id] needs exactly one filter[entity]")
        if len(entity_ids) > MAX_IDS or len(authors) > MAX_IDS:
            raise _invalid("filter", f"At most {MAX_IDS} ids in filter[entity_id] and in filter[created_by]")
        since, until = q.bounds(query, "filter[created_at]")
        single = q.first(query, "filter[created_at]")
        if single and single.isascii() and single.isdigit():
            since = int(single)
        with self.lock:
            found = [
                e
                for e in reversed(self.events)
                if (not ids or e["id"] in ids)
                and (not types or e["type"] in types)
                and (not kinds or e["entity_type"] in kinds)
                and (not entity_ids or e["entity_id"] in entity_ids)
                and (not authors or e["created_by"] in authors)
                and q.in_range(e["created_at"], since, until)
            ]
            return self.page(found, "events", "/api/v4/events", query, self.render_event, MAX_EVENTS_LIMIT)

    def get_event(self, event_id: str) -> dict:
        self.require_events_rights()
        with self.lock:
            event = next((e for e in self.events if e["id"] == event_id), None)
            if event is None:
                raise problem(404, "Not Found", "Event not found")
            return self.render_event(event)


def _invalid(path: str, detail: str) -> Exception:
    return validation_error([{"request_id": "0", "errors": [{"code": "NotValid", "path": path, "detail": detail}]}])
