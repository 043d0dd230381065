"""Applying amoCRM webhook events: each change once, with as few amoCRM requests as possible.

The queue's consumer and the inline path (under `chalice local`, where no queue runs) share
this module. Rules, in the order they are applied to an event:
1. An event already applied (its id is marked) is a duplicate: logged, nothing else.
2. An add/update whose `updated_at` we already hold (amoCRM echoing our own write, or a
   redelivery) is current: nothing is fetched.
3. The objects a batch of events needs are fetched once per id, and in batches of up to 250
   ids when several are needed (`Prefetched`); an id filter that amoCRM ignored is noticed
   (ids that were not asked for) and those events fall back to one GET each.
4. A single GET of an object we hold sends our version as `If-Modified-Since`; amoCRM's 304
   means what we hold is current, and nothing is written (reference §13: repeated reads).
5. Effects are idempotent anyway (upserts guarded by amoCRM's updated_at, one outbox item per
   notification), so a redelivery can never apply twice or notify twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from chalicelib import metrics
from chalicelib.amo.api import AmoApi
from chalicelib.amo.errors import AmoNotModified, AmoPaymentRequired
from chalicelib.amo.webhook_body import WebhookEvent
from chalicelib.models import AmoContact, AmoTask, IdempotencyRecord, Lead
from chalicelib.services import (
    account_payment,
    activity,
    contacts,
    deletes,
    leads,
    mirror,
    pipelines,
    queue_batch,
    queues,
    tasks,
)
from chalicelib.services.errors import InvalidInput, NotFound, ServiceError
from chalicelib.services.queue_batch import Message, describe
from chalicelib.services.webhook_outcomes import EventOutcome

log = logging.getLogger(__name__)

APPLIED_MARK_RETENTION = timedelta(days=7)
# outcomes that changed nothing because amoCRM contradicted the event: a genuine event with the
# same id later (a delete once amoCRM has done it) must still be applied
NOT_MARKED = {EventOutcome.STILL_EXISTS}
# A queued delete amoCRM still contradicts is checked again on its next receives, RECHECK_SECONDS
# × the receive apart: amoCRM's GET may lag behind its own webhook, and the incremental sync never
# lists deleted objects, so a genuine delete believed forged once would never be applied. After
# DELETE_CHECKS receives it is acknowledged as forged (the queue dead-letters after 5).
DELETE_CHECKS = 3
RECHECK_SECONDS = 30
# While amoCRM's account is not paid (402), events wait in the queue, offered again this often,
# as new messages: retries would dead-letter them (account_payment.py).
HOLD_SECONDS = 900
HANDLED = {
    ("leads", "add"),
    ("leads", "update"),
    ("leads", "restore"),
    ("leads", "responsible"),
    ("leads", "status"),
    ("leads", "delete"),
    ("contacts", "add"),
    ("contacts", "update"),
    ("contacts", "delete"),
    ("contacts", "restore"),
    ("tasks", "add"),
    ("tasks", "update"),
    ("tasks", "delete"),
}
FETCHED = {
    ("leads", "add"),
    ("leads", "update"),
    ("leads", "restore"),
    ("leads", "responsible"),
    ("contacts", "add"),
    ("contacts", "update"),
    ("contacts", "restore"),
    ("tasks", "add"),
    ("tasks", "update"),
}


class DeleteNotConfirmed(ServiceError):
    """A queued delete amoCRM still contradicts: the message is offered again later."""


def _needs_fetch(event: WebhookEvent) -> bool:
    fetched = (event.entity, event.action) in FETCHED or event.is_compact
    return fetched and event.entity_id is not None and event.item.get("type") != "company"


# -- what we hold, and what amoCRM is asked for ------------------------------------------------------


def _stored_versions(entity: str, ids: list[int]) -> dict[int, int | None]:
    """amoCRM's updated_at of what we store, by amoCRM id."""
    if entity == "leads":
        found = mirror.batch_get(Lead, [leads.lead_id_for(i) for i in ids])
        return {lead.amo_lead_id: lead.amo_updated_at for lead in found.values() if lead.amo_lead_id}
    model: type[AmoContact] | type[AmoTask] = AmoContact if entity == "contacts" else AmoTask
    return {item.id: item.amo_updated_at for item in mirror.batch_get(model, ids).values()}


