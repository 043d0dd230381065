"""Deletes no webhook delivered, found in amoCRM's events log (reference §10.1) by every
incremental run: a hook disabled for a while, a delivery that failed every retry, a plan without
webhooks. Lists of leads, contacts and tasks show only live objects, so without this a deleted
lead would stay linked here for ever.

Each run reads the delete and restore events created in [cursor − OVERLAP, now], 100 a page (the
events maximum) until a 204 or a page without a next link, deduplicated by event id (the overlap
and new events shifting the pages both repeat some). Per entity only its latest event counts: a
restore after a delete cancels it. What remains goes through the one confirm-and-apply path of
deletes.py, and only for what we hold (a lead still linked, a task not yet unlinked, a contact
with a row or leads): leads are confirmed in batches through amoCRM's trash (`with=only_deleted`,
250 ids a request), tasks and contacts by one GET each. A contact whose restore is the latest
event, and whom we had erased, is fetched again. The cursor moves to the window's end only once
the whole window is applied, so a failed run is read again by the next.

Where the token may not read the events log (403; what it shows depends on the user's rights),
`status` says so and, at most every FALLBACK_INTERVAL, the leads we hold linked are looked up in
amoCRM's trash in batches of 250 ids: never a re-read of the whole account.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from chalicelib import metrics
from chalicelib.amo.api import AmoApi
from chalicelib.amo.clock import amo_clock
from chalicelib.amo.errors import AmoForbidden
from chalicelib.amo.events import Event
from chalicelib.models import AmoContact, AmoTask, Lead, SyncState
from chalicelib.services import activity, contacts, deletes, leads, mirror
from chalicelib.services.errors import NotFound
from chalicelib.services.sync import state as state_module
from chalicelib.services.webhook_outcomes import EventOutcome

log = logging.getLogger(__name__)

KEY = "events"
OVERLAP_SECONDS = 600  # events that become visible late, read again
FIRST_WINDOW_SECONDS = 86_400  # how far back the first run reads
FALLBACK_INTERVAL = 3600
TYPES = ("lead_deleted", "lead_restored", "contact_deleted", "contact_restored", "task_deleted")
ENTITIES = {"lead": "leads", "contact": "contacts", "task": "tasks"}


def _state() -> SyncState | None:
    try:
        return SyncState.get(KEY, consistent_read=True)
    except SyncState.DoesNotExist:
        return None


def _save(cursor: int | None, result: dict[str, Any], now: float | None = None) -> None:
    """The window's cursor (amoCRM's clock) and when the run was (ours)."""
    ours = now if now is not None else time.time()
    state = SyncState(entity=KEY, cursor=cursor, last_success_started_at=ours if cursor is not None else None)
    state.last_result = result
    state.touch()
    state.save()


def reconcile(amo: AmoApi, now: float | None = None) -> dict:
    """One run: what the events log says was deleted (and not restored) since the last run,
    applied; `{events, applied: {entity: {outcome: n}}, window: [from, to]}` or the fallback's answer."""
    now = int(now or time.time())
    state = _state()
    memory = (state.last_result or {}) if state else {}
    start = state_module.amo_start(state) if state else None
    cursor = int(start) if start else None
    if memory.get("forbidden") and now - int(memory.get("checkedAt") or 0) < FALLBACK_INTERVAL:
        return {"status": "skipped", "reason": "the events log is not available to this token (403)"}
    end = int(amo_clock().now(now))  # the events' `created_at` is amoCRM's time (see AmoClock)
    start = (cursor if cursor is not None else end - FIRST_WINDOW_SECONDS) - OVERLAP_SECONDS
    try:
        events = _read(amo, start, end)
    except AmoForbidden:
        metrics.count("EventsLogForbidden")
        log.warning("amoCRM refused the events log (403); checking linked leads in the trash instead")
        result = check_linked_leads(amo)
        _save(cursor, {"forbidden": True, "checkedAt": now, **result}, now)
        return {"status": "fallback", "reason": "the events log is not available to this token (403)", **result}
    applied = apply_events(amo, events)
    _save(
        int(min(amo_clock().now(now), end)), {"events": len(events), "applied": applied}, now
    )  # never past what was read
    return {"events": len(events), "applied": applied, "window": [start, end]}


def _read(amo: AmoApi, start: int, end: int) -> list[Event]:
    seen: dict[str, Event] = {}
    for page in amo.events.pages(TYPES, created_from=start, created_to=end):
        seen.update((event.id, event) for event in page)
    return list(seen.values())


def latest_per_entity(events: list[Event]) -> dict[tuple[str, int], Event]:
    """Each entity's latest event. A delete and a restore in the same second: the delete is kept,
    and amoCRM's answer to the confirmation decides."""
    latest: dict[tuple[str, int], Event] = {}
    for event in sorted(events, key=lambda e: (e.created_at, e.type.endswith("_deleted"))):
        entity = ENTITIES.get(event.entity_type) or ENTITIES.get(event.type.split("_", 1)[0])
        if entity is not None:
            latest[(entity, event.entity_id)] = event
    return latest


