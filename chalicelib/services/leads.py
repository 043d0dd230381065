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
from collections import OrderedDict
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib import settings
from chalicelib.amo.entities import LeadInfo, MalformedEntity, first_value, read_lead
from chalicelib.amo.errors import AmoNotFound
from chalicelib.locking import is_conflict
from chalicelib.models import AmoContact, Lead, utc_now
from chalicelib.services import contacts, gateway, mirror, notifications, pipelines
from chalicelib.services.errors import InvalidInput, NotFound
from chalicelib.services.stage_names import CLOSED, LOST_STATUS_ID, NEW, WON_STATUS_ID

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c9a52-3d0e-4c55-9d0b-6b7e4c1d2a10")
FIELDS = ("amo_lead_id", "amo_contact_id", "responsible_user_id", "status", "amo_pipeline_id", "amo_status_id",
          "guest_name", "guest_phone", "guest_email", "price", "property_id", "custom_fields", "amo_updated_at",
          "account_id")
CONTACT_CACHE_SIZE = 10_000
FLUSH_AT_BUFFERED_LEADS = 1000


def lead_id_for(amo_lead_id: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"amocrm-lead:{amo_lead_id}"))


def _status(info: LeadInfo, mapped: str | None, existing: Lead | None) -> str:
    if info.status_id in (WON_STATUS_ID, LOST_STATUS_ID):
        return CLOSED
    if mapped:
        return mapped
    return existing.status if existing is not None and existing.status else NEW


def build(info: LeadInfo, contact: AmoContact | None, mapped: str | None, existing: Lead | None) -> Lead:
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


class LeadPageWriter:
    """Turns pages of amoCRM leads into Lead records with as few amoCRM requests as possible.

    Contacts come from DynamoDB when already mirrored; the missing ones are collected across
    pages and fetched by id in full batches of 250, so a sync of L leads with C new contacts
    costs about ceil(L/250) + ceil(C/250) requests. Leads wait in a bounded buffer until
    their contact is known.
    """

    def __init__(self) -> None:
        self.stage_map = pipelines.status_map()
        self.pipelines_refreshed = False
        self.buffer: list[LeadInfo] = []
        self.missing: set[int] = set()
        self.cache: OrderedDict[int, AmoContact | None] = OrderedDict()
        self.synced = 0
        self.written = 0
        self.errors: list[dict] = []

    # -- contacts ---------------------------------------------------------------------------

    def _remember(self, contact_id: int, contact: AmoContact | None) -> None:
        self.cache[contact_id] = contact
        self.cache.move_to_end(contact_id)
        while len(self.cache) > CONTACT_CACHE_SIZE:
            self.cache.popitem(last=False)

    def _resolve(self, ids: set[int]) -> None:
        unknown = [i for i in ids if i not in self.cache and i not in self.missing]
        stored = mirror.batch_get(AmoContact, unknown)
        for contact_id in unknown:
            if contact_id in stored:
                self._remember(contact_id, stored[contact_id])
            else:
                self.missing.add(contact_id)

    def _fetch_missing(self, ids: list[int]) -> None:
        fetched = contacts.fetch_by_ids(ids)
        for contact_id in ids:
            self._remember(contact_id, fetched.get(contact_id))  # None: deleted in amoCRM
            self.missing.discard(contact_id)

    # -- stages -----------------------------------------------------------------------------

    def _stage_known(self, info: LeadInfo) -> bool:
        if info.status_id in (WON_STATUS_ID, LOST_STATUS_ID) or (info.pipeline_id, info.status_id) in self.stage_map:
            return True
        if not self.pipelines_refreshed:  # a stage added since the last pipeline sync
            self.pipelines_refreshed = True
            pipelines.sync_pipelines()
            self.stage_map = pipelines.status_map()
        return (info.pipeline_id, info.status_id) in self.stage_map

    # -- pages ------------------------------------------------------------------------------

    def add_page(self, raw_leads: list[Any]) -> None:
        infos = []
        for raw in raw_leads:
            try:
                info = read_lead(raw)
            except MalformedEntity as error:
                self.errors.append({"id": raw.get("id") if isinstance(raw, dict) else None, "message": str(error)})
                continue
            if not self._stage_known(info):
                self.errors.append({"id": info.id, "message": f"stage {info.status_id} of pipeline "
                                    f"{info.pipeline_id} is not known in amoCRM's pipelines; lead skipped"})
                continue
            infos.append(info)
        self._resolve({i.main_contact_id for i in infos if i.main_contact_id})
        self.buffer.extend(infos)
        if len(self.missing) >= contacts.IDS_PER_REQUEST:
            full = len(self.missing) // contacts.IDS_PER_REQUEST * contacts.IDS_PER_REQUEST
            self._fetch_missing(sorted(self.missing)[:full])
            self._write_ready()
        elif len(self.buffer) >= FLUSH_AT_BUFFERED_LEADS:
            self.flush()
        elif not self.missing:
            self._write_ready()

    def flush(self) -> None:
        """Fetch every still-missing contact and write every buffered lead."""
        if self.missing:
            self._fetch_missing(sorted(self.missing))
        self._write_ready()

    def _write_ready(self) -> None:
        ready = [i for i in self.buffer if i.main_contact_id is None or i.main_contact_id not in self.missing]
        self.buffer = [i for i in self.buffer if i.main_contact_id is not None and i.main_contact_id in self.missing]
        if not ready:
            return
        stored = mirror.batch_get(Lead, [lead_id_for(i.id) for i in ready])
        items = []
        for info in ready:
            existing = stored.get(lead_id_for(info.id))
            contact = self.cache.get(info.main_contact_id) if info.main_contact_id else None
            items.append(build(info, contact, self.stage_map.get((info.pipeline_id, info.status_id)), existing))
        written = mirror.upsert_changed(Lead, items, FIELDS, stored=stored)
        for old, new in written:
            _notify_if_status_changed(old, new)
        self.synced += len(ready)
        self.written += len(written)


