"""Contacts: list (filters, `order`, `with=leads`, `with=only_deleted`), one, create, update.
Phones and e-mails live only in `custom_fields_values` (PHONE / EMAIL multitext), as in amoCRM;
writing one replaces its whole list (fields.py)."""

from __future__ import annotations

import copy
from typing import Any

from sandbox import entities
from sandbox import query as q
from sandbox.account import Account, now
from sandbox.errors import problem
from sandbox.fields import merge_custom_fields
from sandbox.trash import trash_item
from sandbox.webhooks import legacy_contact


class Contacts(Account):
    def leads_of_contact(self, contact_id: int) -> list[int]:
        return [
            lead_id
            for lead_id, lead in self.leads.items()
            if any(c["id"] == contact_id for c in lead.get("contacts") or [])
        ]

    def render_contact(self, contact: dict, with_: set[str]) -> dict:
        leads = self.leads_of_contact(contact["id"]) if "leads" in with_ else None
        return entities.contact_body(copy.deepcopy(contact), self.base_url(), leads)

    def list_contacts(self, query: dict) -> tuple[int, Any]:
        """Contacts (filters, `order`, `with=leads`), or with `with=only_deleted` the trash (§6)."""
        with_ = q.with_(query)
        filtered = q.as_filtered_by(query, self.config.filters)
        if filtered is None:
            return 204, None
        ids = set(q.int_list(filtered, "filter[id]"))
        updated_from, updated_to = q.bounds(filtered, "filter[updated_at]")
        deleted = "only_deleted" in with_
        with self.lock:
            contacts = [
                c
                for c in self.contacts.values()
                if (not ids or c["id"] in ids)
                and q.in_range(c["updated_at"], updated_from, updated_to)
                and bool(c.get("is_deleted")) == deleted
            ]
            contacts = q.ordered(contacts, filtered)
            render = trash_item if deleted else (lambda c: self.render_contact(c, with_))
            return self.page(contacts, "contacts", "/api/v4/contacts", filtered, render)

    def get_contact(self, contact_id: int, query: dict) -> tuple[int, Any]:
        with self.lock:
            contact = self.contacts.get(contact_id)
            if "only_deleted" in q.with_(query):
                return (200, trash_item(contact)) if contact and contact.get("is_deleted") else (204, None)
            if contact is None or contact.get("is_deleted"):
                return self.missing("Contact")
            return 200, self.render_contact(contact, q.with_(query))

    def _apply_contact_fields(self, contact: dict, item: dict, errors: list, path: str) -> None:
        for key in ("name", "first_name", "last_name"):
            if key in item:
                if not isinstance(item[key], str):
                    errors.append(
                        {
                            "code": "InvalidType",
                            "path": f"{path}{key}",
                            "detail": "This value should be of type string.",
                        }
                    )
                else:
                    contact[key] = item[key]
        if "responsible_user_id" in item:
            contact["responsible_user_id"] = item["responsible_user_id"]
        if "custom_fields_values" in item:
            contact["custom_fields_values"] = merge_custom_fields(
                contact.get("custom_fields_values"), item["custom_fields_values"], errors, path
            )

    def contact_errors(self, item: dict, path: str) -> list:
        """What is wrong with `item` as a new contact (nothing is stored)."""
        errors: list = []
        self._apply_contact_fields(
            entities.contact(0, name="", account_id=0, responsible_user_id=0, created_by=0, created_at=0),
            item,
            errors,
            path,
        )
        return errors

    def create_contact(self, item: dict, events: list) -> int:
        """Store one contact (caller holds the lock) and queue its `contacts[add]` event."""
        contact = entities.contact(
            self.new_id(),
            name="",
            account_id=self.config.account_id,
            responsible_user_id=self.first_user_id(),
            created_by=0,
            created_at=now(),
        )
        errors: list = []
        self._apply_contact_fields(contact, item, errors, "")
        if errors:
            raise self.invalid([{"request_id": str(item.get("request_id", "0")), "errors": errors}])
        if not contact["name"]:
            contact["name"] = " ".join(p for p in (contact["first_name"], contact["last_name"]) if p)
        self.contacts[contact["id"]] = contact
        events.append(("contacts", "add", legacy_contact(contact, [])))
        return contact["id"]

    def create_contacts(self, items: Any) -> dict:
        items = q.require_list(items)
        created = []
        events: list[tuple[str, str, dict]] = []
        with self.lock:
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise self.invalid(
                        [
                            {
                                "request_id": str(index),
                                "errors": [
                                    {"code": "InvalidType", "path": "", "detail": "Each item must be an object"}
                                ],
                            }
                        ]
                    )
            for index, item in enumerate(items):
                contact_id = self.create_contact({**item, "request_id": item.get("request_id", str(index))}, events)
                created.append(
                    {
                        "id": contact_id,
                        "request_id": str(item.get("request_id", index)),
                        "_links": self.link(f"/api/v4/contacts/{contact_id}"),
                    }
                )
        self.emit(events)
        return {"_links": self.link("/api/v4/contacts"), "_embedded": {"contacts": created}}

    def update_contacts(self, items: Any, single_id: int | None = None) -> Any:
        items = q.patch_items(items, single_id)
        updated, events = [], []
        with self.lock:
            for index, item in enumerate(items):
                contact_id = item.get("id") if isinstance(item, dict) else None
                if contact_id not in self.contacts or self.contacts[contact_id].get("is_deleted"):
                    raise problem(404, "Not Found", "Contact not found")
                draft = copy.deepcopy(self.contacts[contact_id])
                errors: list = []
                self._apply_contact_fields(draft, item, errors, "")
                if errors:
                    raise self.invalid(
                        [{"request_id": str(item.get("request_id", index)), "id": contact_id, "errors": errors}]
                    )
                draft["updated_at"] = now()
                self.contacts[contact_id] = draft
                events.append(("contacts", "update", legacy_contact(draft, self.leads_of_contact(contact_id))))
                updated.append(
                    {
                        "id": contact_id,
                        "updated_at": draft["updated_at"],
                        "request_id": str(item.get("request_id", index)),
                        "_links": self.link(f"/api/v4/contacts/{contact_id}"),
                    }
                )
        self.emit(events)
        if single_id is not None:
            return updated[0]
        return {"_links": self.link("/api/v4/contacts"), "_embedded": {"contacts": updated}}