def _is_current(event: WebhookEvent, versions: dict[int, int | None]) -> bool:
    held, changed = versions.get(event.entity_id or 0), event.changed_at
    return held is not None and changed is not None and held >= changed


class Prefetched:
    """The amoCRM objects a batch of events needs, by (entity, id), and which events are current."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, int], dict] = {}
        self.current: set[str] = set()
        self.versions: dict[tuple[str, int], int] = {}  # amoCRM's updated_at of what we hold

    @classmethod
    def load(cls, amo: AmoApi, events: Iterable[WebhookEvent]) -> Prefetched:
        prefetched = cls()
        wanted: dict[str, list[WebhookEvent]] = {}
        for event in events:
            if _needs_fetch(event):
                wanted.setdefault(event.entity, []).append(event)
        for entity, entity_events in wanted.items():
            try:
                prefetched._load(amo, entity, entity_events)
            except Exception as error:  # an optimisation only: each event then reads on its own, and fails on its own
                log.warning("could not prefetch %s for a batch of webhook events: %s", entity, describe(error))
        return prefetched

    def _load(self, amo: AmoApi, entity: str, events: list[WebhookEvent]) -> None:
        versions = _stored_versions(entity, sorted({e.entity_id for e in events if e.entity_id}))
        self.versions.update(((entity, entity_id), held) for entity_id, held in versions.items() if held)
        self.current |= {e.event_id for e in events if _is_current(e, versions)}
        ids = sorted({e.entity_id for e in events if e.event_id not in self.current and e.entity_id})
        if len(ids) < 2:
            return  # one object: one GET either way, made where it is needed
        listed = getattr(amo, entity).by_ids(ids)
        found = {raw["id"]: raw for raw in listed if isinstance(raw, dict) and isinstance(raw.get("id"), int)}
        if set(found) - set(ids):
            log.warning("amoCRM ignored the id filter on %s; fetching them one by one", entity)
            return
        self.objects.update(((entity, entity_id), raw) for entity_id, raw in found.items())

    def raw(self, amo: AmoApi, entity: str, entity_id: int) -> dict:
        """The object, from the batch or by one GET; NotFound when amoCRM says it is gone, and
        AmoNotModified when the GET finds unchanged what we hold."""
        key = (entity, entity_id)
        raw = self.objects.get(key) or getattr(amo, entity).get(entity_id, self.versions.get(key))
        if not raw:
            raise NotFound(f"{entity[:-1]} {entity_id} does not exist in amoCRM")
        return raw


# -- consumers ----------------------------------------------------------------------------------------


def event_of(message: dict) -> WebhookEvent:
    try:
        return WebhookEvent(
            str(message["entity"]), str(message["action"]), dict(message["item"]), str(message["eventId"])
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("queued webhook event lacks entity, action, item or eventId") from None


def handle_queue_batch(amo: AmoApi, records: list[dict]) -> dict:
    """The webhook queue's consumer: the batch's objects are fetched together, then each
    message is applied on its own (a failing one is retried alone). While amoCRM's account is
    not paid, every message is held (queued again) without asking amoCRM."""
    events = []
    for record in records:
        try:
            events.append(event_of(Message.from_record(record).json()))
        except (queue_batch.MalformedMessage, InvalidInput):
            continue  # reported by the runner below, on its own
    unpaid = account_payment.unpaid_since() is not None
    prefetched = Prefetched() if unpaid else Prefetched.load(amo, events)

    def handle(message: Message) -> EventOutcome:
        nonlocal unpaid
        data = message.json()
        received_at = data.get("receivedAt")
        event = event_of(data)
        if unpaid:
            return _hold(message, event, data.get("accountId"))
        try:
            outcome = process_event(
                amo,
                event=event,
                account_id=data.get("accountId"),
                received_at=received_at if isinstance(received_at, (int, float)) else time.time(),
                prefetched=prefetched,
            )
        except AmoPaymentRequired:
            account_payment.record_unpaid(f"webhook event {event.entity}[{event.action}] {event.entity_id}")
            unpaid = True
            return _hold(message, event, data.get("accountId"))
        if outcome == EventOutcome.STILL_EXISTS and message.receive_count < DELETE_CHECKS:
            seconds = RECHECK_SECONDS * message.receive_count
            queues.delay_webhook_event(message.receipt_handle, seconds)
            raise DeleteNotConfirmed(
                f"{event.entity}[delete] {event.entity_id}: amoCRM still has it; asked again in {seconds} s"
            )
        return outcome

    return queue_batch.run(records, handle, "webhook")


def _hold(message: Message, event: WebhookEvent, account_id: int | None) -> EventOutcome:
    queues.hold_webhook_event(message.body, HOLD_SECONDS)
    return _recorded(event, outcome=EventOutcome.HELD, account_id=account_id, received_at=time.time())


def process_events(
    amo: AmoApi, *, events: list[WebhookEvent], account_id: int | None, received_at: float
) -> tuple[int, list[str]]:
    """The inline path: every event of a delivery; (applied, errors), a failure never stops the rest."""
    prefetched = Prefetched.load(amo, events)
    processed, errors = 0, []
    for event in events:
        try:
            process_event(amo, event=event, account_id=account_id, received_at=received_at, prefetched=prefetched)
            processed += 1
        except AmoPaymentRequired as error:  # no queue to hold it in: the sync catches up once paid
            account_payment.record_unpaid(f"webhook event {event.entity}[{event.action}] {event.entity_id}")
            metrics.count("WebhookEvents", Outcome=EventOutcome.FAILED)
            errors.append(f"{event.entity}[{event.action}] {event.entity_id}: {describe(error)}")
        except Exception as error:  # recorded in the activity log; the delivery is still accepted
            errors.append(f"{event.entity}[{event.action}] {event.entity_id}: {describe(error)}")
    return processed, errors


def process_webhook(amo: AmoApi, event: WebhookEvent, account_id: int | None = None) -> EventOutcome:
    """Apply one webhook event (SPEC §4 name); returns its outcome."""
    return process_event(amo, event=event, account_id=account_id, received_at=time.time())


def process_event(
    amo: AmoApi,
    *,
    event: WebhookEvent,
    account_id: int | None,
    received_at: float,
    prefetched: Prefetched | None = None,
) -> EventOutcome:
    if event.unversioned and event.entity_id is not None and event.item.get("type") != "company":
        prefetched = prefetched or Prefetched.load(amo, [event])
        try:
            event = _with_amo_version(amo, event, prefetched)
        except AmoPaymentRequired:
            raise  # not this event's failure: the consumer holds it (handle_queue_batch)
        except Exception as error:
            _recorded(event, outcome=EventOutcome.FAILED, account_id=account_id, received_at=received_at, error=error)
            raise
    mark = f"webhook:{event.event_id}"
    # A delete carries no time, so a delete after a restore has the id of the first one: deletes
    # are never taken for duplicates (each is confirmed against amoCRM, and harmless twice).
    repeatable = event.action == "delete"
    if not repeatable and _already_applied(mark):
        return _recorded(event, outcome=EventOutcome.DUPLICATE, account_id=account_id, received_at=received_at)
    try:
        outcome = _apply(amo, event, prefetched or Prefetched.load(amo, [event]))
    except AmoPaymentRequired:
        raise  # not this event's failure: the consumer holds it (handle_queue_batch)
    except Exception as error:
        _recorded(event, outcome=EventOutcome.FAILED, account_id=account_id, received_at=received_at, error=error)
        raise
    if outcome not in NOT_MARKED and not repeatable:
        _mark_applied(mark, event.event_id, outcome)
    return _recorded(event, outcome=outcome, account_id=account_id, received_at=received_at)


def _recorded(
    event: WebhookEvent,
    *,
    outcome: EventOutcome,
    account_id: int | None,
    received_at: float,
    error: Exception | None = None,
) -> EventOutcome:
    """The event's outcome in the activity log (with the error, if it failed) and its metric."""
    payload = {**event.item, "_error": describe(error)} if error is not None else event.item
    activity.record(
        event.entity,
        entity_id=event.entity_id,
        event_type=f"{event.entity}.{event.action}",
        outcome=outcome,
        account_id=account_id,
        received_at=received_at,
        payload=payload,
        event_id=event.event_id,
    )
    metrics.count("WebhookEvents", Outcome=outcome)
    return outcome


