"""amoCRM webhooks: authenticate, acknowledge fast, hand over durably; and the subscription.

amoCRM waits about 2 seconds for an answer and disables a webhook after more than 100
invalid answers in 2 hours (reference §9.5, §13), so the route does no amoCRM call when a queue
is configured: it checks the secret (webhook_secret.py) and the account, records the delivery
and queues one message per event (webhook_events.py applies them). Every authentic delivery is
answered 200, whatever its size or shape: what cannot be read of it is recorded, a body past
the parser's limits is read in part (every item's id and stage, webhook_body.py), and a
delivery with more events than MAX_EVENTS is recorded while an incremental sync of the
entities it named does their work instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from chalicelib import metrics, settings
from chalicelib.amo.api import AmoApi
from chalicelib.amo.errors import AmoError, AmoForbidden, AmoPaymentRequired
from chalicelib.amo.webhook_body import (
    MalformedWebhook,
    WebhookEvent,
    account_id_of,
    decode_body,
    events_of,
    subdomain_of,
)
from chalicelib.memo import memoize
from chalicelib.services import (
    account_payment,
    activity,
    personal_data,
    queues,
    sync,
    token_store,
    webhook_events,
    webhook_manual,
)
from chalicelib.services.errors import InvalidInput
from chalicelib.services.webhook_outcomes import DeliveryOutcome
from chalicelib.services.webhook_secret import SecretNotSet, authenticate, masked, with_secret, without_secret

log = logging.getLogger(__name__)

MAX_EVENTS = 500  # amoCRM sends a handful per delivery
WEBHOOK_PATH = "/integrations/amo-crm/webhook"
SUBSCRIBED_EVENTS = [
    "add_lead",
    "update_lead",
    "delete_lead",
    "restore_lead",
    "status_lead",
    "responsible_lead",
    "add_contact",
    "update_contact",
    "delete_contact",
    "restore_contact",
    "add_task",
    "update_task",
    "delete_task",
]
# amoCRM refuses its webhooks API on a lower plan (402) or to a non-administrator (403): manual
MANUAL_REGISTRATION = (AmoPaymentRequired, AmoForbidden)


# -- intake (the route) -------------------------------------------------------------------------


def receive(
    raw_body: bytes | None, *, content_type: str | None, query: Mapping[str, str], amo: Callable[[], AmoApi]
) -> dict:
    """Handle one delivery; always `{status: 'ok', processed, errors}` once authentic.
    `amo` gives the amoCRM API when events are applied here (no queue, or the queue refused)."""
    received_at = time.time()
    try:
        authenticate(query)
    except SecretNotSet as error:
        return _unauthenticated(raw_body, reason=str(error), received_at=received_at)
    try:
        decoded = decode_body(raw_body, content_type)
    except MalformedWebhook as error:
        activity.record(
            "delivery",
            entity_id=None,
            event_type="webhook.malformed",
            outcome=DeliveryOutcome.REJECTED,
            account_id=None,
            received_at=received_at,
            payload={"error": str(error), "body": (raw_body or b"")[:500].decode("utf-8", "replace")},
        )
        metrics.count("WebhookDeliveries", Outcome=DeliveryOutcome.MALFORMED)
        return _ack(0, [f"unreadable webhook body: {error}"])
    data = decoded.data
    if decoded.notes:
        log.warning("webhook body read in part: %s", "; ".join(decoded.notes[:5]))
        metrics.count("WebhookBodyTrimmed")
    account_id = account_id_of(data)
    if account_id is None:  # an older hook names the account by its subdomain only
        account_id = _account_named(subdomain_of(data))
    expected = _connected_account(account_id)
    if expected is not _UNKNOWN and (expected is None or account_id != expected):
        reason = (
            "the service is not connected to amoCRM"
            if expected is None
            else f"account {account_id} is not the connected account"
        )
        activity.record(
            "delivery",
            entity_id=None,
            event_type="webhook.foreign",
            outcome=DeliveryOutcome.IGNORED,
            account_id=account_id,
            received_at=received_at,
            payload={"error": reason, "account": data.get("account")},
        )
        metrics.count("WebhookDeliveries", Outcome=DeliveryOutcome.FOREIGN)
        return _ack(0, [f"ignored: {reason}"])
    events, problems = events_of(data)
    problems = decoded.notes[:20] + problems
    if len(events) > MAX_EVENTS:
        return _too_many(events, account_id=account_id, received_at=received_at, amo=amo)
    if queues.webhook_queue_configured():
        return _enqueue(events, problems=problems, account_id=account_id, received_at=received_at, amo=amo)
    metrics.count("WebhookDeliveries", Outcome=DeliveryOutcome.INLINE)
    processed, errors = (
        webhook_events.process_events(amo(), events=events, account_id=account_id, received_at=received_at)
        if events
        else (0, [])
    )
    return _ack(processed, problems + errors)


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


def _account_named(subdomain: str | None) -> int | None:
    """The connected account's id when `subdomain` is its subdomain (one token read, made only for
    a body without `account[id]`); None otherwise, and the delivery is then foreign."""
    token = token_store.load_token() if subdomain else None
    if token is None or not token.account_id:
        return None
    names = {(token.subdomain or "").lower(), (token.domain or "").lower().split(".", 1)[0]}
    return token.account_id if subdomain in names else None


def _ack(processed: int, errors: list[str]) -> dict:
    return {"status": "ok", "processed": processed, "errors": errors}


def _unauthenticated(raw_body: bytes | None, *, reason: str, received_at: float) -> dict:
    """No secret is configured: recorded (its size only: the body may be anyone's) and not applied;
    the scheduled incremental sync reads what changed from amoCRM itself."""
    activity.record(
        "delivery",
        entity_id=None,
        event_type="webhook.unauthenticated",
        outcome=DeliveryOutcome.IGNORED,
        account_id=None,
        received_at=received_at,
        payload={"error": reason, "bytes": len(raw_body or b"")},
    )
    metrics.count("WebhookDeliveries", Outcome=DeliveryOutcome.UNAUTHENTICATED)
    return _ack(0, [f"not applied: {reason}; the scheduled sync catches up"])


def _too_many(
    events: list[WebhookEvent], *, account_id: int | None, received_at: float, amo: Callable[[], AmoApi]
) -> dict:
    """Not applied one by one, not lost either: recorded, and an incremental sync catches up."""
    entities = sorted({e.entity for e in events if e.entity in sync.SYNCABLE})
    activity.record(
        "delivery",
        entity_id=None,
        event_type="webhook.too_many_events",
        outcome=DeliveryOutcome.SYNCED_INSTEAD,
        account_id=account_id,
        received_at=received_at,
        payload={"events": len(events), "entities": entities},
    )
    metrics.count("WebhookDeliveries", Outcome=DeliveryOutcome.TOO_MANY_EVENTS)
    log.warning(
        "a webhook delivery named %d events (over %d); an incremental sync of %s runs instead",
        len(events),
        MAX_EVENTS,
        ", ".join(entities) or "nothing",
    )
    if entities:
        sync.request_incremental(amo, entities)
    return _ack(
        0,
        [
            f"{len(events)} events are more than {MAX_EVENTS}; an incremental sync of "
            f"{', '.join(entities) or 'nothing'} was started instead"
        ],
    )


def _enqueue(
    events: list[WebhookEvent],
    *,
    problems: list[str],
    account_id: int | None,
    received_at: float,
    amo: Callable[[], AmoApi],
) -> dict:
    bodies = [
        json.dumps(
            {
                "entity": e.entity,
                "action": e.action,
                "item": personal_data.strip(e.item),  # the queue and its DLQ hold no personal data
                "eventId": e.event_id,
                "accountId": account_id,
                "receivedAt": received_at,
            }
        )
        for e in events
    ]
    rejected = set(queues.send_webhook_events(bodies)) if bodies else set()
    refused = [event for event, body in zip(events, bodies, strict=True) if body in rejected]
    errors = list(problems)
    if refused:  # SQS refused them: do not lose them, apply them now
        errors += webhook_events.process_events(amo(), events=refused, account_id=account_id, received_at=received_at)[
            1
        ]
    metrics.count("WebhookDeliveries", Outcome=DeliveryOutcome.QUEUED)
    activity.record(
        "delivery",
        entity_id=None,
        event_type="webhook.delivery",
        outcome=DeliveryOutcome.QUEUED,
        account_id=account_id,
        received_at=received_at,
        payload={"events": [f"{e.entity}[{e.action}] {e.entity_id}" for e in events][:50], "problems": problems},
    )
    return _ack(len(events), errors)


# -- registration in amoCRM ---------------------------------------------------------------------


def _destination(url: str | None, own_url: str | None = None, allow_foreign: bool = False) -> str:
    """The subscription's destination, with the secret. Unless told otherwise it must be this
    API's own host: amoCRM sends the secret and every account event there."""
    url = url or settings.public_webhook_url() or own_url
    if not url:
        raise InvalidInput("url is required (or set WEBHOOK_PUBLIC_URL)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("url must be an http(s) URL")
    own = settings.public_webhook_url() or own_url  # the configured public URL wins over Host
    own_hosts = {urlsplit(own).hostname} if own else set()
    if not allow_foreign and parts.hostname not in own_hosts:
        raise InvalidInput(
            f"url must point at this service ({', '.join(sorted(h for h in own_hosts if h))}): amoCRM sends "
            "the webhook secret and every account event there; send allowForeignDestination: true if you mean it"
        )
    return with_secret(url)


def register(amo: AmoApi, *, url: str | None = None, own_url: str | None = None, allow_foreign: bool = False) -> dict:
    """Subscribe our webhook URL for exactly the events we handle; idempotent by destination.
    Where amoCRM refuses its webhooks API (plan, rights), the answer is the manual steps."""
    destination = _destination(url, own_url, allow_foreign)
    try:
        result = _subscribe(amo, destination)
    except MANUAL_REGISTRATION as error:
        if isinstance(error, AmoPaymentRequired) and not account_payment.probe(amo):
            raise  # not the plan: the whole account is unpaid (the route answers 402)
        log.warning("webhook registration is manual: amoCRM answered %s", error.status)
        return webhook_manual.register_steps(
            destination, events=SUBSCRIBED_EVENTS, error=error, rotating=bool(settings.amo_webhook_secret_previous())
        )
    try:
        retired = _retire_other_secrets(amo, destination)
    except AmoError as error:  # the new one is subscribed; the old one stays until the next register
        return {**result, "warning": f"the subscription with the previous secret was not deleted: {error}"}
    return {**result, **({"retired": retired} if retired else {})}


def _subscribe(amo: AmoApi, destination: str) -> dict:
    """amoCRM disables a hook after too many invalid answers (reference §13) and only a person
    enables it again in the UI: a disabled subscription is re-POSTed, and if amoCRM still
    shows it disabled, deleted and created anew."""
    existing = amo.webhooks.find(destination)
    result = {"destination": masked(destination), "settings": SUBSCRIBED_EVENTS, "registration": "api"}
    if existing and sorted(existing.settings) == sorted(SUBSCRIBED_EVENTS) and not existing.disabled:
        return {"message": "webhook already registered", **result}
    amo.webhooks.subscribe(destination, SUBSCRIBED_EVENTS)
    if not (existing and existing.disabled):
        return {"message": "webhook settings updated" if existing else "webhook registered", **result}
    metrics.count("WebhookReenabled")
    again = amo.webhooks.find(destination)
    if again is not None and again.disabled:
        amo.webhooks.unsubscribe(destination)
        amo.webhooks.subscribe(destination, SUBSCRIBED_EVENTS)
        again = amo.webhooks.find(destination)
    enabled = again is not None and not again.disabled
    log.warning("amoCRM had disabled the webhook subscription; %s", "re-enabled" if enabled else "still disabled")
    message = "webhook was disabled by amoCRM; re-enabled" if enabled else "webhook is still disabled in amoCRM"
    return {"message": message, "reenabled": enabled, **result}


def _retire_other_secrets(amo: AmoApi, destination: str) -> list[str]:
    """After a secret rotation: delete the subscriptions of this very URL with another secret
    (the old one), once the new one is subscribed, so amoCRM stops sending to a URL that will
    answer 401 once AMO_WEBHOOK_SECRET_PREVIOUS is dropped (docs/operating.md)."""
    same = without_secret(destination)
    stale = [
        s.destination
        for s in amo.webhooks.all()
        if s.destination != destination and without_secret(s.destination) == same
    ]
    for old in stale:
        amo.webhooks.unsubscribe(old)
        log.info("deleted the webhook subscription with the old secret: %s", masked(old))
    return [masked(old) for old in stale]


def subscription_status(amo: AmoApi) -> dict:
    """What `status` shows about our subscriptions in amoCRM: each one whose destination is our
    webhook route, whether amoCRM has disabled it, and events it lacks (secrets masked)."""
    try:
        found = [s for s in amo.webhooks.all() if WEBHOOK_PATH in s.destination]
    except MANUAL_REGISTRATION as error:
        return {"registration": webhook_manual.MANUAL, "webhooks": webhook_manual.refusal(error)}
    except AmoError as error:
        return {"webhooks": f"unknown ({type(error).__name__})"}
    if not found:
        return {"registration": "api", "webhooks": "none registered (POST webhook/register)"}
    return {
        "registration": "api",
        "webhooks": [
            {
                "destination": masked(s.destination),
                "disabled": s.disabled,
                "missingEvents": sorted(set(SUBSCRIBED_EVENTS) - set(s.settings)),
            }
            for s in found
        ],
        **(
            {"webhookWarning": "amoCRM disabled a webhook: POST webhook/register re-enables it"}
            if any(s.disabled for s in found)
            else {}
        ),
    }


def unregister(amo: AmoApi, url: str | None = None, own_url: str | None = None) -> dict:
    destination = _destination(url, own_url, allow_foreign=True)  # removing leaks nothing
    try:
        amo.webhooks.unsubscribe(destination)
    except MANUAL_REGISTRATION as error:
        return webhook_manual.unregister_steps(destination, error)
    return {"message": "webhook unregistered", "destination": masked(destination), "settings": []}
