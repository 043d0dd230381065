"""amoCRM webhooks: authenticate, acknowledge fast, process durably, apply each change once.

amoCRM waits only briefly and disables a webhook that keeps failing, so the route does no
amoCRM call when a queue is configured: it checks the secret and the account, records the
delivery and queues one message per event. The queue's consumer and the inline path (under
`chalice local`, where no queue runs) share `process_event`.

Each event has a stable id (entity, action, id, change time, stage). An event already applied
is skipped; effects are idempotent anyway (upserts guarded by amoCRM's updated_at, one outbox
item per notification), so a redelivery can never apply twice or notify twice.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chalicelib import settings
from chalicelib.amo.api import AmoApi
from chalicelib.amo.webhook_body import MalformedWebhook, WebhookEvent, account_id_of, decode_body, events_of
from chalicelib.memo import memoize
from chalicelib.models import AmoActivityLog, IdempotencyRecord
from chalicelib.services.queue_batch import describe
from chalicelib.services import contacts, leads, queues, tasks, token_store
from chalicelib.services.errors import InvalidInput, NotFound, Unauthenticated

log = logging.getLogger(__name__)

ACTIVITY_RETENTION = timedelta(days=30)
APPLIED_MARK_RETENTION = timedelta(days=7)
PAYLOAD_FRAGMENT_CHARS = 2000
SUBSCRIBED_EVENTS = ["add_lead", "update_lead", "delete_lead", "status_lead", "add_contact", "update_contact",
                     "add_task", "update_task", "delete_task"]


# -- intake (the route) -------------------------------------------------------------------------

def authenticate(query: dict) -> None:
    secret = settings.amo_webhook_secret()
    if secret and not hmac.compare_digest((query.get("secret") or "").encode(), secret.encode()):
        raise Unauthenticated("missing or wrong webhook secret")


def receive(raw_body: bytes | None, content_type: str | None, query: dict, amo: Callable[[], AmoApi]) -> dict:
    """Handle one delivery; always `{status: 'ok', processed, errors}` once authentic.
    `amo` gives the amoCRM API when events are applied here (no queue, or the queue refused)."""
    authenticate(query)
    received_at = time.time()
    try:
        data = decode_body(raw_body, content_type)
    except MalformedWebhook as error:
        _log_activity("delivery", None, "webhook.malformed", "rejected", None, received_at,
                      {"error": str(error), "body": (raw_body or b"")[:500].decode("utf-8", "replace")})
        return _ack(0, [f"unreadable webhook body: {error}"])
    account_id = account_id_of(data)
    expected = _connected_account(account_id)
    if expected is not _UNKNOWN and (expected is None or account_id != expected):
        reason = ("the service is not connected to amoCRM" if expected is None
                  else f"account {account_id} is not the connected account")
        _log_activity("delivery", None, "webhook.foreign", "ignored", account_id, received_at,
                      {"error": reason, "account": data.get("account")})
        return _ack(0, [f"ignored: {reason}"])
    events, problems = events_of(data)
    if queues.webhook_queue_configured():
        return _enqueue(events, problems, account_id, received_at, amo)
    processed, errors = 0, list(problems)
    for event in events:
        try:
            process_event(amo(), event, account_id, received_at)
            processed += 1
        except Exception as error:  # recorded in the activity log; the delivery is still accepted
            errors.append(f"{event.entity}[{event.action}] {event.entity_id}: {describe(error)}")
    return _ack(processed, errors)


KNOWN_ACCOUNT_SECONDS = 300
_UNKNOWN = object()  # connected, but through hand-set tokens whose account could not be read


@memoize(ttl=KNOWN_ACCOUNT_SECONDS)
def _stored_account() -> Any:
    """The connected account id (None: not connected), remembered for a few minutes so a busy
    webhook Lambda does not read the token item for every delivery."""
    token = token_store.load_token()
    if token is not None and token.access_token and not token.account_id:
        return _UNKNOWN
    return token.account_id if token else None


def _connected_account(claimed: int | None) -> Any:
    """The connected account; a claim that does not match the remembered one is always re-read."""
    known = _stored_account()
    if known is _UNKNOWN or (known is not None and known == claimed):
        return known
    _stored_account.forget()  # type: ignore[attr-defined]
    return _stored_account()


def _ack(processed: int, errors: list[str]) -> dict:
    return {"status": "ok", "processed": processed, "errors": errors}


def _enqueue(events: list[WebhookEvent], problems: list[str], account_id: int, received_at: float,
             amo: Callable[[], AmoApi]) -> dict:
    bodies = [json.dumps({"entity": e.entity, "action": e.action, "item": e.item, "eventId": e.event_id,
                          "accountId": account_id, "receivedAt": received_at}) for e in events]
    rejected = set(queues.send_webhook_events(bodies)) if bodies else set()
    errors = list(problems)
    for event, body in zip(events, bodies):
        if body in rejected:  # SQS refused it: do not lose it, apply it now
            try:
                process_event(amo(), event, account_id, received_at)
            except Exception as error:
                errors.append(f"{event.entity}[{event.action}] {event.entity_id}: {describe(error)}")
    _log_activity("delivery", None, "webhook.delivery", "queued", account_id, received_at,
                  {"events": [f"{e.entity}[{e.action}] {e.entity_id}" for e in events][:50], "problems": problems})
    return _ack(len(events), errors)


# -- processing (queue consumer and inline path) ----------------------------------------------------

def handle_message(amo: AmoApi, message: dict) -> str:
    """The webhook queue's consumer: one queued event (see `_enqueue` for its shape)."""
    try:
        event = WebhookEvent(str(message["entity"]), str(message["action"]), dict(message["item"]),
                             str(message["eventId"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("queued webhook event lacks entity, action, item or eventId") from None
    received_at = message.get("receivedAt")
    return process_event(amo, event, message.get("accountId"),
                         received_at if isinstance(received_at, (int, float)) else time.time())


def process_webhook(amo: AmoApi, event: WebhookEvent, account_id: int | None = None) -> str:
    """Apply one webhook event (SPEC §4 name); returns its outcome."""
    return process_event(amo, event, account_id, time.time())


def process_event(amo: AmoApi, event: WebhookEvent, account_id: int | None, received_at: float) -> str:
    mark = f"webhook:{event.event_id}"
    try:
        IdempotencyRecord.get(mark)
        _log_activity(event.entity, event.entity_id, f"{event.entity}.{event.action}", "duplicate",
                      account_id, received_at, event.item, event.event_id)
        return "duplicate"
    except IdempotencyRecord.DoesNotExist:
        pass
    try:
        outcome = _apply(amo, event)
    except Exception as error:
        _log_activity(event.entity, event.entity_id, f"{event.entity}.{event.action}", "failed", account_id,
                      received_at, {**event.item, "_error": describe(error)}, event.event_id)
        raise
    IdempotencyRecord(key=mark, state="done", request_hash=event.event_id, response={"outcome": outcome},
                      expires_at=datetime.now(timezone.utc) + APPLIED_MARK_RETENTION).save()
    _log_activity(event.entity, event.entity_id, f"{event.entity}.{event.action}", outcome, account_id,
                  received_at, event.item, event.event_id)
    return outcome


HANDLED = {("leads", "add"), ("leads", "update"), ("leads", "restore"), ("leads", "status"), ("leads", "delete"),
           ("contacts", "add"), ("contacts", "update"), ("tasks", "add"), ("tasks", "update"), ("tasks", "delete")}


def _apply(amo: AmoApi, event: WebhookEvent) -> str:
    if (event.entity, event.action) not in HANDLED:
        return "ignored"  # notes, responsible, companies, chats…: logged, nothing to mirror
    entity_id = event.entity_id
    if entity_id is None:
        raise InvalidInput(f"{event.entity}[{event.action}] item has no numeric id")
    try:
        if event.entity == "leads":
            if event.action == "status":
                return leads.apply_status(amo, entity_id, event.number("pipeline_id"), event.number("status_id"),
                                          event.changed_at, event.number("old_pipeline_id"),
                                          event.number("old_status_id"))
            if event.action in ("add", "update", "restore"):
                return "applied" if leads.fetch_and_upsert(amo, entity_id) else "stale"
            if event.action == "delete":
                return "unlinked" if leads.unlink(entity_id) else "unknown"
        if event.entity == "contacts" and event.action in ("add", "update"):
            if event.item.get("type") == "company":
                return "ignored"
            contacts.refresh(amo, entity_id)
            return "applied"
        if event.entity == "tasks":
            if event.action in ("add", "update"):
                tasks.refresh(amo, entity_id)
                return "applied"
            if event.action == "delete":
                return "unlinked" if tasks.unlink(entity_id) else "unknown"
    except NotFound:
        return "not_found"  # gone in amoCRM by the time we asked: nothing to mirror
    return "ignored"  # e.g. a company sent under contacts


def _log_activity(entity: str, entity_id: int | None, event_type: str, outcome: str, account_id: int | None,
                  received_at: float, payload: Any, event_id: str | None = None) -> None:
    fragment = json.dumps(payload, ensure_ascii=False, default=str)
    if len(fragment) > PAYLOAD_FRAGMENT_CHARS:
        fragment = json.dumps({"truncated": fragment[:PAYLOAD_FRAGMENT_CHARS]}, ensure_ascii=False)
    item = AmoActivityLog(entity_key=f"{entity}#{entity_id if entity_id is not None else '-'}",
                          event_key=f"{int(received_at * 1000):013d}#{event_id or time.time_ns()}",
                          event_type=event_type, entity_type=entity, entity_id=entity_id, account_id=account_id,
                          received_at=received_at, outcome=outcome, payload=json.loads(fragment),
                          expires_at=datetime.now(timezone.utc) + ACTIVITY_RETENTION)
    item.touch()
    item.save()


ACTIVITY_ENTITIES = ("leads", "contacts", "tasks", "delivery")


def activity(entity: str, entity_id: int | None, limit: int = 50) -> dict:
    """Newest first: what webhooks did to one entity (or, entity `delivery`, the deliveries)."""
    if entity not in ACTIVITY_ENTITIES:
        raise InvalidInput(f"entity must be one of {', '.join(ACTIVITY_ENTITIES)}")
    key = f"{entity}#{entity_id if entity_id is not None else '-'}"
    data = [i.to_dict() for i in AmoActivityLog.query(key, scan_index_forward=False, limit=limit)]
    return {"data": data, "count": len(data)}


# -- registration in amoCRM ---------------------------------------------------------------------

def _with_secret(url: str) -> str:
    secret = settings.amo_webhook_secret()
    if not secret:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "secret"] + [("secret", secret)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _masked(url: str) -> str:
    secret = settings.amo_webhook_secret()
    return url.replace(secret, "***") if secret else url


def _destination(url: str | None) -> str:
    url = url or settings.public_webhook_url()
    if not url:
        raise InvalidInput("url is required (or set WEBHOOK_PUBLIC_URL)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("url must be an http(s) URL")
    return _with_secret(url)


def register(amo: AmoApi, url: str | None = None) -> dict:
    """Subscribe our webhook URL for exactly the events we handle; idempotent by destination."""
    destination = _destination(url)
    existing = amo.webhooks.find(destination)
    if existing and sorted(existing.settings) == sorted(SUBSCRIBED_EVENTS) and not existing.disabled:
        message = "webhook already registered"
    else:
        amo.webhooks.subscribe(destination, SUBSCRIBED_EVENTS)
        message = "webhook settings updated" if existing else "webhook registered"
    return {"message": message, "destination": _masked(destination), "settings": SUBSCRIBED_EVENTS}


def unregister(amo: AmoApi, url: str | None = None) -> dict:
    destination = _destination(url)
    amo.webhooks.unsubscribe(destination)
    return {"message": "webhook unregistered", "destination": _masked(destination), "settings": []}
