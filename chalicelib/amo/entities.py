"""Reading amoCRM v4 objects: validated fields shared by every resource.

Pure functions over amoCRM's JSON (reference §5–§7); nothing here touches DynamoDB. Each
resource module (leads.py, contacts.py, …) builds its own value type from these.
"""

from __future__ import annotations

from typing import Any

from chalicelib.amo.errors import AmoUnavailable

MAX_INT = 2**53 - 1  # JSON consumers and DynamoDB numbers stay exact below this


class MalformedEntity(ValueError):
    """An amoCRM object lacks a field the service cannot do without."""


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_INT <= value <= MAX_INT:
        return None
    return value


def require_int(raw: Any, field: str, what: str) -> int:
    value = _int_or_none(raw.get(field)) if isinstance(raw, dict) else None
    if value is None:
        raise MalformedEntity(f"{what} has no integer {field}")
    return value


def optional_int(raw: dict, field: str) -> int | None:
    return _int_or_none(raw.get(field))


def created_id(answer: Any, key: str) -> int | None:
    """The id amoCRM gives the first item of a create call (`_embedded.<key>[0].id`)."""
    items = ((answer or {}).get("_embedded") or {}).get(key) if isinstance(answer, dict) else None
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    return _int_or_none(first.get("id"))


def new_id(value: int | None, what: str) -> int:
    """The id of a created entity. A 2xx without one means amoCRM may well have created it: the
    outcome is unknown, so the caller must not create it again under a new key (reference §5)."""
    if value is None:
        raise AmoUnavailable(
            f"amoCRM answered without the new {what}'s id; it may have been created", outcome_unknown=True
        )
    return value


def first_value(custom_fields: Any, *, code: str | None = None, field_id: int | None = None) -> str | None:
    """The first value of the custom field with this code (PHONE, EMAIL) or id."""
    for field in custom_fields if isinstance(custom_fields, list) else []:
        if not isinstance(field, dict):
            continue
        if (code and field.get("field_code") == code) or (field_id and field.get("field_id") == field_id):
            for value in field.get("values") or []:
                if isinstance(value, dict) and value.get("value") not in (None, ""):
                    return str(value["value"])
    return None
