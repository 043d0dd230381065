"""Pages of amoCRM leads turned into Lead records, with as few amoCRM requests as possible.

A sync of L leads with C contacts not yet mirrored costs about ceil(L/250) + ceil(C/250)
requests: contacts come from `GuestDirectory` (cache, DynamoDB, amoCRM in batches of 250).
Reading the next page, fetching contacts and writing leads overlap on a small thread pool.

The rules, each applied in one place below:
1. A lead waits while its main contact is pending in the directory; a lead without a
   contact, or whose contact is known, is ready (`_take_ready`).
2. Contacts are requested as soon as 250 are missing; when FLUSH_AT_BUFFERED_LEADS leads
   wait, every missing contact is requested and the sync waits for them (`add_page`). So
   the number of waiting leads, and memory, stays bounded however large the account.
3. Ready leads are written as one job on the pool; at most MAX_OUTSTANDING_JOBS jobs are
   outstanding, the oldest is awaited first (`_submit_write`).
4. A write stores only what changed, never over a newer version, and records a notification
   for every status change in the same transaction; a lead DynamoDB refuses is an error, the
   rest carry on (`_write`, through write_batch). Each page is mapped with the stage
   mappings as they are when it arrives, so a mapping changed mid-sync applies from then on.
5. A lead in a stage amoCRM's pipelines do not list triggers one pipeline re-sync per run;
   if the stage is still unknown the lead is skipped with an error (`_stage_known`).

While the writer is open, everything alive before it (imported modules, botocore's service
models: about half a million objects) is frozen out of the garbage collector: the sync
allocates fast, and each full collection it triggered traversed all of them, about a fifth of
the sync's CPU. `close` unfreezes them, so garbage among them is still collected afterwards.
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import Future
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib import logs
from chalicelib.amo.api import AmoApi
from chalicelib.amo.leads import LOST_STATUS_ID, WON_STATUS_ID, LeadInfo, read_lead
from chalicelib.models import Lead, utc_now
from chalicelib.services import contacts, leads, mirror, pipelines
from chalicelib.services.errors import Conflict
from chalicelib.services.guests import Guest, GuestDirectory
from chalicelib.services.lead_status import StageMapping
from chalicelib.services.sync import account_filters

FLUSH_AT_BUFFERED_LEADS = 2000
MAX_OUTSTANDING_JOBS = 6
WORKERS = 4


class LeadPageWriter:
    def __init__(self, amo: AmoApi) -> None:
        self.amo = amo
        self.stage_map = pipelines.status_map()
        self.pipelines_refreshed = False
        self.waiting: list[LeadInfo] = []
        self.synced = 0
        self.errors: list[dict] = []
        self._pool = logs.ThreadPool(max_workers=WORKERS, thread_name_prefix="lead-sync")
        self.guests = GuestDirectory(
            amo, pool=self._pool, save=contacts.save_new, on_filters_ignored=account_filters.record_ignored
        )
        self._writes: list[Future] = []
        self._lock = threading.Lock()
        gc.freeze()  # last: `close` unfreezes

    # -- pages ----------------------------------------------------------------------------------

    def add_page(self, raw_leads: list[Any]) -> None:
        self.stage_map = pipelines.status_map()
        read, errors = mirror.read_all(raw_leads, read_lead)
        self.errors.extend(errors)
        infos = [info for info in read if self._stage_known(info)]
        self.guests.learn(i.main_contact_id for i in infos if i.main_contact_id)
        self.waiting.extend(infos)
        self.guests.request_full_batches()
        too_many_waiting = len(self.waiting) >= FLUSH_AT_BUFFERED_LEADS
        if too_many_waiting:
            self.guests.request_all()
        self.guests.collect(wait=too_many_waiting)
        self._submit_write(self._take_ready())

    def flush(self) -> None:
        """Fetch every still-missing contact, write every waiting lead, wait for all of it."""
        self.guests.request_all()
        self.guests.collect(wait=True)
        self._submit_write(self._take_ready())
        for job in self._writes:
            job.result()
        self._writes = []
        self.guests.finish_saves()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        gc.unfreeze()

    # -- rules ----------------------------------------------------------------------------------

    def _stage_known(self, info: LeadInfo) -> bool:
        if info.status_id in (WON_STATUS_ID, LOST_STATUS_ID) or (info.pipeline_id, info.status_id) in self.stage_map:
            return True
        if not self.pipelines_refreshed:  # a stage added since the last pipeline sync
            self.pipelines_refreshed = True
            pipelines.sync_pipelines(self.amo)
            self.stage_map = pipelines.status_map()
        if (info.pipeline_id, info.status_id) in self.stage_map:
            return True
        self.errors.append(
            {
                "id": info.id,
                "message": f"stage {info.status_id} of pipeline {info.pipeline_id} "
                "is not known in amoCRM's pipelines; lead skipped",
            }
        )
        return False

    def _take_ready(self) -> list[LeadInfo]:
        ready = [i for i in self.waiting if not self.guests.is_pending(i.main_contact_id)]
        self.waiting = [i for i in self.waiting if self.guests.is_pending(i.main_contact_id)]
        deferred = [i for i in ready if i.main_contact_id in self.guests.deferred]
        with self._lock:  # written by a later run, never with its guest blanked (guests.py)
            self.errors.extend(
                {
                    "id": info.id,
                    "message": f"its contact {info.main_contact_id} was not read in this run (the account "
                    "ignores the id filter, and contacts are read one by one up to a limit): a later run syncs it",
                    "transient": True,
                }
                for info in deferred
            )
        return [i for i in ready if i.main_contact_id not in self.guests.deferred]

    def _submit_write(self, ready: list[LeadInfo]) -> None:
        if not ready:
            return
        guests = {i.main_contact_id: self.guests.guest(i.main_contact_id) for i in ready if i.main_contact_id}
        while len(self._writes) >= MAX_OUTSTANDING_JOBS:
            self._writes.pop(0).result()
        self._writes.append(self._pool.submit(self._write, ready, guests, dict(self.stage_map)))

    def _write(
        self, ready: list[LeadInfo], guests: dict[int, Guest | None], stage_map: dict[tuple[int, int], StageMapping]
    ) -> None:
        errors = write_batch(ready, guests, stage_map)
        with self._lock:
            self.synced += len(ready) - len(errors)
            self.errors.extend(errors)


# -- writing a batch of leads ---------------------------------------------------------------------


_serialize_lead = mirror.Serializer(Lead)
_FIELD_NAMES = mirror.attribute_names(Lead, leads.FIELDS)


def write_batch(
    infos: list[LeadInfo], guests: dict[int, Guest | None], stage_map: dict[tuple[int, int], StageMapping]
) -> list[dict]:
    """Upsert many leads at once (what changed only): new ones in batches, changed ones each on
    condition that nothing newer landed meanwhile, a status change together with its
    notification. Returns `errors` entries for the leads that could not be stored.

    Leads are compared with what is stored as DynamoDB holds them, serialised: only a new lead
    or one whose stored fields differ becomes a model (a re-sync of unchanged data builds none)."""
    ids = {info.id: leads.lead_id_for(info.id) for info in infos}
    stored_items = mirror.batch_get_items(Lead, list(ids.values()))
    by_id = {info.id: info for info in infos}
    now = utc_now()
    new: list[tuple[int, mirror.Item]] = []
    stored: dict[str, Lead] = {}
    plain, changing = [], []
    for info in infos:
        item = stored_items.get(ids[info.id])
        mapping = stage_map.get((info.pipeline_id, info.status_id))
        if item is None:  # not stored yet: serialised as it is, no model built (the first sync's path)
            lead_values = leads.fields_of(
                info, contact=_guest(guests, info), mapping=mapping, lead_id=ids[info.id], status=None
            )
            new.append((info.id, _serialize_lead({**lead_values, "created_at": now, "updated_at": now})))
            continue
        lead_values = leads.fields_of(
            info,
            contact=_guest(guests, info),
            mapping=mapping,
            lead_id=ids[info.id],
            status=mirror.text(item, "status"),
        )
        if mirror.same_items(item, _serialize_lead(lead_values), _FIELD_NAMES):
            continue  # a write would change nothing, as `upsert_changed` would find
        old = stored[ids[info.id]] = Lead.from_raw_data(item)
        lead = leads.build(info, contact=_guest(guests, info), mapping=mapping, existing=old)
        if old.status != lead.status and (old.amo_updated_at or 0) <= info.updated_at:
            changing.append((info, old))
        else:
            plain.append(lead)
    result = mirror.upsert_changed(
        Lead,
        items=plain,
        fields=leads.FIELDS,
        stored=stored,
        guard=lambda old: Lead.status == old.status,
        item_id=lambda lead: lead.amo_lead_id,
    )
    created = mirror.put_new(Lead, new)
    errors = result.errors + created.errors
    retry = [(info, old, stage_map.get((info.pipeline_id, info.status_id))) for info, old in changing]
    retry += [(by_id[lead.amo_lead_id], leads.UNREAD, leads.UNREAD) for lead in result.conflicts]
    retry += [(by_id[amo_id], leads.UNREAD, leads.UNREAD) for amo_id in created.taken]  # a webhook stored it
    for info, old, mapping in retry:
        try:
            leads.upsert(info, contact=_guest(guests, info), existing=old, mapping=mapping)
        except Conflict as error:  # contention: the next run must read this lead again
            errors.append({"id": info.id, "message": str(error), "transient": True})
        except PynamoDBException as error:
            if not mirror.refused(error):
                raise
            errors.append(mirror.refusal(info.id, error))
    return errors


def _guest(guests: dict[int, Guest | None], info: LeadInfo) -> Guest | None:
    return guests.get(info.main_contact_id) if info.main_contact_id else None