def apply_events(amo: AmoApi, events: list[Event]) -> dict[str, dict[str, int]]:
    """Apply the deletes that remain after restores cancelled theirs, and fetch again contacts
    restored after we erased them; counts of outcomes per entity."""
    deleted: dict[str, list[int]] = defaultdict(list)
    restored_contacts = []
    for (entity, entity_id), event in latest_per_entity(events).items():
        if event.type.endswith("_deleted"):
            deleted[entity].append(entity_id)
        elif entity == "contacts":
            restored_contacts.append(entity_id)
    outcomes: dict[str, dict[str, int]] = {}
    for entity, ids in deleted.items():
        held = _held(entity, sorted(ids))
        confirmed = _confirmed_leads(amo, held) if entity == "leads" else {}
        for entity_id in held:
            if entity_id in confirmed:
                outcome = deletes.apply_confirmed(entity, entity_id, deleted_at=confirmed[entity_id])
            else:
                outcome = deletes.apply(amo, entity=entity, entity_id=entity_id, trash_checked=entity == "leads")
            _record(entity, entity_id, outcome)
            counts = outcomes.setdefault(entity, {})
            counts[outcome] = counts.get(outcome, 0) + 1
    refetched = _refetch_erased(amo, restored_contacts)
    if refetched:
        outcomes.setdefault("contacts", {})["restored"] = refetched
    return outcomes


def _held(entity: str, ids: list[int]) -> list[int]:
    """The ids a delete would change anything of here (no amoCRM request for the others)."""
    if entity == "leads":
        stored = mirror.batch_get(Lead, [leads.lead_id_for(i) for i in ids])
        return sorted(lead.amo_lead_id for lead in stored.values() if lead.amo_lead_id is not None)
    if entity == "tasks":
        return sorted(task.id for task in mirror.batch_get(AmoTask, ids).values() if not task.is_unlinked)
    rows = set(mirror.batch_get(AmoContact, ids))
    return [i for i in ids if i in rows or _has_leads(i)]


def _has_leads(contact_id: int) -> bool:
    return any(True for _ in Lead.by_amo_contact_id.query(contact_id, limit=1))


def _confirmed_leads(amo: AmoApi, ids: list[int]) -> dict[int, int | None]:
    """The leads amoCRM lists in its trash, with when it deleted them (amoCRM's clock, None when
    it does not say); an account that ignores the id filter confirms none this way (each is
    then asked for on its own)."""
    if not ids:
        return {}
    trash = {
        raw.get("id"): deletes.trash_time(raw)
        for raw in amo.leads.in_trash(ids)
        if isinstance(raw, dict) and raw.get("is_deleted")
    }
    if set(trash) - set(ids):
        log.warning("amoCRM ignored the id filter on the trash; confirming deletes one by one")
        return {}
    return {i: trash[i] for i in ids if i in trash}


def _refetch_erased(amo: AmoApi, contact_ids: list[int]) -> int:
    """Contacts restored in amoCRM after we erased them on their delete, that leads still name:
    their leads' guest fields filled again, from the row this run's contacts sync stored again
    (the restore changed the contact), else from amoCRM (one GET)."""
    wanted = [i for i in contact_ids if _has_leads(i)]
    rows = mirror.batch_get(AmoContact, wanted)
    refilled = 0
    for contact_id in wanted:
        try:
            if contact_id in rows:
                contacts.refresh_guest_fields(rows[contact_id])
            else:
                contacts.refresh(amo, contact_id)
            refilled += 1
        except NotFound:  # deleted again (or purged) since: nothing to fetch, and no reason to stop
            log.info("restored contact %s is gone again in amoCRM", contact_id)
    return refilled


def _record(entity: str, entity_id: int, outcome: EventOutcome) -> None:
    activity.record(
        entity,
        entity_id=entity_id,
        event_type=f"{entity}.delete",
        outcome=outcome,
        account_id=None,
        received_at=time.time(),
        payload={"source": "events"},
    )


def check_linked_leads(amo: AmoApi) -> dict:
    """Without the events log: every lead we hold linked, looked up in amoCRM's trash (250 ids a
    request); those amoCRM lists as deleted are unlinked."""
    linked = sorted(
        lead.amo_lead_id
        for lead in Lead.scan(Lead.amo_lead_id.exists(), attributes_to_get=["id", "amo_lead_id"])
        if lead.amo_lead_id is not None
    )
    unlinked = 0
    for entity_id, deleted_at in sorted(_confirmed_leads(amo, linked).items()):
        outcome = deletes.apply_confirmed("leads", entity_id, deleted_at=deleted_at)
        _record("leads", entity_id, outcome)
        unlinked += outcome == EventOutcome.UNLINKED
    return {"checked": len(linked), "unlinked": unlinked}


def describe() -> dict:
    """What `status` shows: nothing while the events log works."""
    state = _state()
    memory = (state.last_result or {}) if state else {}
    if not memory.get("forbidden"):
        return {}
    return {
        "deletes": (
            "the events log is not available to this token (403): deletes that webhooks miss are found by "
            f"checking the linked leads in amoCRM's trash every {FALLBACK_INTERVAL // 60} min (contacts and "
            "tasks not); connect with an administrator's token"
        )
    }
