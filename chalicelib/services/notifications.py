"""Main Backend notifications: every lead status change is recorded here, once per event id.

`outbox_item` builds the record of one change; lead_status.py writes it in the same
transaction as the lead, with a does-not-exist condition, so the same change seen twice (a
webhook redelivered, a sync after the webhook, a re-derivation retried) records one
notification. `recorded` then starts its delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import requests
from pynamodb.expressions.update import Action

from chalicelib import logs, metrics, settings
from chalicelib.locking import wrote
from chalicelib.memo import memoize
from chalicelib.models import Lead, Notification, utc_now
from chalicelib.services import queues
from chalicelib.services.errors import ServiceError
from chalicelib.services.queue_batch import MalformedMessage, Message

log = logging.getLogger(__name__)

RETENTION = timedelta(days=30)


class NotDelivered(ServiceError):
    """The Main Backend did not accept a notification this time; it is retried."""


class DeliveryHeld(ServiceError):
    """MAIN_BACKEND_WEBHOOK_URL is invalid (plain http in a deployed stage, say): nothing is sent,
    every notification stays pending, and the sweeper sends them once the setting is fixed."""


EVENT = "lead.status_changed"
# why the status changed: the lead moved in amoCRM, or the mapping of its stage changed
AMO_STAGE_CHANGED, MAPPING_CHANGED = "amo_stage_changed", "mapping_changed"


def event_id_for(lead: Lead, occurred_at: int) -> str:
    """Stable per change: the same amoCRM lead reaching the same stage at the same time."""
    return f"lead-status-{lead.amo_lead_id}-{lead.amo_pipeline_id}-{lead.amo_status_id}-{occurred_at}"


def outbox_item(
    lead: Lead, *, previous_status: str | None, occurred_at: int, reason: str, event_id: str
) -> Notification:
    """The outbox record of one status change of `lead` (which already holds the new status)."""
    payload = {
        "event": EVENT,
        "eventId": event_id,
        "leadId": lead.id,
        "amoLeadId": lead.amo_lead_id,
        "status": lead.status,
        "previousStatus": previous_status,
        "pipelineId": lead.amo_pipeline_id,
        "stageId": lead.amo_status_id,
        "occurredAt": datetime.fromtimestamp(occurred_at, UTC).isoformat().replace("+00:00", "Z"),
        "reason": reason,
    }
    state = "pending" if settings.main_backend_webhook_set() else "skipped"
    item = Notification(event_id=event_id, payload=payload, state=state, correlation_id=logs.current_id())
    item.expires_at = datetime.now(UTC) + RETENTION
    item.touch()
    return item


def dispatch_if_pending(event_id: str) -> None:
    """Start the delivery of a recorded change whose first dispatch may never have happened."""
    try:
        note = Notification.get(event_id, consistent_read=True)
    except Notification.DoesNotExist:
        return
    if note.state == "pending":
        recorded(note)


def recorded(note: Notification) -> None:
    """A change's outbox record is committed: start its delivery. A failure to start it is only
    logged: the item stays pending and the sweeper sends it."""
    payload = note.payload
    log.info(
        "lead %s status %s -> %s recorded (%s, %s)",
        payload["amoLeadId"],
        payload["previousStatus"],
        payload["status"],
        payload["reason"],
        note.state,
    )
    if note.state != "pending":
        return
    try:
        dispatch(note.event_id)
    except Exception as error:  # the outbox item is safe; only its first attempt failed
        log.warning(
            "notification %s recorded, not dispatched yet (%s); the sweeper sends it",
            note.event_id,
            type(error).__name__,
        )


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


def signature(secret: str, *, timestamp: int, key: str, body: bytes) -> str:
    """`t=<unix time>,v2=<hex HMAC-SHA256 of "<t>.<Idempotency-Key>." + body>`: the Main Backend
    recomputes it over the raw body and the `Idempotency-Key` it received, compares in constant
    time and refuses a `t` more than 5 minutes old (replay). The key is signed too: otherwise a
    replay within those 5 minutes under another key would verify and pass its duplicate check.
    (v1 signed only "<t>." + body.)"""
    digest = hmac.new(secret.encode(), f"{timestamp}.{key}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v2={digest}"


def _headers(event_id: str, body: bytes) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-API-Key": settings.main_backend_outbound_api_key(),
        "Idempotency-Key": event_id,
        "User-Agent": "amocrm-integration-service/1.0",
    }
    secret = settings.main_backend_signing_secret()
    if secret:
        headers["X-Signature"] = signature(secret, timestamp=int(time.time()), key=event_id, body=body)
    return headers


def dispatch(event_id: str) -> None:
    """Start delivering a freshly recorded notification (queue on AWS, inline locally)."""
    if queues.notify_queue_configured():
        queues.send_notification(event_id)
        return
    try:
        deliver(event_id)
    except DeliveryHeld:
        pass  # logged; the item stays pending until the URL is fixed


def deliver(event_id: str) -> bool:
    """POST one notification; True when it is delivered (or needs no delivery). Logged under
    the correlation id of the change that recorded it, whoever delivers it (queue, sweeper, CLI).
    Raises DeliveryHeld when the Main Backend's URL is invalid (the notification stays pending)."""
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
    try:
        url = settings.main_backend_webhook_url()
    except settings.ConfigError as invalid:  # its message shows the URL redacted
        note.update(actions=[Notification.last_error.set(f"held: {invalid}"), Notification.updated_at.set(utc_now())])
        log.error("notification %s held, not sent: %s", event_id, invalid)
        raise DeliveryHeld(f"notifications are held: {invalid}") from None
    if not url:
        note.update(actions=[Notification.state.set("skipped")])
        return True
    error = None
    body = json.dumps(note.payload, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        response = _http().post(
            url, data=body, headers=_headers(event_id, body), timeout=TIMEOUTS, allow_redirects=False
        )
        if not 200 <= response.status_code < 300:
            redirect = " (a redirect; not followed)" if 300 <= response.status_code < 400 else ""
            error = f"Main Backend answered {response.status_code}{redirect}"
    except requests.RequestException as exc:
        error = f"Main Backend unreachable ({type(exc).__name__})"
    actions: list[Action] = [Notification.attempts.add(1), Notification.updated_at.set(utc_now())]
    if error is None:
        note.update(actions=actions + [Notification.state.set("sent"), Notification.last_error.remove()])
        metrics.count("NotificationsSent")
        log.info("notification %s delivered", event_id)
        return True
    note.update(actions=actions + [Notification.last_error.set(error)])
    log.warning("notification %s not delivered: %s", event_id, error)
    return False


def mark_dead(event_id: str) -> None:
    """Only a notification still undelivered dies: the sweeper may have sent it meanwhile."""
    if not wrote(
        lambda: Notification(event_id=event_id).update(
            actions=[Notification.state.set("dead")],
            condition=Notification.state == "pending",
        )
    ):
        return
    metrics.count("NotificationsDead")
    log.error("notification %s is dead after %d attempts; `cli redrive` sends it again", event_id, MAX_ATTEMPTS)


def handle_message(message: Message) -> None:
    """The notification queue's consumer: deliver one; on failure back off (longer after every
    receive) or, at the last receive, mark it dead, and raise so SQS keeps or dead-letters it."""
    event_id = message.json().get("eventId")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedMessage("notification message has no eventId")
    try:
        if deliver(event_id):
            return
    except DeliveryHeld:
        return  # no attempt was spent: the item stays pending and the hourly sweeper sends it

    if message.receive_count >= MAX_ATTEMPTS:
        mark_dead(event_id)  # SQS moves the message to the dead-letter queue after this receive
    else:
        metrics.count("NotificationsRetried")
        queues.delay_notification(message.receipt_handle, min(900, 30 * 2 ** (message.receive_count - 1)))
    raise NotDelivered(f"notification {event_id} not delivered (receive {message.receive_count})")


def deliver_pending(limit: int = 500) -> dict:
    """Retry every pending notification (oldest first); the local run's retry mechanism."""
    pending = sorted(
        (n for n in Notification.scan(Notification.state == "pending")), key=lambda n: n.created_at or utc_now()
    )[:limit]
    delivered = 0
    for note in pending:
        try:
            delivered += deliver(note.event_id)
        except DeliveryHeld as held:  # the same for every one: they all stay pending
            return {"pending": len(pending), "delivered": delivered, "held": str(held)}
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
