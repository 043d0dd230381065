"""amoCRM contacts: mirror, one-by-one reads for leads, create and update for the Main Backend."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from chalicelib.amo.api import AmoApi
from chalicelib.amo.contacts import ContactInfo, contact_body, contact_changes, read_contact
from chalicelib.models import AmoContact, Lead, utc_now
from chalicelib.services import mirror
from chalicelib.services.checkpoints import Checkpoint
from chalicelib.services.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

FIELDS = (
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "responsible_user_id",
    "amo_created_at",
    "amo_updated_at",
    "account_id",
)


def values(info: ContactInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "first_name": info.first_name,
        "last_name": info.last_name,
        "email": info.email,
        "phone": info.phone,
        "responsible_user_id": info.responsible_user_id,
        "amo_created_at": info.created_at,
        "amo_updated_at": info.updated_at,
        "account_id": info.account_id,
    }


def to_item(info: ContactInfo) -> AmoContact:
    return AmoContact(**values(info))


_serialize_new = mirror.Serializer(AmoContact)


def store(raw_contacts: Iterable[Any], *, refresh_every_lead: bool = False) -> tuple[list[AmoContact], list[dict]]:
    """Upsert amoCRM contact objects; returns (every contact stored or current, per-item errors)."""
    infos, errors = mirror.read_all(raw_contacts, read_contact)
    items, refused = save(infos, refresh_every_lead=refresh_every_lead)
    return items, errors + refused


def save(infos: list[ContactInfo], *, refresh_every_lead: bool = False) -> tuple[list[AmoContact], list[dict]]:
    """Upsert contacts already read from amoCRM objects; (the contacts, the ones DynamoDB refused
    as `errors`).

    The leads a contact feeds are brought up to date *before* the contact is written: were it
    the other way round, a failure in between would leave the contact current and its leads
    stale, and the redelivery or the next sync would find nothing to do. A changed contact's
    leads are always refreshed; with `refresh_every_lead` (one contact from a webhook) also a
    new or unchanged one's, since its leads may have been written before it was known."""
    items = [to_item(info) for info in infos]
    stored = mirror.batch_get(AmoContact, [item.id for item in items])
    for item in items:
        if _feeds_leads_anew(stored.get(item.id), item, every=refresh_every_lead):
            refresh_guest_fields(item)
    result = mirror.upsert_changed(AmoContact, items=list(items), fields=FIELDS, stored=stored)
    for lost in result.conflicts:  # a newer version landed meanwhile: its leads follow it, not us
        refresh_guest_fields(AmoContact.get(lost.id, consistent_read=True))
    refused = {error["id"] for error in result.errors}
    return [item for item in items if item.id not in refused], result.errors


def _feeds_leads_anew(old: AmoContact | None, new: AmoContact, *, every: bool) -> bool:
    if old is not None and (old.amo_updated_at or 0) > (new.amo_updated_at or 0):
        return False  # older than what we hold: it must not reach the leads either
    if every:
        return True
    return old is not None and _guest(old) != _guest(new)


def _guest(contact: AmoContact) -> tuple[str | None, str | None, str | None]:
    return contact.name, contact.phone, contact.email


def save_new(infos: list[ContactInfo]) -> list[dict]:
    """Store contacts the caller has just seen are not stored (no read, no model built); the
    `errors` of the ones DynamoDB refused."""
    now = utc_now()
    items = [(info.id, _serialize_new({**values(info), "created_at": now, "updated_at": now})) for info in infos]
    created = mirror.put_new(AmoContact, items)
    taken = set(created.taken)  # stored meanwhile (a webhook): written only if ours is newer
    return created.errors + save([info for info in infos if info.id in taken])[1]


def fetch_one(amo: AmoApi, contact_id: int) -> AmoContact | None:
    """Read one contact from amoCRM and store it; None when amoCRM says it does not exist."""
    raw = amo.contacts.get(contact_id)
    if not raw:
        return None
    items, errors = store([raw])
    if errors:
        raise InvalidInput(errors[0]["message"])
    return items[0]


def sync_page(raw_contacts: list[dict]) -> tuple[int, list[dict]]:
    items, errors = store(raw_contacts)
    return len(items), errors


def get_contacts(limit: int, cursor: str | None) -> dict:
    return mirror.page_of_scan(
        lambda start, n: AmoContact.scan(limit=n, last_evaluated_key=start),
        keys=mirror.key_schema(AmoContact),
        limit=limit,
        cursor=cursor,
        render=lambda c: c.to_dict(),
    )


def refresh(amo: AmoApi, contact_id: int) -> AmoContact:
    """Re-read one contact from amoCRM and store it (also refreshes the leads that use it)."""
    raw = amo.contacts.get(contact_id)
    if not raw:
        raise NotFound(f"contact {contact_id} does not exist in amoCRM")
    return apply(raw)


def apply(raw: dict) -> AmoContact:
    """Store one amoCRM contact object and refresh the guest fields of the leads that use it."""
    items, errors = store([raw], refresh_every_lead=True)
    if errors:
        raise InvalidInput(errors[0]["message"])
    return items[0]


def refresh_guest_fields(contact: AmoContact) -> int:
    """Copy a contact's name, phone and e-mail onto the leads whose main contact it is."""
    changed = 0
    for lead in Lead.by_amo_contact_id.query(contact.id):
        if (lead.guest_name, lead.guest_phone, lead.guest_email) == _guest(contact):
            continue
        lead.update(
            actions=[
                Lead.guest_name.set(contact.name),
                Lead.guest_phone.set(contact.phone),
                Lead.guest_email.set(contact.email),
            ]
        )
        changed += 1
    return changed


# -- writes for the Main Backend ----------------------------------------------------------------


def create_contact(amo: AmoApi, data: dict, checkpoint: Checkpoint | None = None) -> dict:
    """Create in amoCRM, then store; `checkpoint` hears of the POST and of the new id (idempotency)."""
    result = (checkpoint or Checkpoint()).around(lambda: {"amoContactId": amo.contacts.create(data)})
    refresh(amo, result["amoContactId"])
    return result


def update_contact(amo: AmoApi, contact_id: int, data: dict) -> dict:
    """Change a contact without losing what the caller did not name: it is read first, and only
    what differs is written, phones and e-mails as the merged full lists (reference §5.3)."""
    if not contact_body(data):
        raise InvalidInput("nothing to update: give name, first_name, last_name, phone, email or responsible_user_id")
    current = amo.contacts.get(contact_id)
    if not current:
        raise NotFound(f"contact {contact_id} does not exist in amoCRM")
    changes = contact_changes(current, data)
    if changes:
        amo.contacts.patch(contact_id, changes)
        refresh(amo, contact_id)
    else:  # amoCRM already holds it: nothing is written, the copy just read is stored
        apply(current)
    return {"message": "contact updated" if changes else "contact unchanged", "amoContactId": contact_id}
