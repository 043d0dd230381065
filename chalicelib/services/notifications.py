"""Main Backend notifications: every lead status change is recorded here, once per event id.

`record_status_change` is the one entry point for syncs and webhooks alike. The outbox item
is written with a does-not-exist condition, so the same change seen twice (a webhook
redelivered, a sync after the webhook) records one notification.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from pynamodb.exceptions import PynamoDBException

from chalicelib import settings
from chalicelib.locking import is_conflict
from chalicelib.models import Lead, Notification

log = logging.getLogger(__name__)

RETENTION = timedelta(days=30)
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
    item = Notification(event_id=event_id, payload=payload, state=state)
    item.expires_at = datetime.now(timezone.utc) + RETENTION
    item.touch()
    try:
        item.save(condition=Notification.event_id.does_not_exist())
    except PynamoDBException as error:
        if is_conflict(error):
            return None
        raise
    log.info("lead %s status %s -> %s recorded (%s)", lead.amo_lead_id, previous_status, lead.status, state)
    return event_id
