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
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from pynamodb.exceptions import PynamoDBException

from chalicelib import settings
from chalicelib.amo.entities import LeadInfo, MalformedEntity, created_id, first_value, read_contact, read_lead
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
CONTACT_CACHE_SIZE = 3_000
FLUSH_AT_BUFFERED_LEADS = 2000


class Guest(NamedTuple):
    """What a lead needs of its main contact; small, so thousands fit in the sync's cache."""

    name: str | None
    phone: str | None
    email: str | None


def guest_of(contact: AmoContact | None) -> Guest | None:
    return Guest(contact.name, contact.phone, contact.email) if contact is not None else None


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


class LeadPageWriter:
    """Turns pages of amoCRM leads into Lead records with as few amoCRM requests as possible.

    Contacts come from DynamoDB when already mirrored; the missing ones are collected across
    pages and fetched by id in full batches of 250, so a sync of L leads with C new contacts
    costs about ceil(L/250) + ceil(C/250) requests. Contact fetches and DynamoDB writes run
    on a few worker threads, so reading the next page, fetching contacts and writing overlap;
    leads wait in a bounded buffer until their contact is known, and the number of
    outstanding jobs is capped, so memory stays flat however large the account.
    """

    MAX_OUTSTANDING_JOBS = 6

    def __init__(self) -> None:
        self.stage_map = pipelines.status_map()
        self.pipelines_refreshed = False
        self.buffer: list[LeadInfo] = []
        self.missing: set[int] = set()  # not in DynamoDB, not yet requested from amoCRM
        self.requested: set[int] = set()  # being fetched from amoCRM
        self.cache: OrderedDict[int, Guest | None] = OrderedDict()
        self.synced = 0
        self.errors: list[dict] = []
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lead-sync")
        self._fetches: list[tuple[Future, list[int]]] = []
        self._writes: list[Future] = []
        self._side_jobs: list[Future] = []  # storing fetched contacts
        self._lock = threading.Lock()

    # -- contacts ---------------------------------------------------------------------------

    def _remember(self, contact_id: int, guest: Guest | None) -> None:
        """Keep a contact's guest fields for the leads to come (least recently used go first)."""
        self.cache[contact_id] = guest
        self.cache.move_to_end(contact_id)
        while len(self.cache) > CONTACT_CACHE_SIZE:
            self.cache.popitem(last=False)

    def _resolve(self, ids: set[int]) -> None:
        unknown = [i for i in ids if i not in self.cache and i not in self.missing and i not in self.requested]
        stored = mirror.batch_get(AmoContact, unknown)
        for contact_id in unknown:
            if contact_id in stored:
                self._remember(contact_id, guest_of(stored[contact_id]))
            else:
                self.missing.add(contact_id)

    def _request(self, ids: list[int]) -> None:
        self.missing.difference_update(ids)
        self.requested.update(ids)
        self._fetches.append((self._pool.submit(self._fetch_contacts, ids), ids))

    def _fetch_contacts(self, ids: list[int]) -> dict[int, Guest]:
        """GET the contacts; storing them is a separate job, so waiting leads need not wait for it."""
        infos, _ = mirror.read_all(contacts.fetch_raw(ids), read_contact)
        future = self._pool.submit(contacts.save, infos, True)
        with self._lock:
            self._side_jobs.append(future)
        return {info.id: Guest(info.name, info.phone, info.email) for info in infos}

    def _collect_fetches(self, wait: bool) -> None:
        still_running = []
        for future, ids in self._fetches:
            if not wait and not future.done():
                still_running.append((future, ids))
                continue
            fetched = future.result()
            for contact_id in ids:
                self._remember(contact_id, fetched.get(contact_id))  # None: deleted in amoCRM
            self.requested.difference_update(ids)
        self._fetches = still_running

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
        read, errors = mirror.read_all(raw_leads, read_lead)
        self.errors.extend(errors)
        infos = []
        for info in read:
            if not self._stage_known(info):
                self.errors.append({"id": info.id, "message": f"stage {info.status_id} of pipeline "
                                    f"{info.pipeline_id} is not known in amoCRM's pipelines; lead skipped"})
                continue
            infos.append(info)
        self._resolve({i.main_contact_id for i in infos if i.main_contact_id})
        self.buffer.extend(infos)
        while len(self.missing) >= contacts.IDS_PER_REQUEST:
            self._request(sorted(self.missing)[:contacts.IDS_PER_REQUEST])
        if len(self.buffer) >= FLUSH_AT_BUFFERED_LEADS and self.missing:
            self._request(sorted(self.missing))
        self._collect_fetches(wait=len(self.buffer) >= FLUSH_AT_BUFFERED_LEADS)
        self._write_ready()

    def flush(self) -> None:
        """Fetch every still-missing contact, write every buffered lead, wait for all of it."""
        if self.missing:
            self._request(sorted(self.missing))
        self._collect_fetches(wait=True)
        self._write_ready()
        for job in self._writes:
            job.result()
        self._writes = []
        with self._lock:
            side_jobs, self._side_jobs = self._side_jobs, []
        for job in side_jobs:
            job.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _write_ready(self) -> None:
        waiting = self.missing | self.requested
        ready = [i for i in self.buffer if i.main_contact_id is None or i.main_contact_id not in waiting]
        self.buffer = [i for i in self.buffer if i.main_contact_id is not None and i.main_contact_id in waiting]
        if not ready:
            return
        guests = {i.main_contact_id: self.cache.get(i.main_contact_id) for i in ready if i.main_contact_id}
        while len(self._writes) >= self.MAX_OUTSTANDING_JOBS:  # back-pressure keeps memory flat
            self._writes.pop(0).result()
        self._writes.append(self._pool.submit(self._write, ready, guests, dict(self.stage_map)))

    def _write(self, ready: list[LeadInfo], guests: dict[int, Guest | None],
               stage_map: dict[tuple[int, int], str | None]) -> None:
        stored = mirror.batch_get(Lead, [lead_id_for(i.id) for i in ready])
        items = [build(info, guests.get(info.main_contact_id) if info.main_contact_id else None,
                       stage_map.get((info.pipeline_id, info.status_id)), stored.get(lead_id_for(info.id)))
                 for info in ready]
        written = mirror.upsert_changed(Lead, items, FIELDS, stored=stored)
        for old, new in written:
            _notify_if_status_changed(old, new)
        with self._lock:
            self.synced += len(ready)


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


