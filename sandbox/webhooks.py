"""amoCRM-style account webhooks: legacy field names, PHP bracket keys, form encoding, batching.

Events that happen within a short window are sent to a destination in one body, with
several entities and several items per body, as amoCRM does (reference §9). Stage changes can
instead come in the digital-pipeline robot's compact format: one lead per body, ids only
(reference §9.4). An invalid answer is retried on amoCRM's schedule (reference §9.5).
"""

from __future__ import annotations

import heapq
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

SETTING_FOR = {
    ("leads", "add"): "add_lead",
    ("leads", "update"): "update_lead",
    ("leads", "delete"): "delete_lead",
    ("leads", "status"): "status_lead",
    ("leads", "restore"): "restore_lead",
    ("leads", "responsible"): "responsible_lead",
    ("leads", "note"): "note_lead",
    ("contacts", "add"): "add_contact",
    ("contacts", "update"): "update_contact",
    ("contacts", "delete"): "delete_contact",
    ("contacts", "restore"): "restore_contact",
    ("task", "add"): "add_task",
    ("task", "update"): "update_task",
    ("task", "delete"): "delete_task",
}


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts/lists → PHP bracket pairs: {"leads": {"add": [{"id": 1}]}} → leads[add][0][id]=1."""
    pairs: list[tuple[str, str]] = []
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            pairs.extend(flatten(value, name))
        elif value is None:
            pairs.append((name, ""))
        elif isinstance(value, bool):
            pairs.append((name, "1" if value else "0"))
        else:
            pairs.append((name, str(value)))
    return pairs


def form_encode(data: dict) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in flatten(data))


def _legacy_custom_fields(values: list | None) -> list[dict]:
    fields = []
    for field in values or []:
        item: dict[str, Any] = {"id": field.get("field_id"), "name": field.get("field_name") or ""}
        if field.get("field_code"):
            item["code"] = field["field_code"]
        item["values"] = [
            {"value": v.get("value"), **({"enum": v["enum_id"]} if v.get("enum_id") else {})}
            for v in field.get("values") or []
        ]
        fields.append(item)
    return fields


def legacy_lead(lead: dict, old: dict | None = None) -> dict:
    item = {
        "id": lead["id"],
        "name": lead.get("name", ""),
        "status_id": lead["status_id"],
        "price": lead.get("price") or 0,
        "responsible_user_id": lead.get("responsible_user_id"),
        "last_modified": lead["updated_at"],
        "modified_user_id": lead.get("updated_by") or 0,
        "created_user_id": lead.get("created_by") or 0,
        "date_create": lead["created_at"],
        "pipeline_id": lead["pipeline_id"],
        "account_id": lead["account_id"],
        "created_at": lead["created_at"],
        "updated_at": lead["updated_at"],
    }
    if old is not None:
        item["old_status_id"] = old["status_id"]
        if old["pipeline_id"] != lead["pipeline_id"]:
            item["old_pipeline_id"] = old["pipeline_id"]
    if lead.get("tags"):
        item["tags"] = [{"id": t["id"], "name": t["name"]} for t in lead["tags"]]
    if lead.get("custom_fields_values"):
        item["custom_fields"] = _legacy_custom_fields(lead["custom_fields_values"])
    return item


def compact_status(item: dict) -> dict:
    """A `leads[status]` item as the robot sends it: no timestamps, no other fields (reference §13)."""
    return {
        "id": item["id"],
        "status_id": item["status_id"],
        "pipeline_id": item["pipeline_id"],
        "old_status_id": item["old_status_id"],
        "old_pipeline_id": item.get("old_pipeline_id", item["pipeline_id"]),
    }


def legacy_contact(contact: dict, linked_lead_ids: list[int]) -> dict:
    item = {
        "id": contact["id"],
        "name": contact.get("name", ""),
        "responsible_user_id": contact.get("responsible_user_id"),
        "date_create": contact["created_at"],
        "last_modified": contact["updated_at"],
        "modified_user_id": contact.get("updated_by") or 0,
        "created_user_id": contact.get("created_by") or 0,
        "account_id": contact["account_id"],
        "created_at": contact["created_at"],
        "updated_at": contact["updated_at"],
        "type": "contact",
    }
    if contact.get("custom_fields_values"):
        item["custom_fields"] = _legacy_custom_fields(contact["custom_fields_values"])
    if linked_lead_ids:
        item["linked_leads_id"] = {str(i): {"ID": i} for i in linked_lead_ids}
    return item


def legacy_task(task: dict) -> dict:
    return {
        "id": task["id"],
        "element_id": task.get("entity_id") or 0,
        "element_type": {"contacts": 1, "leads": 2, "companies": 3}.get(task.get("entity_type") or "", 2),
        "text": task.get("text", ""),
        "status": 1 if task.get("is_completed") else 0,
        "complete_till": task.get("complete_till"),
        "task_type": task.get("task_type_id"),
        "responsible_user_id": task.get("responsible_user_id"),
        "date_create": task["created_at"],
        "last_modified": task["updated_at"],
        "created_user_id": task.get("created_by") or 0,
        "account_id": task["account_id"],
        "created_at": task["created_at"],
        "updated_at": task["updated_at"],
    }


# the waits before the 2nd, 3rd, 4th and 5th attempt of a delivery (reference §9.5, §13)
RETRY_DELAYS = (300.0, 900.0, 900.0, 3600.0)


def next_delay(attempt: int, status: int | str, slow: bool) -> float | None:
    """Seconds from invalid attempt `attempt` to the next, or None for no more (reference §9.5,
    §13): the 2nd and 3rd after 5 and 15 min whatever the answer (0–99: no answer in time or no
    connection; ≥ 300), the 4th and 5th after 15 min and 1 h only after a 499 or a 5xx."""
    if attempt <= 2:
        return RETRY_DELAYS[attempt - 1]
    server_error = isinstance(status, int) and not slow and (status == 499 or 500 <= status <= 599)
    return RETRY_DELAYS[attempt - 1] if attempt <= 4 and server_error else None


@dataclass
class Attempt:
    """One delivery of one body to one destination, and which attempt at it this is."""

    destination: str
    body: bytes
    events: int
    compact: bool
    delivery: int  # the same for every attempt at the same body
    number: int = 1


class Dispatcher:
    """Collects events per destination and POSTs them in batches from a background thread.

    Each answer is reported to `answered(destination, valid)`: valid means a status in 100–299
    within `answer_limit()` seconds, amoCRM's rule for counting failed hooks (reference §13). An
    invalid answer is retried on amoCRM's schedule (`next_delay`) times `retry_scale()`, while
    `wanted(destination)` holds (a deleted or disabled subscription gets no retries).
    """

    def __init__(
        self,
        account_block: Callable[[], dict],
        batch_window: float = 0.15,
        answered: Callable[[str, bool], None] | None = None,
        answer_limit: Callable[[], float] = lambda: 2.0,
        retry_scale: Callable[[], float] = lambda: 1.0,
        wanted: Callable[[str], bool] = lambda destination: True,
    ):
        self._account_block = account_block
        self._answered = answered
        self._answer_limit = answer_limit
        self._retry_scale = retry_scale
        self._wanted = wanted
        self._batch_window = batch_window
        self._lock = threading.Condition()
        # (destination, 0) batches account webhooks; each compact event gets a key of its own
        self._pending: dict[tuple[str, int], list[tuple[str, str, dict]]] = {}
        self._compact_sequence = 0
        self._retries: list[tuple[float, int, Attempt]] = []  # a heap by monotonic due time
        self._deliveries_made = 0
        self.deliveries: list[dict] = []
        self._stopped = False
        self._sending = False
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def enqueue(self, destination: str, entity: str, action: str, item: dict, compact: bool = False) -> None:
        with self._lock:
            batch = 0
            if compact:
                self._compact_sequence += 1
                batch = self._compact_sequence
            self._pending.setdefault((destination, batch), []).append((entity, action, item))
            self._lock.notify()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event has been delivered, and every retry falling due within
        `timeout` too (used by tests and the control API)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                retry_soon = any(due <= deadline for due, _, _ in self._retries)
                if not self._pending and not self._sending and not retry_soon:
                    return
            time.sleep(0.02)

    def drop_retries(self) -> None:
        with self._lock:
            self._retries = []

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and not self._pending and not self._due():
                    self._lock.wait(timeout=self._retries[0][0] - time.monotonic() if self._retries else None)
                if self._stopped:
                    return
                self._sending = True
                due = []
                while self._due():
                    due.append(heapq.heappop(self._retries)[2])
                batching = bool(self._pending)
            if batching:
                time.sleep(self._batch_window)  # let more events join this batch
                with self._lock:
                    batches, self._pending = self._pending, {}
                for (destination, batch), events in batches.items():
                    self._post(self._first_attempt(destination, events, compact=batch != 0))
            for attempt in due:
                if self._wanted(attempt.destination):
                    self._post(attempt)
            with self._lock:
                self._sending = False

    def _due(self) -> bool:
        return bool(self._retries) and self._retries[0][0] <= time.monotonic()

    def _first_attempt(self, destination: str, events: list[tuple[str, str, dict]], compact: bool) -> Attempt:
        body: dict[str, Any] = {}
        for entity, action, item in events:
            body.setdefault(entity, {}).setdefault(action, []).append(item)
        account = self._account_block()
        body["account"] = {"id": account["id"], "subdomain": account["subdomain"]} if compact else account
        self._deliveries_made += 1
        return Attempt(destination, form_encode(body).encode(), len(events), compact, self._deliveries_made)

    def _post(self, attempt: Attempt) -> None:
        request = urllib.request.Request(
            attempt.destination,
            data=attempt.body,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "amoCRM-Webhooks/3.0"},
        )
        limit = self._answer_limit()
        started = time.monotonic()
        try:  # wait longer than the limit, so a slow answer's status is still recorded
            with urllib.request.urlopen(request, timeout=max(5.0, limit)) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            status = f"failed: {error}"
        seconds = time.monotonic() - started
        valid = isinstance(status, int) and 100 <= status <= 299 and seconds <= limit
        delay = None if valid else next_delay(attempt.number, status, seconds > limit)
        if delay is not None:
            delay *= self._retry_scale()
            with self._lock:
                retry = Attempt(**{**vars(attempt), "number": attempt.number + 1})
                heapq.heappush(self._retries, (time.monotonic() + delay, attempt.delivery * 10 + retry.number, retry))
                self._lock.notify()
        self.deliveries.append(
            {
                "destination": attempt.destination,
                "status": status,
                "events": attempt.events,
                "format": "compact" if attempt.compact else "full",
                "valid": valid,
                "body": attempt.body.decode(),
                "seconds": round(seconds, 3),
                "delivery": attempt.delivery,
                "attempt": attempt.number,
                "at": round(time.time(), 3),
                "next_attempt_in": None if delay is None else round(delay, 3),
            }
        )
        del self.deliveries[:-200]
        if self._answered is not None:
            self._answered(attempt.destination, valid)
