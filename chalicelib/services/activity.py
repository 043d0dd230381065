"""The activity log: one record per webhook event (and per delivery), readable per entity, expiring by TTL.

It holds event metadata, never a guest's name, phone or e-mail: every payload fragment passes
through `personal_data.strip` before it is written (docs/personal-data.md).

The log is a diagnostic record, never part of the work it describes: a record that cannot be
written (DynamoDB throttled or unreachable) is counted and logged, and the delivery or event it
would describe goes on as if it had been written."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib import metrics
from chalicelib.models import AmoActivityLog
from chalicelib.services import personal_data
from chalicelib.services.errors import InvalidInput
from chalicelib.services.webhook_outcomes import DeliveryOutcome, EventOutcome

log = logging.getLogger(__name__)

ACTIVITY_RETENTION = timedelta(days=30)
PAYLOAD_FRAGMENT_CHARS = 2000
ACTIVITY_ENTITIES = ("leads", "contacts", "tasks", "delivery", "guests")


def record(
    entity: str,
    *,
    entity_id: int | None,
    event_type: str,
    outcome: EventOutcome | DeliveryOutcome,
    account_id: int | None,
    received_at: float,
    payload: Any,
    event_id: str | None = None,
) -> None:
    fragment = json.dumps(personal_data.strip(payload), ensure_ascii=False, default=str)
    if len(fragment) > PAYLOAD_FRAGMENT_CHARS:
        fragment = json.dumps({"truncated": fragment[:PAYLOAD_FRAGMENT_CHARS]}, ensure_ascii=False)
    item = AmoActivityLog(
        entity_key=f"{entity}#{entity_id if entity_id is not None else '-'}",
        event_key=f"{int(received_at * 1000):013d}#{event_id or time.time_ns()}",
        event_type=event_type,
        entity_type=entity,
        entity_id=entity_id,
        account_id=account_id,
        received_at=received_at,
        outcome=outcome,
        payload=json.loads(fragment),
        expires_at=datetime.now(UTC) + ACTIVITY_RETENTION,
    )
    item.touch()
    try:
        item.save()
    except PynamoDBException as error:
        metrics.count("ActivityLogWriteFailures")
        log.warning("activity record %s %s not written (%s); the work goes on", entity, event_type, error)


def activity(entity: str, entity_id: int | None, limit: int = 50) -> dict:
    """Newest first: what webhooks did to one entity (or, entity `delivery`, the deliveries)."""
    if entity not in ACTIVITY_ENTITIES:
        raise InvalidInput(f"entity must be one of {', '.join(ACTIVITY_ENTITIES)}")
    key = f"{entity}#{entity_id if entity_id is not None else '-'}"
    data = [i.to_dict() for i in AmoActivityLog.query(key, scan_index_forward=False, limit=limit)]
    return {"data": data, "count": len(data)}
