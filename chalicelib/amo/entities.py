"""Reading amoCRM v4 entity objects: the few fields the service needs, validated.

Pure functions over amoCRM's JSON (reference §5–§7); nothing here touches DynamoDB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class MalformedEntity(ValueError):
    """An amoCRM object lacks a field the service cannot do without."""


def require_int(raw: Any, field: str, what: str) -> int:
    value = raw.get(field) if isinstance(raw, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEntity(f"{what} has no integer {field}")
    return value


def optional_int(raw: dict, field: str) -> int | None:
    value = raw.get(field)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def created_id(answer: Any, key: str) -> int | None:
    """The id amoCRM gives the first item of a create call (`_embedded.<key>[0].id`)."""
    items = ((answer or {}).get("_embedded") or {}).get(key) if isinstance(answer, dict) else None
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    value = first.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


@dataclass(frozen=True)
class ContactInfo:
    id: int
    name: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None
    responsible_user_id: int | None
    created_at: int | None
    updated_at: int | None
    account_id: int | None


def read_contact(raw: Any) -> ContactInfo:
    contact_id = require_int(raw, "id", "contact")
    fields = raw.get("custom_fields_values")
    name = raw.get("name") or " ".join(p for p in (raw.get("first_name"), raw.get("last_name")) if p)
    return ContactInfo(id=contact_id, name=str(name or ""), first_name=raw.get("first_name") or None,
                       last_name=raw.get("last_name") or None, phone=first_value(fields, code="PHONE"),
                       email=first_value(fields, code="EMAIL"),
                       responsible_user_id=optional_int(raw, "responsible_user_id"),
                       created_at=optional_int(raw, "created_at"), updated_at=optional_int(raw, "updated_at"),
                       account_id=optional_int(raw, "account_id"))


@dataclass(frozen=True)
class LeadInfo:
    id: int
    name: str
    price: int | None
    responsible_user_id: int | None
    pipeline_id: int
    status_id: int
    main_contact_id: int | None
    custom_fields: list | None
    updated_at: int
    account_id: int | None
    is_deleted: bool


def main_contact_id(raw: dict) -> int | None:
    """The lead's main contact (`is_main`), else its first contact (SPEC §2)."""
    contacts = [c for c in ((raw.get("_embedded") or {}).get("contacts") or [])
                if isinstance(c, dict) and isinstance(c.get("id"), int)]
    main = next((c for c in contacts if c.get("is_main")), contacts[0] if contacts else None)
    return main["id"] if main else None


def read_lead(raw: Any) -> LeadInfo:
    lead_id = require_int(raw, "id", "lead")
    price = raw.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
        raise MalformedEntity(f"lead {lead_id} has a non-numeric price")
    fields = raw.get("custom_fields_values")
    return LeadInfo(id=lead_id, name=str(raw.get("name") or ""),
                    price=int(price) if price is not None else None,
                    responsible_user_id=optional_int(raw, "responsible_user_id"),
                    pipeline_id=require_int(raw, "pipeline_id", f"lead {lead_id}"),
                    status_id=require_int(raw, "status_id", f"lead {lead_id}"),
                    main_contact_id=main_contact_id(raw),
                    custom_fields=fields if isinstance(fields, list) else None,
                    updated_at=require_int(raw, "updated_at", f"lead {lead_id}"),
                    account_id=optional_int(raw, "account_id"), is_deleted=bool(raw.get("is_deleted")))


@dataclass(frozen=True)
class TaskInfo:
    id: int
    text: str
    task_type_id: int | None
    complete_till: int | None
    is_completed: bool
    responsible_user_id: int | None
    entity_id: int | None
    entity_type: str | None
    duration: int | None
    result_text: str | None
    created_by: int | None
    updated_by: int | None
    created_at: int | None
    updated_at: int | None
    account_id: int | None


def read_task(raw: Any) -> TaskInfo:
    task_id = require_int(raw, "id", "task")
    result = raw.get("result")
    result_text = result.get("text") if isinstance(result, dict) else None
    return TaskInfo(id=task_id, text=str(raw.get("text") or ""), task_type_id=optional_int(raw, "task_type_id"),
                    complete_till=optional_int(raw, "complete_till"), is_completed=bool(raw.get("is_completed")),
                    responsible_user_id=optional_int(raw, "responsible_user_id"),
                    entity_id=optional_int(raw, "entity_id"), entity_type=raw.get("entity_type") or None,
                    duration=optional_int(raw, "duration"), result_text=result_text or None,
                    created_by=optional_int(raw, "created_by"), updated_by=optional_int(raw, "updated_by"),
                    created_at=optional_int(raw, "created_at"), updated_at=optional_int(raw, "updated_at"),
                    account_id=optional_int(raw, "account_id"))