def _already_applied(mark: str) -> bool:
    try:
        IdempotencyRecord.get(mark)
        return True
    except IdempotencyRecord.DoesNotExist:
        return False


def _mark_applied(mark: str, event_id: str, outcome: EventOutcome) -> None:
    IdempotencyRecord(
        key=mark,
        state="done",
        request_hash=event_id,
        response={"outcome": outcome},
        expires_at=datetime.now(UTC) + APPLIED_MARK_RETENTION,
    ).save()


def _with_amo_version(amo: AmoApi, event: WebhookEvent, prefetched: Prefetched) -> WebhookEvent:
    """An event without a timestamp, versioned by the entity's `updated_at` as amoCRM answers it
    now (batched with the other events of the delivery when there are several)."""
    key = (event.entity, event.entity_id or 0)
    try:
        raw = prefetched.raw(amo, *key)
    except NotFound:
        return event  # gone: nothing to version, and `_apply` finds it gone too
    except AmoNotModified:  # amoCRM's version is the one we hold: the change is already applied
        current = event.versioned(prefetched.versions[key])
        prefetched.current.add(current.event_id)
        return current
    prefetched.objects[key] = raw
    updated_at = raw.get("updated_at")
    if isinstance(updated_at, bool) or not isinstance(updated_at, int):
        raise InvalidInput(f"amoCRM answered {event.entity[:-1]} {event.entity_id} without an updated_at")
    return event.versioned(updated_at)


