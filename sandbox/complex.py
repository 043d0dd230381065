"""`POST /api/v4/leads/complex` (reference §3.6, §5.4): leads created with their contact in one
request. At most 50 leads, one contact and one company per lead, 40 custom-field values per
entity; the answer is a plain array of `{id, contact_id, company_id, request_id: [..], merged}`.
With Config.complex_duplicates on, duplicate control answers an existing lead instead."""

from __future__ import annotations

import re
from typing import Any

from sandbox import entities
from sandbox.account import Account
from sandbox.errors import problem

MAX_COMPLEX_LEADS = 50
MAX_FIELD_VALUES = 40  # per entity: the values of all its custom fields together


def value_count(entity: Any) -> int:
    """How many custom-field values an entity carries (each value of each field counts)."""
    fields = entity.get("custom_fields_values") if isinstance(entity, dict) else None
    if not isinstance(fields, list):
        return 0
    return sum(len(f["values"]) for f in fields if isinstance(f, dict) and isinstance(f.get("values"), list))


def contact_keys(contact: Any) -> set[str]:
    """A contact's phones (digits only) and e-mails (lower-case), the keys duplicates are found by."""
    keys = set()
    fields = contact.get("custom_fields_values") if isinstance(contact, dict) else None
    for field in fields if isinstance(fields, list) else []:
        code = field.get("field_code") if isinstance(field, dict) else None
        code = code or {entities.PHONE_FIELD_ID: "PHONE", entities.EMAIL_FIELD_ID: "EMAIL"}.get(field.get("field_id"))
        for value in field.get("values") or [] if code in ("PHONE", "EMAIL") else []:
            text = str(value.get("value") or "") if isinstance(value, dict) else ""
            key = re.sub(r"\D", "", text) if code == "PHONE" else text.strip().lower()
            if key:
                keys.add(f"{code}:{key}")
    return keys


def _error(path: str, detail: str, code: str = "NotValid") -> dict:
    return {"code": code, "path": path, "detail": detail}


class ComplexLeads(Account):
    def create_complex_leads(self, items: Any) -> list[dict]:
        if not isinstance(items, list) or not items:
            raise problem(400, "Bad Request", "Request body must be a non-empty JSON array")
        if len(items) > MAX_COMPLEX_LEADS:
            detail = f"At most {MAX_COMPLEX_LEADS} leads per request"
            raise self.invalid([{"request_id": "0", "errors": [_error("", detail, "TooManyItems")]}])
        events: list[tuple[str, str, dict]] = []
        with self.lock:
            known = self._contacts_by_key()  # leads of the same request are not checked against each other
            drafts, all_errors = [], []
            for index, item in enumerate(items):
                request_id = str(item.get("request_id", index)) if isinstance(item, dict) else str(index)
                errors = self._complex_errors(item)
                if not isinstance(item, dict):
                    all_errors.append({"request_id": request_id, "errors": errors})
                    continue
                embedded: dict = item["_embedded"] if isinstance(item.get("_embedded"), dict) else {}
                contacts: list = embedded["contacts"] if isinstance(embedded.get("contacts"), list) else []
                contact = contacts[0] if contacts and isinstance(contacts[0], dict) else None
                plain = {**item, "_embedded": {k: v for k, v in embedded.items() if k not in ("contacts", "companies")}}
                lead = self.draft_lead(plain, errors, "")
                if contact is not None:
                    errors.extend(self.contact_errors(contact, "_embedded.contacts.0."))
                if errors:
                    all_errors.append({"request_id": request_id, "errors": errors})
                drafts.append((request_id, lead, contact))
            if all_errors:
                raise self.invalid(all_errors)
            answers = [
                self._create_one(request_id, lead, contact, known, events) for request_id, lead, contact in drafts
            ]
        self.emit(events)
        return answers

    def _complex_errors(self, item: Any) -> list[dict]:
        """The limits of the complex endpoint (§3.6) broken by one item."""
        if not isinstance(item, dict):
            return [_error("", "Each item must be an object", "InvalidType")]
        errors = []
        embedded: dict = item["_embedded"] if isinstance(item.get("_embedded"), dict) else {}
        checked: list[tuple[str, Any]] = [("", item)]
        for key, name in (("contacts", "contact"), ("companies", "company")):
            linked: list = embedded[key] if isinstance(embedded.get(key), list) else []
            if len(linked) > 1:
                errors.append(_error(f"_embedded.{key}", f"At most one {name} per lead"))
            checked.append((f"_embedded.{key}.0.", linked[0] if linked else None))
        for path, entity in checked:
            if value_count(entity) > MAX_FIELD_VALUES:
                detail = f"At most {MAX_FIELD_VALUES} custom field values per entity"
                errors.append(_error(f"{path}custom_fields_values", detail))
        return errors

    def _contacts_by_key(self) -> dict[str, int]:
        """Each phone and e-mail key of a live contact → the contact (the oldest one wins)."""
        found: dict[str, int] = {}
        for contact_id in sorted(self.contacts, reverse=True):
            contact = self.contacts[contact_id]
            if not contact.get("is_deleted"):
                found.update(dict.fromkeys(contact_keys(contact), contact_id))
        return found

    def _open_lead_of(self, contact_id: int) -> int | None:
        """The contact's most recent lead that is neither deleted nor closed (142/143)."""
        open_leads = [
            lead
            for lead_id in self.leads_of_contact(contact_id)
            if not (lead := self.leads[lead_id]).get("is_deleted")
            and lead["status_id"] not in (entities.WON_STATUS_ID, entities.LOST_STATUS_ID)
        ]
        return max(open_leads, key=lambda lead: (lead["created_at"], lead["id"]))["id"] if open_leads else None

    def _create_one(
        self, request_id: str, lead: dict, contact: dict | None, known: dict[str, int], events: list
    ) -> dict:
        """One answer item: a new lead (and contact), or with duplicate control an existing lead of
        the contact that has the same phone or e-mail (`merged: true`, §5.4). A duplicate contact
        without an open lead gets the new lead, no second contact."""
        duplicate = None
        if self.config.complex_duplicates == "on" and contact is not None:
            duplicate = next((known[key] for key in sorted(contact_keys(contact)) if key in known), None)
        if duplicate is not None:
            existing = self._open_lead_of(duplicate)
            if existing is not None:
                answer = {"id": existing, "contact_id": duplicate, "company_id": None, "merged": True}
                return {**answer, "request_id": [request_id]}
        contact_id = duplicate or (self.create_contact(contact, events) if contact is not None else None)
        if contact_id is not None:
            lead["contacts"] = [{"id": contact_id, "is_main": True}]
        self.store_lead(lead, events)
        return {
            "id": lead["id"],
            "contact_id": contact_id,
            "company_id": None,
            "request_id": [request_id],
            "merged": False,
        }
