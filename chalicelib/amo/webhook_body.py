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
_DIGITS = re.compile(r"-?[0-9]{1,16}")
MAX_BODY_BYTES = 1_000_000
MAX_FIELDS = 20_000
MAX_DEPTH = 8  # amoCRM's deepest key: leads[add][0][custom_fields][0][values][0][value]
MAX_INT = 2**53 - 1

TASK_KEYS = ("task", "tasks")  # the reference could not settle which one amoCRM sends
ENTITY_KEYS = ("leads", "contacts", "companies", "customers", "unsorted", "message", "talk") + TASK_KEYS


class MalformedWebhook(ValueError):
    """The body is not an amoCRM webhook (not parseable, or no entity block at all)."""


def strict_int(value: Any) -> int | None:
    """An id or timestamp from outside: ASCII digits only (no spaces, underscores, other
    scripts' digits, floats or exponents) and within ±2^53; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if -MAX_INT <= number <= MAX_INT else None


def parse_nested_form(body: str) -> dict:
    """PHP-style bracket keys → nested dicts; runs of keys 0..n-1 become lists."""
    root: dict = {}
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise MalformedWebhook(f"more than {MAX_FIELDS} form fields") from None
    for key, value in pairs:
        match = _KEY.match(key)
        parts = [match.group(1)] + _PART.findall(match.group(2)) if match else [key]
        if len(parts) > MAX_DEPTH:
            raise MalformedWebhook(f"key {key[:80]!r} is nested deeper than {MAX_DEPTH} levels")
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


def _depth(data: Any) -> int:
    """How deeply lists and objects nest (without recursion: the input is hostile)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


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
        except (ValueError, RecursionError):
            raise MalformedWebhook("body is not valid JSON (or nested too deeply)") from None
        if _depth(data) > MAX_DEPTH:
            raise MalformedWebhook(f"body is nested deeper than {MAX_DEPTH} levels")
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
    amo_version: bool = False  # True once `versioned` took the version from amoCRM

    @property
    def entity_id(self) -> int | None:
        return strict_int(self.item.get("id"))

    def number(self, field: str) -> int | None:
        return strict_int(self.item.get(field))

    @property
    def changed_at(self) -> int | None:
        """When amoCRM says the entity changed: `updated_at`, else the legacy `last_modified`."""
        return self.number("updated_at") or self.number("last_modified")

    @property
    def is_compact(self) -> bool:
        """A digital-pipeline robot's stage change (reference §9.4): no timestamp at all, so its
        version must come from amoCRM (see `versioned`), never from our clock."""
        return self.entity == "leads" and self.action == "status" and self.changed_at is None

    def versioned(self, updated_at: int) -> WebhookEvent:
        """This event with the lead's `updated_at` as amoCRM answered it, and the id that follows
        from it: a redelivery finds the same version (one id), a later move to the same stage a
        newer one (another id)."""
        item = {**self.item, "updated_at": str(updated_at)}
        return WebhookEvent(self.entity, self.action, item, _event_id(self.entity, self.action, item), True)


def _event_id(entity: str, action: str, item: dict) -> str:
    """Same change, same id: amoCRM's redeliveries and SQS's redeliveries collapse onto it.
    Built from the parsed numbers, so " 17657" and "17657" cannot become two events."""
    identity = [
        entity,
        action,
        strict_int(item.get("id")),
        strict_int(item.get("updated_at")) or strict_int(item.get("last_modified")),
        strict_int(item.get("status_id")),
        strict_int(item.get("pipeline_id")),
    ]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:24]
    return f"{entity}-{action}-{identity[2]}-{digest}"


def account_id_of(data: dict) -> int | None:
    account = data.get("account")
    return strict_int(account.get("id")) if isinstance(account, dict) else None


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
