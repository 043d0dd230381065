"""amoCRM account webhooks on the wire (reference §9): PHP bracket keys, legacy field names.

amoCRM POSTs `application/x-www-form-urlencoded` bodies such as
`leads[status][0][id]=1&leads[status][0][status_id]=142&account[id]=9`, with several entities,
actions and items per body and every value a string. This module turns such a body (or the
same structure as JSON) into a list of events; it knows nothing of DynamoDB.

amoCRM documents no limit on a body's size, depth or item count (reference §9.1) and counts
every non-2xx answer towards disabling the hook (§9.5), so no part of a body fails the whole
of it: a key nested deeper than MAX_DEPTH keeps its first levels and becomes one string leaf
named by the rest, a key that clashes with another is dropped (and noted), and a body past
MAX_BODY_BYTES or MAX_FIELDS is read in part: every item's own scalar fields (`id`,
`status_id`, `pipeline_id`, `updated_at`, …), without custom fields or tags.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_DIGITS = re.compile(r"-?[0-9]{1,16}")
MAX_BODY_BYTES = 1_000_000  # past this (or MAX_FIELDS), only each item's own fields are read
MAX_FIELDS = 20_000
MAX_DEPTH = 8  # amoCRM's deepest key: leads[add][0][custom_fields][0][values][0][value]
MAX_INT = 2**53 - 1
ITEM_DEPTH = 4  # entity[action][n][field]: what a body read in part keeps
MAX_KEPT_KEY = 200  # characters of an encoded key, and of a value, a body read in part keeps
MAX_KEPT_VALUE = 1000

# root keys read as another: the reference could not settle whether amoCRM sends `task` or `tasks`
# (§9.2), and Kommo's robot page writes the root `lead` where every capture says `leads` (§9.4, §12)
ALIASES = {"task": "tasks", "lead": "leads"}


class MalformedWebhook(ValueError):
    """The body is not an amoCRM webhook (empty, not parseable, or not an object at all)."""


@dataclass
class DecodedBody:
    """A webhook body as nested dicts, and what could not be kept of it (`notes`, one per part).
    `partial`: the body was past the size or field limit and only items' own fields were read."""

    data: dict
    notes: list[str] = field(default_factory=list)
    partial: bool = False


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


def _parts(key: str) -> list[str]:
    """`a[b][c]` → [a, b, c]; an over-deep key keeps MAX_DEPTH - 1 levels, and its last level
    is the rest of the key as written (`value[x]`): one string leaf, not a lost body."""
    match = _KEY.match(key)
    parts = [match.group(1)] + _PART.findall(match.group(2)) if match else [key]
    if len(parts) > MAX_DEPTH:
        parts = parts[: MAX_DEPTH - 1] + [parts[MAX_DEPTH - 1] + "".join(f"[{p}]" for p in parts[MAX_DEPTH:])]
    return parts


def _put(root: dict, *, key: str, value: str, notes: list[str]) -> None:
    parts = _parts(key)
    node = root
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            notes.append(f"key {key[:80]!r} is both a value and a group: dropped")
            return
        node = child
    if isinstance(node.get(parts[-1]), dict):
        notes.append(f"key {key[:80]!r} is both a value and a group: dropped")
        return
    node[parts[-1]] = value


def parse_nested_form(body: str, notes: list[str] | None = None) -> dict:
    """PHP-style bracket keys → nested dicts; runs of keys 0..n-1 become lists. A pair that
    cannot be placed is dropped and described in `notes`; the rest of the body is kept."""
    root: dict = {}
    notes = [] if notes is None else notes
    for key, value in parse_qsl(body, keep_blank_values=True):
        _put(root, key=key, value=value, notes=notes)
    return _listify(root)