def _apply(amo: AmoApi, event: WebhookEvent, prefetched: Prefetched) -> EventOutcome:
    if (event.entity, event.action) not in HANDLED or event.item.get("type") == "company":
        return EventOutcome.IGNORED  # notes, companies, chats…: logged, nothing to mirror
    entity_id = event.entity_id
    if entity_id is None:
        raise InvalidInput(f"{event.entity}[{event.action}] item has no numeric id")
    if event.event_id in prefetched.current:
        return EventOutcome.CURRENT
    try:
        if event.amo_version and (event.entity, event.action) == ("leads", "status"):
            # a robot's compact stage change: the lead as amoCRM has it now, at amoCRM's version
            old_status = event.number("old_status_id")
            old_pipeline = event.number("old_pipeline_id") or event.number("pipeline_id")
            came_from = pipelines.mapped_status_of(old_pipeline, old_status) if old_status else None
            return (
                EventOutcome.APPLIED
                if leads.upsert_one(amo, prefetched.raw(amo, "leads", entity_id), came_from)
                else EventOutcome.STALE
            )
        if (event.entity, event.action) == ("leads", "status"):
            return leads.apply_status(
                amo,
                amo_lead_id=entity_id,
                pipeline_id=event.number("pipeline_id"),
                status_id=event.number("status_id"),
                changed_at=event.changed_at,
                old_pipeline_id=event.number("old_pipeline_id"),
                old_status_id=event.number("old_status_id"),
            )
        if event.action == "delete":  # believed only once amoCRM confirms it (deletes.py)
            return deletes.apply(amo, entity=event.entity, entity_id=entity_id)
        raw = prefetched.raw(amo, event.entity, entity_id)
        if event.entity == "leads":
            return EventOutcome.APPLIED if leads.upsert_one(amo, raw) else EventOutcome.STALE
        if event.entity == "contacts":
            contacts.apply(raw)
        else:
            tasks.sync_page([raw])
        return EventOutcome.APPLIED
    except NotFound:
        return EventOutcome.NOT_FOUND  # gone in amoCRM by the time we asked: nothing to mirror
    except AmoNotModified:
        return EventOutcome.CURRENT  # amoCRM has nothing newer than what we hold
