"""amoCRM contacts (reference §6): `/api/v4/contacts`; phone and e-mail live in custom fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.amo import multitext
from chalicelib.amo.entities import created_id, first_value, new_id, optional_int, require_int
from chalicelib.amo.resource import ListResource


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
    return ContactInfo(
        id=contact_id,
        name=str(name or ""),
        first_name=raw.get("first_name") or None,
        last_name=raw.get("last_name") or None,
        phone=first_value(fields, code="PHONE"),
        email=first_value(fields, code="EMAIL"),
        responsible_user_id=optional_int(raw, "responsible_user_id"),
        created_at=optional_int(raw, "created_at"),
        updated_at=optional_int(raw, "updated_at"),
        account_id=optional_int(raw, "account_id"),
    )


SCALARS = ("name", "first_name", "last_name", "responsible_user_id")
MULTITEXT = (("phone", "PHONE"), ("email", "EMAIL"))


def contact_body(data: dict) -> dict:
    """amoCRM contact JSON for a NEW contact from our flat {name, first_name, last_name, phone,
    email, responsible_user_id}: phone and e-mail become the system multitext fields PHONE and
    EMAIL. Never for an update: see `contact_changes`."""
    body: dict[str, Any] = {k: data[k] for k in SCALARS if data.get(k) is not None}
    fields = []
    if data.get("phone"):
        fields.append({"field_code": "PHONE", "values": [{"value": data["phone"], "enum_code": "WORK"}]})
    if data.get("email"):
        fields.append({"field_code": "EMAIL", "values": [{"value": data["email"], "enum_code": "WORK"}]})
    if fields:
        body["custom_fields_values"] = fields
    return body


def contact_changes(current: dict, data: dict) -> dict:
    """The PATCH body that makes amoCRM's `current` contact what the caller asked: only the
    fields whose value changes, and PHONE/EMAIL as full merged lists, because amoCRM replaces
    a multitext field's whole list (reference §5.3). Empty when nothing would change."""
    body: dict[str, Any] = {k: data[k] for k in SCALARS if data.get(k) is not None and data[k] != current.get(k)}
    wanted = {code: str(data[key]) for key, code in MULTITEXT if data.get(key)}
    fields = multitext.changed_fields(current.get("custom_fields_values"), wanted)
    if fields:
        body["custom_fields_values"] = fields
    return body


class Contacts(ListResource):
    path = "/api/v4/contacts"
    key = "contacts"
    by_updated_at = True

    def create(self, data: dict) -> int:
        """POST one contact from our flat fields; its new id."""
        answer = self.client.post(self.path, [{**contact_body(data), "request_id": "0"}])
        return new_id(created_id(answer, "contacts"), "contact")

    def patch(self, contact_id: int, body: dict) -> None:
        """PATCH one contact with a single object built by `contact_changes` (an unknown id
        answers 404)."""
        self.client.patch(f"{self.path}/{int(contact_id)}", body)

    def clear_personal(self, contact_id: int, placeholder: str) -> None:
        """Erase a person from a contact (amoCRM's API v4 has no contact DELETE): the name becomes
        `placeholder`, first and last names empty, and every PHONE and EMAIL value goes
        (`values: null` clears a field, reference §5.3). Sending it again changes nothing more."""
        body = {
            "name": placeholder,
            "first_name": "",
            "last_name": "",
            "custom_fields_values": [{"field_code": "PHONE", "values": None}, {"field_code": "EMAIL", "values": None}],
        }
        self.client.patch(f"{self.path}/{int(contact_id)}", body)
