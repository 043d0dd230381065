"""Main Backend notifications: every lead status change is recorded here, once per event id.

`record_status_change` is the one entry point for syncs and webhooks alike. The outbox item
is written with a does-not-exist condition, so the same change seen twice (a webhook
redelivered, a sync after the webhook) records one notification.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import requests
from pynamodb.exceptions import PynamoDBException

from chalicelib import logs, metrics, settings
from chalicelib.locking import is_conflict
from chalicelib.memo import memoize
from chalicelib.models import Lead, Notification, utc_now
from chalicelib.services import queues
from chalicelib.services.errors import ServiceError
from chalicelib.services.queue_batch import MalformedMessage, Message

log = logging.getLogger(__name__)

RETENTION = timedelta(days=30)


class NotDelivered(ServiceError):
    """The Main Backend did not accept a notification this time; it is retried."""

EVENT = "lead.status_changed"


def event_id_for(lead: Lead, occurred_at: int) -> str:
    """Stable per change: the same amoCRM lead reaching the same stage at the same time."""
    return f"lead-status-{lead.amo_lead_id}-{lead.amo_pipeline_id}-{lead.amo_status_id}-{occurred_at}"


def record_status_change(lead: Lead, previous_status: str | None, occurred_at: int) -> str | None:
    """Queue the notification for a status change; returns its event id (None if already recorded)."""
    event_id = event_id_for(lead, occurred_at)
    payload = {
        "event": EVENT, "eventId": event_id, "leadId": lead.id, "amoLeadId": lead.amo_lead_id,
        "status": lead.status, "previousStatus": previous_status, "pipelineId": lead.amo_pipeline_id,
        "stageId": lead.amo_status_id,
        "occurredAt": datetime.fromtimestamp(occurred_at, timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    state = "pending" if settings.main_backend_webhook_url() else "skipped"
    item = Notification(event_id=event_id, payload=payload, state=state, correlation_id=logs.current_id())
    item.expires_at = datetime.now(timezone.utc) + RETENTION
    item.touch()
    try:
        item.save(condition=Notification.event_id.does_not_exist())
    except PynamoDBException as error:
        if is_conflict(error):
            return None
        raise
    log.info("lead %s status %s -> %s recorded (%s)", lead.amo_lead_id, previous_status, lead.status, state)
    if state == "pending":
        dispatch(event_id)
    return event_id


# -- delivery -------------------------------------------------------------------------------------
#
# At least once: an outbox item stays `pending` until the Main Backend answers 2xx. On AWS each
# recorded change goes to the notifications queue, whose consumer retries with growing delays
# (visibility timeout) and, after MAX_ATTEMPTS, leaves the message to the dead-letter queue and
# marks the item `dead`. Without a queue (the local run) delivery is tried at once and pending
# items are re-tried by `deliver_pending` (the sweeper schedule and the CLI).

MAX_ATTEMPTS = 20
TIMEOUTS = (3.05, 10.0)
@memoize()
def _http() -> requests.Session:
    return requests.Session()


def dispatch(event_id: str) -> None:
    """Start delivering a freshly recorded notification (queue on AWS, inline locally)."""
    if queues.notify_queue_configured():
        queues.send_notification(event_id)
    else:
        deliver(event_id)


def deliver(event_id: str) -> bool:
    """POST one notification; True when it is delivered (or needs no delivery). Logged under
    the correlation id of the change that recorded it, whoever delivers it (queue, sweeper, CLI)."""
    try:
        note = Notification.get(event_id, consistent_read=True)
    except Notification.DoesNotExist:
        return True
    if note.state in ("sent", "skipped"):
        return True
    with logs.bound(note.correlation_id):
        return _post(note)


def _post(note: Notification) -> bool:
    event_id = note.event_id
    url = settings.main_backend_webhook_url()
    if not url:
        note.update(actions=[Notification.state.set("skipped")])
        return True
    error = None
    try:
        response = _http().post(url, json=note.payload, timeout=TIMEOUTS, headers={
            "X-API-Key": settings.main_backend_api_key(), "Idempotency-Key": event_id,
            "User-Agent": "amocrm-integration-service/1.0"})
        if not 200 <= response.status_code < 300:
            error = f"Main Backend answered {response.status_code}"
    except requests.RequestException as exc:
        error = f"Main Backend unreachable ({type(exc).__name__})"
    actions = [Notification.attempts.add(1), Notification.updated_at.set(utc_now())]
    if error is None:
        note.update(actions=actions + [Notification.state.set("sent"), Notification.last_error.remove()])
        metrics.count("NotificationsSent")
        log.info("notification %s delivered", event_id)
        return True
    note.update(actions=actions + [Notification.last_error.set(error)])
    log.warning("notification %s not delivered: %s", event_id, error)
    return False


def mark_dead(event_id: str) -> None:
    try:
        Notification.get(event_id).update(actions=[Notification.state.set("dead")])
    except Notification.DoesNotExist:
        return
    metrics.count("NotificationsDead")
    log.error("notification %s is dead after %d attempts; `cli redrive` sends it again", event_id, MAX_ATTEMPTS)


def handle_message(message: Message) -> None:
    """The notification queue's consumer: deliver one; on failure back off (longer after every
    receive) or, at the last receive, mark it dead, and raise so SQS keeps or dead-letters it."""
    event_id = message.json().get("eventId")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedMessage("notification message has no eventId")
    if deliver(event_id):
        return
    if message.receive_count >= MAX_ATTEMPTS:
        mark_dead(event_id)  # SQS moves the message to the dead-letter queue after this receive
    else:
        metrics.count("NotificationsRetried")
        queues.delay_notification(message.receipt_handle, min(900, 30 * 2 ** (message.receive_count - 1)))
    raise NotDelivered(f"notification {event_id} not delivered (receive {message.receive_count})")


def deliver_pending(limit: int = 500) -> dict:
    """Retry every pending notification (oldest first); the local run's retry mechanism."""
    pending = sorted((n for n in Notification.scan(Notification.state == "pending")),
                     key=lambda n: n.created_at or utc_now())[:limit]
    delivered = sum(1 for note in pending if deliver(note.event_id))
    if len(pending) > delivered:
        metrics.count("NotificationsRetried", len(pending) - delivered)
    return {"pending": len(pending), "delivered": delivered}


def dead_letters() -> dict:
    """What did not get through: outbox items marked dead, and messages in the dead-letter queue."""
    dead = sum(1 for _ in Notification.scan(Notification.state == "dead"))
    return {"deadNotifications": dead, "deadLetterMessages": queues.dead_letter_count()}


def redrive() -> dict:
    """Give every dead notification a new retry budget and send it again. The outbox is the
    source of truth, so the dead-letter queue's copies are simply cleared."""
    cleared = queues.drain_notification_dead_letters()
    redriven = 0
    for note in Notification.scan(Notification.state == "dead"):
        note.update(actions=[Notification.state.set("pending"), Notification.attempts.set(0)])
        dispatch(note.event_id)
        redriven += 1
    return {"deadLetterMessagesCleared": cleared, "redriven": redriven}
