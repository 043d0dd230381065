"""amoCRM account webhooks on the wire (reference §9): PHP bracket keys, legacy field names.

amoCRM POSTs `application/x-www-form-urlencoded` bodies such as
`leads[status][0][id]=1&leads[status][0][status_id]=142&account[id]=9`, with several entities,
actions and items per body and every value a string. This module turns such a body (or the
same structure as JSON) into a list of events; it knows nothing of DynamoDB.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_BODY_BYTES = 1_000_000

TASK_KEYS = ("task", "tasks")  # the reference could not settle which one amoCRM sends
ENTITY_KEYS = ("leads", "contacts", "companies", "customers", "unsorted", "message", "talk") + TASK_KEYS


class MalformedWebhook(ValueError):
    """The body is not an amoCRM webhook (not parseable, or no entity block at all)."""


def parse_nested_form(body: str) -> dict:
    """PHP-style bracket keys → nested dicts; runs of keys 0..n-1 become lists."""
    root: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True, max_num_fields=20_000):
        match = _KEY.match(key)
        parts = [match.group(1)] + _PART.findall(match.group(2)) if match else [key]
        node = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if last:
                if isinstance(node.get(part), dict):
                    raise MalformedWebhook(f"key {key!r} is both a value and a group")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise MalformedWebhook(f"key {key!r} is both a value and a group")
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and set(items) == {str(i) for i in range(len(items))}:
        return [items[str(i)] for i in range(len(items))]
    return items


def decode_body(raw: bytes | str | None, content_type: str | None) -> dict:
    """The webhook as nested dicts, from a form body (amoCRM) or JSON with the same shape."""
    if raw is None or len(raw) == 0:
        raise MalformedWebhook("empty body")
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedWebhook("body too large")
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if "json" in (content_type or "").lower():
        try:
            data = json.loads(text)
        except ValueError:
            raise MalformedWebhook("body is not valid JSON") from None
    else:
        data = parse_nested_form(text)
    if not isinstance(data, dict):
        raise MalformedWebhook("body is not an object")
    return data


@dataclass(frozen=True)
class WebhookEvent:
    entity: str  # leads | contacts | tasks | …  (task and tasks both become "tasks")
    action: str  # add | update | status | delete | …
    item: dict
    event_id: str

    @property
    def entity_id(self) -> int | None:
        value = self.item.get("id")
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    def number(self, field: str) -> int | None:
        try:
            return int(self.item.get(field))
        except (TypeError, ValueError):
            return None

    @property
    def changed_at(self) -> int | None:
        """When amoCRM says the entity changed: `updated_at`, else the legacy `last_modified`."""
        return self.number("updated_at") or self.number("last_modified")


def _event_id(entity: str, action: str, item: dict) -> str:
    """Same change, same id: amoCRM's redeliveries and SQS's redeliveries collapse onto it."""
    identity = [entity, action, item.get("id"), item.get("updated_at") or item.get("last_modified"),
                item.get("status_id"), item.get("pipeline_id")]
    digest = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:24]
    return f"{entity}-{action}-{item.get('id')}-{digest}"


def account_id_of(data: dict) -> int | None:
    account = data.get("account")
    try:
        return int(account.get("id")) if isinstance(account, dict) else None
    except (TypeError, ValueError):
        return None


def events_of(data: dict) -> tuple[list[WebhookEvent], list[str]]:
    """Every (entity, action, item) in the body, and a problem per block that is not readable."""
    events: list[WebhookEvent] = []
    problems: list[str] = []
    for entity, actions in data.items():
        if entity == "account":
            continue
        if not isinstance(actions, dict):
            problems.append(f"{entity}: not an entity block")
            continue
        name = "tasks" if entity in TASK_KEYS else entity
        for action, items in actions.items():
            items = items if isinstance(items, list) else (list(items.values()) if isinstance(items, dict) else [])
            if not items:
                problems.append(f"{entity}[{action}]: no items")
            for item in items:
                if not isinstance(item, dict):
                    problems.append(f"{entity}[{action}]: an item is not an object")
                    continue
                events.append(WebhookEvent(name, str(action), item, _event_id(name, str(action), item)))
    if not events and not problems:
        problems.append("no entity events in the body")
    return events, problems
