"""SQS consumers, one record at a time, with a partial-batch response (ReportBatchItemFailures).

Every consumer runs its records through `run`: a record whose handler raises is reported
back, so SQS offers it again later (and after the queue's maxReceiveCount moves it to the
dead-letter queue); the others count as done. A body that is not a JSON object is just a
failing record: it never takes its neighbours down with it. Each record is handled, and its
failure logged, under the correlation id it carries (queues.py sets it).

A batch in which every record failed returns normally too (so Lambda's Errors stays 0), but
it is what a stuck consumer looks like: it is logged and counted as the metric
`QueueBatchFailed` (dimension Queue), which the template alarms on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib import logs, metrics
from chalicelib.amo.errors import AmoError
from chalicelib.services.errors import ServiceError

log = logging.getLogger(__name__)


class MalformedMessage(ValueError):
    """The body is not what this queue's producer writes."""


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str
    receipt_handle: str
    receive_count: int
    correlation_id: str = ""

    @classmethod
    def from_record(cls, record: dict) -> Message:
        attributes = record.get("attributes") or {}
        try:
            receives = int(attributes.get("ApproximateReceiveCount", 1))
        except (TypeError, ValueError):
            receives = 1
        carried = ((record.get("messageAttributes") or {}).get("correlation_id") or {}).get("stringValue")
        return cls(
            message_id=str(record.get("messageId") or ""),
            body=str(record.get("body") or ""),
            receipt_handle=str(record.get("receiptHandle") or ""),
            receive_count=receives,
            correlation_id=logs.clean(carried),
        )

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            raise MalformedMessage("message body is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedMessage("message body is not a JSON object")
        return data


def describe(error: BaseException) -> str:
    """A log-safe description: our own messages in full, anything else by its type only."""
    return (
        str(error)
        if isinstance(error, (ServiceError, AmoError, MalformedMessage))
        else f"internal error ({type(error).__name__})"
    )


def run(records: Iterable[dict], handle: Callable[[Message], object], what: str) -> dict:
    failures = []
    total = 0
    for record in records:
        message = Message.from_record(record)
        total += 1
        with logs.bound(message.correlation_id):
            try:
                handle(message)
            except Exception as error:
                log.warning("%s message %s failed: %s", what, message.message_id, describe(error))
                failures.append({"itemIdentifier": message.message_id})
    if failures and len(failures) == total:
        log.warning("every record of a %s batch failed (%d)", what, total)
        metrics.count("QueueBatchFailed", Queue=what)
    return {"batchItemFailures": failures}