# -- one lead at a time (webhooks, sync-lead, writes) ---------------------------------------------

def _contact_for(info: LeadInfo) -> AmoContact | None:
    if not info.main_contact_id:
        return None
    try:
        return AmoContact.get(info.main_contact_id)
    except AmoContact.DoesNotExist:
        return contacts.fetch_by_ids([info.main_contact_id]).get(info.main_contact_id)


def upsert_one(raw_lead: Any) -> Lead | None:
    """Create or update the Lead of one amoCRM lead object; None when what we store is newer."""
    try:
        info = read_lead(raw_lead)
    except MalformedEntity as error:
        raise InvalidInput(str(error)) from None
    contact = _contact_for(info)
    mapped = pipelines.mapped_status_of(info.pipeline_id, info.status_id)
    for _ in range(3):
        try:
            existing = Lead.get(lead_id_for(info.id), consistent_read=True)
        except Lead.DoesNotExist:
            existing = None
        if existing is not None and (existing.amo_updated_at or 0) > info.updated_at:
            return None
        lead = build(info, contact, mapped, existing)
        if existing is not None and all(getattr(existing, f) == getattr(lead, f) for f in FIELDS):
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


def fetch_and_upsert(amo_lead_id: int) -> Lead | None:
    raw = gateway.amo_client().get(f"/api/v4/leads/{amo_lead_id}", {"with": "contacts"})
    if not raw:
        raise NotFound(f"lead {amo_lead_id} does not exist in amoCRM")
    return upsert_one(raw)


def apply_status(amo_lead_id: int, pipeline_id: int | None, status_id: int | None,
                 changed_at: int | None) -> str:
    """A `leads[status]` webhook: move our Lead to the stage's mapped status and notify.

    Uses the webhook's own fields (no amoCRM call) when we know the lead; an unknown lead is
    fetched and created. An event older than what we store is ignored.
    """
    if pipeline_id is None or status_id is None:
        return "applied" if fetch_and_upsert(amo_lead_id) else "stale"
    try:
        existing = Lead.get(lead_id_for(amo_lead_id), consistent_read=True)
    except Lead.DoesNotExist:
        return "applied" if fetch_and_upsert(amo_lead_id) else "stale"
    if changed_at is not None and (existing.amo_updated_at or 0) > changed_at:
        return "stale"
    if (existing.amo_pipeline_id, existing.amo_status_id) == (pipeline_id, status_id) and \
            (changed_at is None or existing.amo_updated_at == changed_at):
        return "unchanged"
    previous = existing.status
    info_status = CLOSED if status_id in (WON_STATUS_ID, LOST_STATUS_ID) else (
        pipelines.mapped_status_of(pipeline_id, status_id) or previous or NEW)
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


