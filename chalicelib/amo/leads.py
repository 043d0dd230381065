"""amoCRM leads (reference §5): `/api/v4/leads`, always listed with their contacts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.amo.entities import MAX_INT, MalformedEntity, created_id, new_id, optional_int, require_int
from chalicelib.amo.pages import embedded
from chalicelib.amo.resource import IDS_PER_REQUEST, ListResource, id_chunks

WON_STATUS_ID, LOST_STATUS_ID = 142, 143
# `/leads/complex` caps (reference §3.6, [K-COMPLEX]): leads per request, linked entities per
# lead, custom-field values per entity (every value of every field counts)
MAX_COMPLEX_LEADS = 50
MAX_COMPLEX_LINKED = 1
MAX_FIELD_VALUES = 40
WRITABLE_FIELDS = (
    "name",
    "price",
    "status_id",
    "pipeline_id",
    "responsible_user_id",
    "custom_fields_values",
    "_embedded",
    "loss_reason_id",
)


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
    contacts = [
        c
        for c in ((raw.get("_embedded") or {}).get("contacts") or [])
        if isinstance(c, dict) and isinstance(c.get("id"), int) and not isinstance(c.get("id"), bool)
    ]
    main = next((c for c in contacts if c.get("is_main")), contacts[0] if contacts else None)
    return main["id"] if main else None


def read_lead(raw: Any) -> LeadInfo:
    lead_id = require_int(raw, "id", "lead")
    price = raw.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
        raise MalformedEntity(f"lead {lead_id} has a non-numeric price")
    finite = price is None or isinstance(price, int) or math.isfinite(price)
    if not finite or abs(price or 0) > MAX_INT:
        raise MalformedEntity(f"lead {lead_id} has a price that is not a finite number within ±2^53")
    fields = raw.get("custom_fields_values")
    return LeadInfo(
        id=lead_id,
        name=str(raw.get("name") or ""),
        price=int(price) if price is not None else None,
        responsible_user_id=optional_int(raw, "responsible_user_id"),
        pipeline_id=require_int(raw, "pipeline_id", f"lead {lead_id}"),
        status_id=require_int(raw, "status_id", f"lead {lead_id}"),
        main_contact_id=main_contact_id(raw),
        custom_fields=fields if isinstance(fields, list) else None,
        updated_at=require_int(raw, "updated_at", f"lead {lead_id}"),
        account_id=optional_int(raw, "account_id"),
        is_deleted=bool(raw.get("is_deleted")),
    )


@dataclass(frozen=True)
class ComplexResult:
    """One item of `/leads/complex`'s answer. `merged`: amoCRM's duplicate control answered an
    existing lead (and the existing contact) instead of creating one (reference §5.4)."""

    lead_id: int
    contact_id: int | None
    merged: bool


def field_value_count(entity: Any) -> int:
    """How many custom-field values an entity carries (each value of each field counts)."""
    fields = entity.get("custom_fields_values") if isinstance(entity, dict) else None
    return sum(len(f["values"]) for f in fields or [] if isinstance(f, dict) and isinstance(f.get("values"), list))


def complex_problems(item: dict) -> list[str]:
    """What in one `/leads/complex` item breaks amoCRM's documented caps (reference §3.6), in
    words a caller can act on; empty when it fits."""
    problems = []
    embedded: dict = item["_embedded"] if isinstance(item.get("_embedded"), dict) else {}
    checked: list[tuple[str, Any]] = [("the lead", item)]
    for key, name in (("contacts", "contact"), ("companies", "company")):
        linked: list = embedded[key] if isinstance(embedded.get(key), list) else []
        if len(linked) > MAX_COMPLEX_LINKED:
            problems.append(f"at most {MAX_COMPLEX_LINKED} {name} per lead ({len(linked)} given)")
        checked.extend((f"the {name}", entity) for entity in linked)
    for name, entity in checked:
        count = field_value_count(entity)
        if count > MAX_FIELD_VALUES:
            problems.append(f"{name} has {count} custom field values; amoCRM takes at most {MAX_FIELD_VALUES}")
    return problems


def writable(lead_data: dict) -> dict:
    """The part of a lead object amoCRM accepts on create and update."""
    return {k: v for k, v in lead_data.items() if k in WRITABLE_FIELDS}


class Leads(ListResource):
    path = "/api/v4/leads"
    key = "leads"
    list_params = {"with": "contacts", "order[id]": "asc"}
    one_params = {"with": "contacts"}
    by_updated_at = True

    def create(self, lead: dict, tags: tuple[str, ...] = ()) -> int:
        """POST one lead (a one-element array, as amoCRM takes), with tags by name; its new id."""
        body = {**writable(lead), "request_id": "0"}
        if tags:
            body["_embedded"] = {**(body.get("_embedded") or {}), "tags": [{"name": t} for t in tags]}
        return new_id(created_id(self.client.post(self.path, [body]), "leads"), "lead")

    def complex_body(self, lead: dict, contact: dict) -> dict:
        """One `/leads/complex` item: the lead with its contact as a full object."""
        body = {**writable(lead), "request_id": "0"}
        body["_embedded"] = {**(body.get("_embedded") or {}), "contacts": [contact]}
        return body

    def create_with_contact(self, body: dict) -> ComplexResult:
        """The lead and its contact in one call (`/leads/complex`, which answers a plain array),
        from `complex_body` (checked against `complex_problems` by the caller). Duplicate control
        may answer an existing lead: `merged` says so."""
        created = self.client.post(f"{self.path}/complex", [body])
        first = created[0] if isinstance(created, list) and created and isinstance(created[0], dict) else {}
        return ComplexResult(
            lead_id=new_id(optional_int(first, "id"), "lead"),
            contact_id=optional_int(first, "contact_id"),
            merged=first.get("merged") is True,
        )

    def update(self, lead_id: int, lead: dict) -> None:
        """PATCH one lead with a single object (an unknown id answers 404)."""
        self.client.patch(f"{self.path}/{int(lead_id)}", writable(lead))

    def clear_fields(self, lead_id: int, field_ids: Iterable[int]) -> None:
        """Empty these custom fields of one lead (`values: null`, reference §5.3); nothing else changes."""
        body = {"custom_fields_values": [{"field_id": int(i), "values": None} for i in field_ids]}
        self.client.patch(f"{self.path}/{int(lead_id)}", body)

    def in_trash(self, ids: Iterable[int]) -> list[dict]:
        """The leads among these ids that are in amoCRM's trash (`with=only_deleted`, reference
        §10.1: `{id, updated_at, updated_by, is_deleted}` each), in batches of up to 250 ids."""
        found: list[dict] = []
        for chunk in id_chunks(ids):
            params = {"with": "only_deleted", "filter[id][]": chunk, "limit": IDS_PER_REQUEST}
            found.extend(embedded(self.client.get(self.path, params), self.key))
        return found
