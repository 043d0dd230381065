"""Leads: amoCRM leads mirrored as our Lead records, and lead writes for the Main Backend.

A Lead's id is a UUID derived from its amoCRM id, so every path that meets an amoCRM lead
(sync, webhook, create-lead) lands on the same record without a lookup race, and
create-or-update is a single conditional write.

Lead fields come from amoCRM as SPEC §2 says: the main contact (`is_main`, else the first)
gives the guest's name, first PHONE and first EMAIL; the status is the mapping of the
lead's (pipeline, stage), with 142/143 always CLOSED; an unmapped stage keeps an existing
lead's status and makes a new one NEW.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

from pynamodb.exceptions import PynamoDBException

from chalicelib import settings
from chalicelib.amo.api import AmoApi
from chalicelib.amo.contacts import contact_body
from chalicelib.amo.entities import MalformedEntity, first_value
from chalicelib.amo.leads import LOST_STATUS_ID, WON_STATUS_ID, WRITABLE_FIELDS, LeadInfo, read_lead, writable
from chalicelib.locking import is_conflict
from chalicelib.models import AmoContact, Lead, utc_now
from chalicelib.services import contacts, mirror, notifications, pipelines
from chalicelib.services.errors import InvalidInput, NotFound
from chalicelib.services.guests import Guest
from chalicelib.services.stage_names import CLOSED, NEW

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c9a52-3d0e-4c55-9d0b-6b7e4c1d2a10")
FIELDS = ("amo_lead_id", "amo_contact_id", "responsible_user_id", "status", "amo_pipeline_id", "amo_status_id",
          "guest_name", "guest_phone", "guest_email", "price", "property_id", "custom_fields", "amo_updated_at",
          "account_id")


def lead_id_for(amo_lead_id: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"amocrm-lead:{amo_lead_id}"))


def _status(info: LeadInfo, mapped: str | None, existing: Lead | None) -> str:
    if info.status_id in (WON_STATUS_ID, LOST_STATUS_ID):
        return CLOSED
    if mapped:
        return mapped
    return existing.status if existing is not None and existing.status else NEW


def build(info: LeadInfo, contact: Guest | AmoContact | None, mapped: str | None, existing: Lead | None) -> Lead:
    property_field = settings.amo_property_field_id()
    return Lead(id=existing.id if existing is not None else lead_id_for(info.id), amo_lead_id=info.id,
                amo_contact_id=info.main_contact_id, responsible_user_id=info.responsible_user_id,
                status=_status(info, mapped, existing), amo_pipeline_id=info.pipeline_id,
                amo_status_id=info.status_id,
                guest_name=(contact.name or None) if contact else None,
                guest_phone=contact.phone if contact else None, guest_email=contact.email if contact else None,
                price=info.price,
                property_id=first_value(info.custom_fields, field_id=property_field) if property_field else None,
                custom_fields=info.custom_fields, amo_updated_at=info.updated_at, account_id=info.account_id,
                created_at=existing.created_at if existing is not None else None)


def _notify_if_status_changed(old: Lead | None, new: Lead) -> None:
    if old is not None and old.status != new.status:
        notifications.record_status_change(new, old.status, new.amo_updated_at or 0)


def write_batch(infos: list[LeadInfo], guests: dict[int, Guest | None],
                stage_map: dict[tuple[int, int], str | None]) -> None:
    """Upsert many leads at once (what changed only) and notify their status changes."""
    stored = mirror.batch_get(Lead, [lead_id_for(i.id) for i in infos])
    items = [build(info, guests.get(info.main_contact_id) if info.main_contact_id else None,
                   stage_map.get((info.pipeline_id, info.status_id)), stored.get(lead_id_for(info.id)))
             for info in infos]
    for old, new in mirror.upsert_changed(Lead, items, FIELDS, stored=stored):
        _notify_if_status_changed(old, new)


# -- one lead at a time (webhooks, sync-lead, writes) ---------------------------------------------

def _contact_for(amo: AmoApi, info: LeadInfo) -> AmoContact | None:
    if not info.main_contact_id:
        return None
    try:
        return AmoContact.get(info.main_contact_id)
    except AmoContact.DoesNotExist:
        return contacts.fetch_one(amo, info.main_contact_id)


def upsert_one(amo: AmoApi, raw_lead: Any) -> Lead | None:
    """Create or update the Lead of one amoCRM lead object; None when what we store is newer."""
    try:
        info = read_lead(raw_lead)
    except MalformedEntity as error:
        raise InvalidInput(str(error)) from None
    contact = _contact_for(amo, info)
    mapped = pipelines.mapped_status_of(info.pipeline_id, info.status_id)
    for _ in range(3):
        try:
            existing = Lead.get(lead_id_for(info.id), consistent_read=True)
        except Lead.DoesNotExist:
            existing = None
        if existing is not None and (existing.amo_updated_at or 0) > info.updated_at:
            return None
        lead = build(info, contact, mapped, existing)
        if existing is not None and mirror.same(existing, lead, FIELDS):
            return existing
        lead.touch()
        condition = (Lead.id.does_not_exist() if existing is None
                     else Lead.amo_updated_at.does_not_exist() | (Lead.amo_updated_at <= info.updated_at))
        try:
            lead.save(condition=condition)
        except PynamoDBException as error:
            if is_conflict(error):
                continue  # someone wrote meanwhile: re-read and decide again
            raise
        _notify_if_status_changed(existing, lead)
        return lead
    return None


def fetch_and_upsert(amo: AmoApi, amo_lead_id: int) -> Lead | None:
    raw = amo.leads.get(amo_lead_id)
    if not raw:
        raise NotFound(f"lead {amo_lead_id} does not exist in amoCRM")
    return upsert_one(amo, raw)


def _create_from_status_event(amo: AmoApi, amo_lead_id: int, old_pipeline_id: int | None,
                              old_status_id: int | None) -> str:
    """A status change of a lead we have not seen yet: fetch it, and since the event names the
    stage it left, notify the change from that stage's status (when it maps to a different one)."""
    lead = fetch_and_upsert(amo, amo_lead_id)
    if lead is None:
        return "stale"
    previous = pipelines.mapped_status_of(old_pipeline_id, old_status_id) if old_status_id else None
    if previous and previous != lead.status:
        notifications.record_status_change(lead, previous, lead.amo_updated_at or int(utc_now().timestamp()))
    return "applied"