def sync_lead(raw_lead: Any) -> dict:
    if not isinstance(raw_lead, dict):
        raise InvalidInput("lead must be an amoCRM lead object")
    lead = upsert_one(raw_lead)
    if lead is None:
        stored = Lead.get(lead_id_for(raw_lead["id"]))
        return {"message": "a newer version of this lead is already stored", "leadId": stored.id}
    return {"message": "lead synced", "leadId": lead.id}


# -- writes for the Main Backend ------------------------------------------------------------------

LEAD_FIELDS = ("name", "price", "status_id", "pipeline_id", "responsible_user_id", "custom_fields_values",
               "_embedded", "loss_reason_id")


def lead_body(lead_data: dict) -> dict:
    return {k: v for k, v in lead_data.items() if k in LEAD_FIELDS}


def create_lead(lead_data: dict, contact: dict | None = None) -> dict:
    """Create the lead in amoCRM (with its contact in the same call) and the linked Lead."""
    client = gateway.amo_client()
    body = {**lead_body(lead_data), "request_id": "0"}
    if contact:
        body.setdefault("_embedded", {})["contacts"] = [contacts.contact_body(contact)]
        created = client.post("/api/v4/leads/complex", [body]) or []
        amo_lead_id = created[0].get("id") if isinstance(created, list) and created else None
    else:
        created = client.post("/api/v4/leads", [body]) or {}
        amo_lead_id = ((created.get("_embedded") or {}).get("leads") or [{}])[0].get("id")
    if not isinstance(amo_lead_id, int):
        raise InvalidInput("amoCRM did not return the new lead's id")
    fetch_and_upsert(amo_lead_id)
    return {"amoLeadId": amo_lead_id, "leadId": lead_id_for(amo_lead_id)}


def update_lead(amo_lead_id: int, lead_data: dict) -> dict:
    body = lead_body(lead_data)
    if not body:
        raise InvalidInput(f"leadData has nothing to update: give one of {', '.join(LEAD_FIELDS)}")
    try:
        gateway.amo_client().patch(f"/api/v4/leads/{amo_lead_id}", body)
    except AmoNotFound:
        raise NotFound(f"lead {amo_lead_id} does not exist in amoCRM") from None
    fetch_and_upsert(amo_lead_id)
    return {"message": "lead updated", "amoLeadId": amo_lead_id}


def add_note(amo_lead_id: int, text: str) -> dict:
    try:
        created = gateway.amo_client().post(f"/api/v4/leads/{amo_lead_id}/notes",
                                            [{"note_type": "common", "params": {"text": text}}]) or {}
    except AmoNotFound:
        raise NotFound(f"lead {amo_lead_id} does not exist in amoCRM") from None
    note_id = ((created.get("_embedded") or {}).get("notes") or [{}])[0].get("id")
    return {"message": "note added", "amoLeadId": amo_lead_id, "noteId": note_id}


def create_test_lead() -> dict:
    """Development only: a clearly marked lead to check the connection end to end."""
    stamp = utc_now().strftime("%Y-%m-%d %H:%M:%S")
    result = create_lead({"name": f"[TEST] amoCRM integration check {stamp} UTC", "price": 0,
                          "_embedded": {"tags": [{"name": "integration-test"}]}})
    return {"amoLeadId": result["amoLeadId"]}


def unlink(amo_lead_id: int) -> bool:
    """amoCRM deleted the lead: keep our record, clear its link (SPEC §3)."""
    try:
        lead = Lead.get(lead_id_for(amo_lead_id))
    except Lead.DoesNotExist:
        return False
    lead.update(actions=[Lead.amo_lead_id.remove(), Lead.updated_at.set(utc_now())])
    return True
