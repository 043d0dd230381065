"""Leads: amoCRM leads mirrored as our Lead records, and lead writes for the Main Backend.

A Lead's id is a UUID derived from its amoCRM id, so every path that meets an amoCRM lead
(sync, webhook, create-lead) lands on the same record without a lookup race, and
create-or-update is a single conditional write.

Lead fields come from amoCRM as SPEC §2 says: the main contact (`is_main`, else the first)
gives the guest's name, first PHONE and first EMAIL; the status is the mapping of the
lead's (pipeline, stage) (lead_status.derive). Every path that changes a status writes the
lead and its notification in one transaction (lead_status.write), and never over a newer
version: a write is conditional on amoCRM's `updated_at` and on the status it was decided
from, and a lost condition reads the lead again and decides anew.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from chalicelib import metrics, settings
from chalicelib.amo.api import AmoApi
from chalicelib.amo.contacts import contact_body
from chalicelib.amo.entities import MalformedEntity, first_value
from chalicelib.amo.leads import WRITABLE_FIELDS, LeadInfo, complex_problems, read_lead, writable
from chalicelib.models import AmoContact, Lead, utc_now
from chalicelib.services import contacts, lead_status, mirror, pipelines
from chalicelib.services.checkpoints import Checkpoint
from chalicelib.services.errors import Conflict, InvalidInput, NotFound
from chalicelib.services.guests import Guest
from chalicelib.services.lead_status import StageMapping
from chalicelib.services.webhook_outcomes import EventOutcome

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c9a52-3d0e-4c55-9d0b-6b7e4c1d2a10")
FIELDS = (
    "amo_lead_id",
    "amo_contact_id",
    "responsible_user_id",
    "status",
    "amo_pipeline_id",
    "amo_status_id",
    "guest_name",
    "guest_phone",
    "guest_email",
    "price",
    "property_id",
    "custom_fields",
    "amo_updated_at",
    "account_id",
)
MAX_CUSTOM_FIELDS_BYTES = 200_000  # of JSON, as stored; a DynamoDB item holds at most 400 KB
UNREAD: Any = object()


def lead_id_for(amo_lead_id: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"amocrm-lead:{amo_lead_id}"))


def bounded_custom_fields(fields: list | None) -> list | None:
    """amoCRM's custom fields as they are, or, when they would not fit in a DynamoDB item, the
    ones that fit followed by a marker naming what was left out."""
    if fields is None:
        return None
    size = len(json.dumps(fields))
    if size <= MAX_CUSTOM_FIELDS_BYTES:
        return fields
    kept, used, omitted = [], 1_000, []  # room for the marker
    for field in fields:
        length = len(json.dumps(field)) + 2
        if used + length <= MAX_CUSTOM_FIELDS_BYTES:
            kept.append(field)
            used += length
        else:
            omitted.append(field.get("field_id") if isinstance(field, dict) else None)
    return kept + [
        {"truncated": True, "omitted_field_ids": omitted[:50], "omitted_fields": len(omitted), "original_bytes": size}
    ]


def values(
    info: LeadInfo,
    *,
    contact: Guest | AmoContact | None,
    mapping: StageMapping | None,
    existing: Lead | None,
    lead_id: str | None = None,
) -> dict[str, Any]:
    """The attribute values of the Lead of `info` (`lead_id`: its id, when already derived)."""
    if existing is None:
        return {
            **fields_of(info, contact=contact, mapping=mapping, lead_id=lead_id or lead_id_for(info.id), status=None),
            "created_at": None,
        }
    return {
        **fields_of(info, contact=contact, mapping=mapping, lead_id=existing.id, status=existing.status),
        "created_at": existing.created_at,
    }


def fields_of(
    info: LeadInfo,
    *,
    contact: Guest | AmoContact | None,
    mapping: StageMapping | None,
    lead_id: str,
    status: str | None,
) -> dict[str, Any]:
    """The Lead of `info` as `values` gives it, but for created_at, from the stored lead's id and
    status alone (a new lead: its derived id and None)."""
    property_field = settings.amo_property_field_id()
    return {
        "id": lead_id,
        "amo_lead_id": info.id,
        "amo_contact_id": info.main_contact_id,
        "responsible_user_id": info.responsible_user_id,
        "status": lead_status.derive(info.status_id, mapping, status),
        "amo_pipeline_id": info.pipeline_id,
        "amo_status_id": info.status_id,
        "guest_name": (contact.name or None) if contact else None,
        "guest_phone": contact.phone if contact else None,
        "guest_email": contact.email if contact else None,
        "price": info.price,
        "property_id": first_value(info.custom_fields, field_id=property_field) if property_field else None,
        "custom_fields": bounded_custom_fields(info.custom_fields),
        "amo_updated_at": info.updated_at,
        "account_id": info.account_id,
    }


def build(
    info: LeadInfo, *, contact: Guest | AmoContact | None, mapping: StageMapping | None, existing: Lead | None
) -> Lead:
    return Lead(**values(info, contact=contact, mapping=mapping, existing=existing))


# -- one lead at a time (webhooks, sync-lead, writes) ---------------------------------------------


def _contact_for(amo: AmoApi, info: LeadInfo) -> AmoContact | None:
    if not info.main_contact_id:
        return None
    try:
        return AmoContact.get(info.main_contact_id)
    except AmoContact.DoesNotExist:
        return contacts.fetch_one(amo, info.main_contact_id)


def _stored(amo_lead_id: int) -> Lead | None:
    try:
        return Lead.get(lead_id_for(amo_lead_id), consistent_read=True)
    except Lead.DoesNotExist:
        return None


def upsert(
    info: LeadInfo,
    *,
    contact: Guest | AmoContact | None,
    existing: Any = UNREAD,
    mapping: Any = UNREAD,
    came_from: str | None = None,
) -> Lead | None:
    """Create or update the Lead of `info`; None when what we store is newer. `existing` and
    `mapping` spare their reads on the first attempt; a lost condition reads both again.
    `came_from`: the status a lead we do not store yet had before this change (notified)."""
    for attempt in range(3):
        if attempt or existing is UNREAD:
            existing = _stored(info.id)
        if attempt or mapping is UNREAD:
            mapping = pipelines.mapping_of(info.pipeline_id, info.status_id)
        if existing is not None and (existing.amo_updated_at or 0) > info.updated_at:
            return None
        lead = build(info, contact=contact, mapping=mapping, existing=existing)
        if existing is not None and mirror.same(existing, lead, FIELDS):
            return existing
        lead.touch()
        if existing is None:
            condition = Lead.id.does_not_exist()
            change = (
                lead_status.stage_changed(lead, came_from, info.updated_at)
                if came_from and came_from != lead.status
                else None
            )
        else:
            condition = (Lead.amo_updated_at.does_not_exist() | (Lead.amo_updated_at <= info.updated_at)) & (
                Lead.status == existing.status
            )
            change = lead_status.change_between(existing, new=lead, mapping=mapping, amo_time=info.updated_at)
        if lead_status.write(lead, condition=condition, change=change, mapping=mapping):
            return lead
    raise Conflict(f"lead {info.id} kept changing while it was being written; try again")


def _read(raw_lead: Any) -> LeadInfo:
    try:
        return read_lead(raw_lead)
    except MalformedEntity as error:
        raise InvalidInput(str(error)) from None


def upsert_one(amo: AmoApi, raw_lead: Any, came_from: str | None = None) -> Lead | None:
    """Create or update the Lead of one amoCRM lead object; None when what we store is newer."""
    info = _read(raw_lead)
    return upsert(info, contact=_contact_for(amo, info), came_from=came_from)


def fetch_and_upsert(amo: AmoApi, amo_lead_id: int, came_from: str | None = None) -> Lead | None:
    raw = amo.leads.get(amo_lead_id)
    if not raw:
        raise NotFound(f"lead {amo_lead_id} does not exist in amoCRM")
    return upsert_one(amo, raw, came_from)


def apply_status(
    amo: AmoApi,
    *,
    amo_lead_id: int,
    pipeline_id: int | None,
    status_id: int | None,
    changed_at: int | None,
    old_pipeline_id: int | None = None,
    old_status_id: int | None = None,
) -> EventOutcome:
    """A `leads[status]` webhook: move our Lead to the stage's mapped status and notify.

    Uses the webhook's own fields (no amoCRM call) when we know the lead; an unknown lead is
    fetched and created. An event older than what we store is ignored. An event without a
    stage, without a time (a robot's compact format: our clock is never amoCRM's version), or
    with a time in the future (a forged or broken clock would freeze the lead: every later
    genuine change would look older), is checked with amoCRM instead.
    """
    if pipeline_id is None or status_id is None or changed_at is None or lead_status.in_future(changed_at):
        return EventOutcome.APPLIED if fetch_and_upsert(amo, amo_lead_id) else EventOutcome.STALE
    for _ in range(3):
        existing = _stored(amo_lead_id)
        if existing is None:  # a lead we have not seen: notify the change from the stage it left
            came_from = (
                pipelines.mapped_status_of(old_pipeline_id or pipeline_id, old_status_id) if old_status_id else None
            )
            return EventOutcome.APPLIED if fetch_and_upsert(amo, amo_lead_id, came_from) else EventOutcome.STALE
        if changed_at is not None and (existing.amo_updated_at or 0) > changed_at:
            return EventOutcome.STALE
        stage = (existing.amo_pipeline_id, existing.amo_status_id)
        if stage == (pipeline_id, status_id) and (changed_at is None or existing.amo_updated_at == changed_at):
            return EventOutcome.UNCHANGED
        mapping = pipelines.mapping_of(pipeline_id, status_id)
        previous = existing.status
        occurred_at = changed_at
        existing.status = lead_status.derive(status_id, mapping, previous)
        existing.amo_pipeline_id, existing.amo_status_id, existing.amo_updated_at = pipeline_id, status_id, occurred_at
        change = None
        if existing.status != previous:
            change = (
                lead_status.stage_changed(existing, previous, occurred_at)
                if stage != (pipeline_id, status_id)
                else lead_status.mapping_changed(existing, previous, mapping)
            )
        condition = (Lead.amo_updated_at.does_not_exist() | (Lead.amo_updated_at <= occurred_at)) & (
            Lead.status == previous
        )
        if lead_status.write(
            existing,
            condition=condition,
            change=change,
            mapping=mapping,
            actions=[
                Lead.amo_pipeline_id.set(pipeline_id),
                Lead.amo_status_id.set(status_id),
                Lead.status.set(existing.status),
                Lead.amo_updated_at.set(occurred_at),
                Lead.updated_at.set(utc_now()),
            ],
        ):
            return EventOutcome.APPLIED
    raise Conflict(f"lead {amo_lead_id} kept changing while its status event was applied; try again")


def get_lead(amo_lead_id: int) -> dict:
    for lead in Lead.by_amo_lead_id.query(amo_lead_id):
        return lead.to_dict()
    raise NotFound(f"lead {amo_lead_id} is not known (sync it first)")


def sync_lead(amo: AmoApi, raw_lead: Any) -> dict:
    if not isinstance(raw_lead, dict):
        raise InvalidInput("lead must be an amoCRM lead object")
    info = _read(raw_lead)
    if lead_status.in_future(info.updated_at):
        raise InvalidInput(f"lead.updated_at is more than {lead_status.MAX_FUTURE_SECONDS} seconds in the future")
    lead = upsert(info, contact=_contact_for(amo, info))
    if lead is None:
        return {"message": "a newer version of this lead is already stored", "leadId": lead_id_for(info.id)}
    return {"message": "lead synced", "leadId": lead.id}


# -- writes for the Main Backend ------------------------------------------------------------------


def create_lead(
    amo: AmoApi,
    *,
    lead_data: dict,
    contact: dict | None = None,
    tags: tuple[str, ...] = (),
    checkpoint: Checkpoint | None = None,
) -> dict:
    """Create the lead in amoCRM (with its contact in the same call) and the linked Lead.
    `checkpoint` hears that the POST is about to leave, then of the new lead the moment amoCRM
    has created it (see idempotency)."""
    checkpoint = checkpoint or Checkpoint()
    if contact:
        body = amo.leads.complex_body(lead_data, contact_body(contact))
        problems = complex_problems(body)
        if problems:  # amoCRM would refuse it (reference §3.6): say why before anything is sent
            raise InvalidInput("amoCRM cannot take this lead with its contact: " + "; ".join(problems))
        checkpoint.sending()
        created = amo.leads.create_with_contact(body)
        amo_lead_id = created.lead_id
        result: dict = {"amoLeadId": amo_lead_id, "leadId": lead_id_for(amo_lead_id), "merged": created.merged}
        result["amoContactId"] = created.contact_id
    else:
        checkpoint.sending()
        amo_lead_id = amo.leads.create(lead_data, tags)
        result = {"amoLeadId": amo_lead_id, "leadId": lead_id_for(amo_lead_id), "merged": False}
    checkpoint(result)
    if result["merged"]:  # no new lead: the guest's existing one (see docs/api.md)
        metrics.count("LeadMerged")
        log.info(
            "amoCRM merged the new lead into its existing lead %s (contact %s)", amo_lead_id, result["amoContactId"]
        )
    fetch_and_upsert(amo, amo_lead_id)
    return result


def update_lead(amo: AmoApi, amo_lead_id: int, lead_data: dict) -> dict:
    if not writable(lead_data):
        raise InvalidInput(f"leadData has nothing to update: give one of {', '.join(WRITABLE_FIELDS)}")
    amo.leads.update(amo_lead_id, lead_data)  # an unknown id: amoCRM's 404
    fetch_and_upsert(amo, amo_lead_id)
    return {"message": "lead updated", "amoLeadId": amo_lead_id}


def add_note(amo: AmoApi, *, amo_lead_id: int, text: str, checkpoint: Checkpoint | None = None) -> dict:
    """`checkpoint` hears of the POST and of the new note (idempotency)."""
    return (checkpoint or Checkpoint()).around(
        lambda: {
            "message": "note added",
            "amoLeadId": amo_lead_id,
            "noteId": amo.lead_notes.add_text(amo_lead_id, text),
        }
    )


def create_test_lead(amo: AmoApi) -> dict:
    """Development only: a clearly marked lead to check the connection end to end."""
    stamp = utc_now().strftime("%Y-%m-%d %H:%M:%S")
    result = create_lead(
        amo, lead_data={"name": f"[TEST] amoCRM integration check {stamp} UTC", "price": 0}, tags=("integration-test",)
    )
    return {"amoLeadId": result["amoLeadId"]}


def is_linked(amo_lead_id: int) -> bool:
    """Do we hold a lead linked to this amoCRM lead?"""
    try:
        return Lead.get(lead_id_for(amo_lead_id)).amo_lead_id is not None
    except Lead.DoesNotExist:
        return False


def unlink(amo_lead_id: int, deleted_at: int | None = None) -> bool:
    """amoCRM deleted the lead: keep our record, clear its link (SPEC §3). `deleted_at`: when
    amoCRM says it was deleted (its trash's `updated_at`), on amoCRM's clock."""
    try:
        lead = Lead.get(lead_id_for(amo_lead_id))
    except Lead.DoesNotExist:
        return False
    # The deletion is a version: a sync that listed the lead before it cannot link it again, and
    # a restore (which amoCRM stamps with a later updated_at) can. On amoCRM's clock when amoCRM
    # said when; our clock is the fallback, and when it runs ahead of amoCRM's, a restore made
    # within that difference would look older than the delete.
    deleted_at = max(lead.amo_updated_at or 0, deleted_at if deleted_at is not None else int(time.time()))
    lead.update(
        actions=[Lead.amo_lead_id.remove(), Lead.amo_updated_at.set(deleted_at), Lead.updated_at.set(utc_now())]
    )
    return True
