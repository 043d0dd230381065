"""SQS: where work that must not be lost goes. The client is created once, on first use.

Every message carries the sender's correlation id as the message attribute `correlation_id`,
so the consumer logs under the same id (queue_batch.run binds it per record).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws, logs, settings
from chalicelib.memo import memoize

log = logging.getLogger(__name__)

CORRELATION_ATTRIBUTE = "correlation_id"
MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds


@memoize()
def sqs():
    # honours AWS_ENDPOINT_URL (moto server locally); the session shares botocore's parsed JSON
    return boto3.session.Session(botocore_session=aws.botocore_session()).client("sqs")


def _attributes() -> dict:
    current = logs.current_id()
    return {CORRELATION_ATTRIBUTE: {"DataType": "String", "StringValue": current}} if current else {}


def sync_queue_configured() -> bool:
    return bool(settings.sync_queue_url())


def send_sync_request(message: dict) -> None:
    sqs().send_message(
        QueueUrl=settings.sync_queue_url(), MessageBody=json.dumps(message), MessageAttributes=_attributes()
    )


def notify_queue_configured() -> bool:
    return bool(settings.notify_queue_url())


def send_notification(event_id: str) -> None:
    sqs().send_message(
        QueueUrl=settings.notify_queue_url(),
        MessageBody=json.dumps({"eventId": event_id}),
        MessageAttributes=_attributes(),
    )


def delay_notification(receipt_handle: str, seconds: int) -> None:
    """Back off before SQS offers the message again (exponential per receive)."""
    sqs().change_message_visibility(
        QueueUrl=settings.notify_queue_url(), ReceiptHandle=receipt_handle, VisibilityTimeout=int(seconds)
    )


def delay_webhook_event(receipt_handle: str, seconds: int) -> None:
    """Offer a webhook event again after `seconds` rather than the queue's visibility timeout;
    if SQS refuses, the timeout applies, which only makes the wait longer."""
    try:
        sqs().change_message_visibility(
            QueueUrl=settings.webhook_queue_url(), ReceiptHandle=receipt_handle, VisibilityTimeout=int(seconds)
        )
    except (BotoCoreError, ClientError) as error:
        log.warning("webhook event not re-timed (%s); offered again after the queue's timeout", type(error).__name__)


def hold_webhook_event(body: str, seconds: int) -> None:
    """Queue a webhook event again as a new message, offered after `seconds` (at most SQS's
    900): unlike a longer visibility timeout, this does not count a receive towards the
    dead-letter queue. SQS refusing raises, so the original message stays and is retried."""
    sqs().send_message(
        QueueUrl=settings.webhook_queue_url(),
        MessageBody=body,
        DelaySeconds=min(int(seconds), MAX_DELAY_SECONDS),
        MessageAttributes=_attributes(),
    )


def dead_letter_count() -> int | None:
    url = settings.notify_dlq_url()
    if not url:
        return None
    attributes = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def drain_notification_dead_letters() -> int:
    url = settings.notify_dlq_url()
    drained = 0
    while url:
        messages = sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        sqs().delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
        drained += len(messages)
    return drained


def webhook_queue_configured() -> bool:
    return bool(settings.webhook_queue_url())


SQS_BATCH = 10  # SendMessageBatch's most entries per call
# batches in flight at once: a 100-event delivery's ten round trips to SQS become four rounds.
# Against moto (one CPU-bound server) this measured neither faster nor slower (BENCHMARKS.md §7);
# the gain is on SQS, whose answers wait on the network, not on one CPU
SQS_BATCHES_AT_ONCE = 3


def send_webhook_events(bodies: list[str]) -> list[str]:
    """Queue events, 10 per SendMessageBatch, a few batches at once; returns the bodies SQS did
    not accept."""
    client, url, attributes = sqs(), settings.webhook_queue_url(), _attributes()
    chunks = [bodies[start : start + SQS_BATCH] for start in range(0, len(bodies), SQS_BATCH)]
    if len(chunks) <= 1:
        return [body for chunk in chunks for body in _send_batch(client, url=url, chunk=chunk, attributes=attributes)]
    with logs.ThreadPool(max_workers=min(len(chunks), SQS_BATCHES_AT_ONCE), thread_name_prefix="webhook-queue") as pool:
        sent = [pool.submit(_send_batch, client, url=url, chunk=chunk, attributes=attributes) for chunk in chunks]
        return [body for batch in sent for body in batch.result()]


def _send_batch(client: Any, *, url: str | None, chunk: list[str], attributes: dict) -> list[str]:
    """One SendMessageBatch (botocore clients are thread-safe); the bodies SQS did not take (all
    of them when it refused the call)."""
    try:
        answer = client.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": body, "MessageAttributes": attributes} for i, body in enumerate(chunk)
            ],
        )
    except (BotoCoreError, ClientError) as error:  # throttled or unreachable: the caller applies them
        log.warning("SQS refused %d webhook events (%s); they are applied inline", len(chunk), error)
        return chunk
    return [chunk[int(failed["Id"])] for failed in answer.get("Failed", [])]