def _items_only(body: str) -> dict:
    """A body past the limits: only `account[...]` and each item's own scalar fields
    (`entity[action][n][field]`), read pair by pair; a pair whose key has another number of
    brackets is skipped before anything of it is decoded (a big body must be read within
    amoCRM's 2 seconds)."""
    root: dict = {}
    for pair in body.split("&"):
        key, _, value = pair.partition("=")
        if len(key) > MAX_KEPT_KEY or len(value) > MAX_KEPT_VALUE:
            continue
        if key.count("[") + key.count("%5B") + key.count("%5b") not in (1, ITEM_DEPTH - 1):
            continue
        name = unquote_plus(key)
        parts = _parts(name)
        if (parts[0] == "account" and len(parts) == 2) or (len(parts) == ITEM_DEPTH and _DIGITS.fullmatch(parts[2])):
            _put(root, key=name, value=unquote_plus(value), notes=[])
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and set(items) == {str(i) for i in range(len(items))}:
        return [items[str(i)] for i in range(len(items))]
    return items


def _flatten_deep(data: Any, notes: list[str]) -> Any:
    """JSON of the same shape: a subtree below MAX_DEPTH becomes one string leaf (its JSON)."""

    def walk(node: Any, depth: int) -> Any:
        if not isinstance(node, (dict, list)):
            return node
        if depth >= MAX_DEPTH:
            if not notes:
                notes.append(f"values nested deeper than {MAX_DEPTH} levels are kept as strings")
            return json.dumps(node, ensure_ascii=False)[:MAX_KEPT_VALUE]
        if isinstance(node, dict):
            return {key: walk(value, depth + 1) for key, value in node.items()}
        return [walk(value, depth + 1) for value in node]

    return walk(data, 0)


def decode_body(raw: bytes | str | None, content_type: str | None) -> DecodedBody:
    """The webhook as nested dicts, from a form body (amoCRM) or JSON with the same shape.
    Only a body that is empty, not JSON when it says so, or not an object is malformed."""
    if raw is None or len(raw) == 0:
        raise MalformedWebhook("empty body")
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    notes: list[str] = []
    partial = False
    if "json" in (content_type or "").lower():
        try:
            data = _flatten_deep(json.loads(text), notes)
        except (ValueError, RecursionError):
            raise MalformedWebhook("body is not valid JSON (or nested too deeply to parse)") from None
    elif len(raw) > MAX_BODY_BYTES or text.count("&") >= MAX_FIELDS:
        partial = True
        notes.append(
            f"body of {len(raw)} bytes and {text.count('&') + 1} fields is past the limits "
            f"({MAX_BODY_BYTES} bytes, {MAX_FIELDS} fields): only each item's own fields were read"
        )
        data = _items_only(text)
    else:
        data = parse_nested_form(text, notes)
    if not isinstance(data, dict):
        raise MalformedWebhook("body is not an object")
    return DecodedBody(data, notes, partial)


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

    @property
    def unversioned(self) -> bool:
        """A change that carries no timestamp: a robot's compact stage change, or an item whose
        fields amoCRM does not document (tasks, reference §9.3). Its id would be the same for
        every later change of the entity (each taken for a duplicate of the first), so its
        version comes from amoCRM (`versioned`). A delete is confirmed instead (never deduplicated)."""
        return self.changed_at is None and self.action != "delete" and self.entity in ("leads", "contacts", "tasks")

    def versioned(self, updated_at: int) -> WebhookEvent:
        """This event with the entity's `updated_at` as amoCRM answered it, and the id that follows
        from it: a redelivery finds the same version (one id), a later change (a later move to the
        same stage) a newer one (another id)."""
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


def subdomain_of(data: dict) -> str | None:
    """`account[subdomain]`: all that older hooks say of the account (reference §9.1)."""
    account = data.get("account")
    subdomain = account.get("subdomain") if isinstance(account, dict) else None
    return subdomain.strip().lower() if isinstance(subdomain, str) and subdomain.strip() else None


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
        name = ALIASES.get(entity, entity)
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