def fetch_and_upsert(amo_lead_id: int) -> Lead | None:
    raw = gateway.amo_client().get_one(f"/api/v4/leads/{amo_lead_id}", {"with": "contacts"})
    if not raw:
        raise NotFound(f"lead {amo_lead_id} does not exist in amoCRM")
    return upsert_one(raw)


def _create_from_status_event(amo_lead_id: int, old_pipeline_id: int | None, old_status_id: int | None) -> str:
    """A status change of a lead we have not seen yet: fetch it, and since the event names the
    stage it left, notify the change from that stage's status (when it maps to a different one)."""
    lead = fetch_and_upsert(amo_lead_id)
    if lead is None:
        return "stale"
    previous = pipelines.mapped_status_of(old_pipeline_id, old_status_id) if old_status_id else None
    if previous and previous != lead.status:
        notifications.record_status_change(lead, previous, lead.amo_updated_at or int(utc_now().timestamp()))
    return "applied"


def apply_status(amo_lead_id: int, pipeline_id: int | None, status_id: int | None,
                 changed_at: int | None, old_pipeline_id: int | None = None,
                 old_status_id: int | None = None) -> str:
    """A `leads[status]` webhook: move our Lead to the stage's mapped status and notify.

    Uses the webhook's own fields (no amoCRM call) when we know the lead; an unknown lead is
    fetched and created. An event older than what we store is ignored.
    """
    if pipeline_id is None or status_id is None:
        return "applied" if fetch_and_upsert(amo_lead_id) else "stale"
    try:
        existing = Lead.get(lead_id_for(amo_lead_id), consistent_read=True)
    except Lead.DoesNotExist:
        return _create_from_status_event(amo_lead_id, old_pipeline_id or pipeline_id, old_status_id)
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
        created = client.post("/api/v4/leads", [body])
        amo_lead_id = created_id(created, "leads")
    if not isinstance(amo_lead_id, int):
        raise InvalidInput("amoCRM did not return the new lead's id")
    fetch_and_upsert(amo_lead_id)
    return {"amoLeadId": amo_lead_id, "leadId": lead_id_for(amo_lead_id)}


def update_lead(amo_lead_id: int, lead_data: dict) -> dict:
    body = lead_body(lead_data)
    if not body:
        raise InvalidInput(f"leadData has nothing to update: give one of {', '.join(LEAD_FIELDS)}")
    gateway.amo_client().patch(f"/api/v4/leads/{amo_lead_id}", body)  # an unknown id: amoCRM's 404
    fetch_and_upsert(amo_lead_id)
    return {"message": "lead updated", "amoLeadId": amo_lead_id}


def add_note(amo_lead_id: int, text: str) -> dict:
    created = gateway.amo_client().post(f"/api/v4/leads/{amo_lead_id}/notes",
                                        [{"note_type": "common", "params": {"text": text}}])
    note_id = created_id(created, "notes")
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