def apply_status(amo: AmoApi, amo_lead_id: int, pipeline_id: int | None, status_id: int | None,
                 changed_at: int | None, old_pipeline_id: int | None = None,
                 old_status_id: int | None = None) -> str:
    """A `leads[status]` webhook: move our Lead to the stage's mapped status and notify.

    Uses the webhook's own fields (no amoCRM call) when we know the lead; an unknown lead is
    fetched and created. An event older than what we store is ignored.
    """
    if pipeline_id is None or status_id is None:
        return "applied" if fetch_and_upsert(amo, amo_lead_id) else "stale"
    try:
        existing = Lead.get(lead_id_for(amo_lead_id), consistent_read=True)
    except Lead.DoesNotExist:
        return _create_from_status_event(amo, amo_lead_id, old_pipeline_id or pipeline_id, old_status_id)
    if changed_at is not None and (existing.amo_updated_at or 0) > changed_at:
        return "stale"
    if (existing.amo_pipeline_id, existing.amo_status_id) == (pipeline_id, status_id) and \
            (changed_at is None or existing.amo_updated_at == changed_at):
        return "unchanged"
    previous = existing.status
    info_status = pipelines.mapped_status_of(pipeline_id, status_id) or previous or NEW
    occurred_at = changed_at or int(utc_now().timestamp())
    condition = Lead.amo_updated_at.does_not_exist() | (Lead.amo_updated_at <= occurred_at)
    try:
        existing.update(actions=[Lead.amo_pipeline_id.set(pipeline_id), Lead.amo_status_id.set(status_id),
                                 Lead.status.set(info_status), Lead.amo_updated_at.set(occurred_at),
                                 Lead.updated_at.set(utc_now())], condition=condition)
    except PynamoDBException as error:
        if is_conflict(error):
            return "stale"
        raise
    if previous != existing.status:
        notifications.record_status_change(existing, previous, occurred_at)
    return "applied"


def get_lead(amo_lead_id: int) -> dict:
    for lead in Lead.by_amo_lead_id.query(amo_lead_id):
        return lead.to_dict()
    raise NotFound(f"lead {amo_lead_id} is not known (sync it first)")


def sync_lead(amo: AmoApi, raw_lead: Any) -> dict:
    if not isinstance(raw_lead, dict):
        raise InvalidInput("lead must be an amoCRM lead object")
    lead = upsert_one(amo, raw_lead)
    if lead is None:
        stored = Lead.get(lead_id_for(raw_lead["id"]))
        return {"message": "a newer version of this lead is already stored", "leadId": stored.id}
    return {"message": "lead synced", "leadId": lead.id}


# -- writes for the Main Backend ------------------------------------------------------------------

def create_lead(amo: AmoApi, lead_data: dict, contact: dict | None = None, tags: tuple[str, ...] = (),
                checkpoint: Callable[[dict], None] = lambda result: None) -> dict:
    """Create the lead in amoCRM (with its contact in the same call) and the linked Lead.
    `checkpoint` hears of the new lead the moment amoCRM has created it (see idempotency)."""
    if contact:
        amo_lead_id = amo.leads.create_with_contact(lead_data, contact_body(contact))
    else:
        amo_lead_id = amo.leads.create(lead_data, tags)
    result = {"amoLeadId": amo_lead_id, "leadId": lead_id_for(amo_lead_id)}
    checkpoint(result)
    fetch_and_upsert(amo, amo_lead_id)
    return result


def update_lead(amo: AmoApi, amo_lead_id: int, lead_data: dict) -> dict:
    if not writable(lead_data):
        raise InvalidInput(f"leadData has nothing to update: give one of {', '.join(WRITABLE_FIELDS)}")
    amo.leads.update(amo_lead_id, lead_data)  # an unknown id: amoCRM's 404
    fetch_and_upsert(amo, amo_lead_id)
    return {"message": "lead updated", "amoLeadId": amo_lead_id}


def add_note(amo: AmoApi, amo_lead_id: int, text: str) -> dict:
    note_id = amo.lead_notes.add_text(amo_lead_id, text)
    return {"message": "note added", "amoLeadId": amo_lead_id, "noteId": note_id}


def create_test_lead(amo: AmoApi) -> dict:
    """Development only: a clearly marked lead to check the connection end to end."""
    stamp = utc_now().strftime("%Y-%m-%d %H:%M:%S")
    result = create_lead(amo, {"name": f"[TEST] amoCRM integration check {stamp} UTC", "price": 0},
                         tags=("integration-test",))
    return {"amoLeadId": result["amoLeadId"]}


def unlink(amo_lead_id: int) -> bool:
    """amoCRM deleted the lead: keep our record, clear its link (SPEC §3)."""
    try:
        lead = Lead.get(lead_id_for(amo_lead_id))
    except Lead.DoesNotExist:
        return False
    lead.update(actions=[Lead.amo_lead_id.remove(), Lead.updated_at.set(utc_now())])
    return True
