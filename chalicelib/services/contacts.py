"""amoCRM contacts: mirror, fetch-by-id for lead syncs, create and update for the Main Backend."""
from __future__ import annotations

import logging
from typing import Any, Iterable

from chalicelib.amo.entities import ContactInfo, created_id, read_contact
from chalicelib.models import AmoContact, Lead
from chalicelib.services import gateway, mirror
from chalicelib.services.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

FIELDS = ("name", "first_name", "last_name", "email", "phone", "responsible_user_id", "amo_created_at",
          "amo_updated_at", "account_id")
IDS_PER_REQUEST = 250
MAX_QUERY_CHARS = 7700  # the request line must fit the 8 KB that nginx and Apache accept (no 414)
_ID_PARAM = "filter%5Bid%5D%5B%5D="  # how filter[id][] goes over the wire (brackets encoded)


def to_item(info: ContactInfo) -> AmoContact:
    return AmoContact(id=info.id, name=info.name, first_name=info.first_name, last_name=info.last_name,
                      email=info.email, phone=info.phone, responsible_user_id=info.responsible_user_id,
                      amo_created_at=info.created_at, amo_updated_at=info.updated_at, account_id=info.account_id)


def store(raw_contacts: Iterable[Any], known_new: bool = False) -> tuple[list[AmoContact], list[dict]]:
    """Upsert amoCRM contact objects; returns (every valid contact, per-item errors).
    `known_new`: the caller has just seen they are not stored, so skip reading them first."""
    infos, errors = mirror.read_all(raw_contacts, read_contact)
    return save(infos, known_new), errors


def save(infos: list[ContactInfo], known_new: bool = False) -> list[AmoContact]:
    """Upsert contacts already read from amoCRM objects."""
    items = [to_item(info) for info in infos]
    mirror.upsert_changed(AmoContact, list(items), FIELDS, stored={} if known_new else None)
    return items


def id_chunks(ids: list[int]) -> Iterable[list[int]]:
    """Chunks of at most 250 ids whose `filter[id][]=…` query stays under MAX_QUERY_CHARS."""
    chunk: list[int] = []
    length = 0
    for contact_id in ids:
        cost = len(_ID_PARAM) + len(str(contact_id)) + 1
        if chunk and (len(chunk) == IDS_PER_REQUEST or length + cost > MAX_QUERY_CHARS):
            yield chunk
            chunk, length = [], 0
        chunk.append(contact_id)
        length += cost
    if chunk:
        yield chunk


def fetch_raw(ids: list[int]) -> list[dict]:
    """amoCRM contact objects by id, in batches of up to 250 ids (never one request per contact)."""
    client = gateway.amo_client()
    found: list[dict] = []
    for chunk in id_chunks(ids):
        body = client.get("/api/v4/contacts", {"filter[id][]": chunk, "limit": IDS_PER_REQUEST}) or {}
        found.extend((body.get("_embedded") or {}).get("contacts") or [])
    return found


def fetch_by_ids(ids: list[int]) -> dict[int, AmoContact]:
    """Fetch contacts from amoCRM in batches by id, store them, return them by id."""
    items, _ = store(fetch_raw(ids))
    return {item.id: item for item in items}


def sync_page(raw_contacts: list[dict]) -> tuple[int, list[dict]]:
    items, errors = store(raw_contacts)
    return len(items), errors


def get_contacts(limit: int, cursor: str | None) -> dict:
    return mirror.page_of_scan(lambda start, n: AmoContact.scan(limit=n, last_evaluated_key=start),
                               limit, cursor, lambda c: c.to_dict())


# -- writes for the Main Backend ----------------------------------------------------------------

def contact_body(data: dict) -> dict:
    """amoCRM contact JSON from our flat {name, first_name, last_name, phone, email, responsible_user_id}."""
    body: dict[str, Any] = {k: data[k] for k in ("name", "first_name", "last_name", "responsible_user_id")
                            if data.get(k) is not None}
    fields = []
    if data.get("phone"):
        fields.append({"field_code": "PHONE", "values": [{"value": data["phone"], "enum_code": "WORK"}]})
    if data.get("email"):
        fields.append({"field_code": "EMAIL", "values": [{"value": data["email"], "enum_code": "WORK"}]})
    if fields:
        body["custom_fields_values"] = fields
    return body


def refresh(contact_id: int) -> AmoContact:
    """Re-read one contact from amoCRM and store it (also refreshes the leads that use it)."""
    raw = gateway.amo_client().get_one(f"/api/v4/contacts/{contact_id}")
    if not raw:
        raise NotFound(f"contact {contact_id} does not exist in amoCRM")
    items, errors = store([raw])
    if errors:
        raise InvalidInput(errors[0]["message"])
    refresh_guest_fields(items[0])
    return items[0]


def refresh_guest_fields(contact: AmoContact) -> int:
    """Copy a contact's name, phone and e-mail onto the leads whose main contact it is."""
    changed = 0
    for lead in Lead.by_amo_contact_id.query(contact.id):
        if (lead.guest_name, lead.guest_phone, lead.guest_email) == (contact.name, contact.phone, contact.email):
            continue
        lead.update(actions=[Lead.guest_name.set(contact.name), Lead.guest_phone.set(contact.phone),
                             Lead.guest_email.set(contact.email)])
        changed += 1
    return changed


def create_contact(data: dict) -> dict:
    body = contact_body(data)
    created = gateway.amo_client().post("/api/v4/contacts", [{**body, "request_id": "0"}])
    contact_id = created_id(created, "contacts")
    if not isinstance(contact_id, int):
        raise InvalidInput("amoCRM did not return the new contact's id")
    refresh(contact_id)
    return {"amoContactId": contact_id}


def update_contact(contact_id: int, data: dict) -> dict:
    body = contact_body(data)
    if not body:
        raise InvalidInput("nothing to update: give name, first_name, last_name, phone, email or responsible_user_id")
    gateway.amo_client().patch(f"/api/v4/contacts/{contact_id}", body)  # an unknown id: amoCRM's 404
    refresh(contact_id)
    return {"message": "contact updated", "amoContactId": contact_id}
