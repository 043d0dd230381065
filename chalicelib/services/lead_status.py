"""A lead's status: derived from its stage's mapping, and every change of it written in one
DynamoDB transaction with the Main Backend notification that reports it.

One transaction, because the outbox item is the record of what the Main Backend must hear:
written apart, a failure between the two writes (throttling, a process that dies) leaves the
lead changed and the notification missing, and the retry finds nothing left to do. Together,
both land or neither does and the retry starts over. Delivery (queue or inline) follows the
commit; what a dying process never dispatched, the hourly sweeper sends.

A status derived from a mapping is written only while that mapping still holds (a condition
check on the stage inside the same transaction), so a sync or a webhook that read the mapping
before an operator changed it cannot put the old status back after the new one was applied.

Why a status changed (the notification's `reason`):
- `amo_stage_changed`: the lead moved to another stage in amoCRM; occurredAt is amoCRM's time.
- `mapping_changed`: the stage is the same, its mapping is not; occurredAt is when the mapping
  changed and the event id names the mapping's version, so a retried re-derivation notifies
  once. A mapping changed before its time was recorded counts from now (never from a stale
  amoCRM timestamp).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from chalicelib.locking import is_conflict, wrote
from chalicelib.models import AmoStage, Lead, Notification
from chalicelib.services import notifications
from chalicelib.services.notifications import AMO_STAGE_CHANGED, MAPPING_CHANGED
from chalicelib.services.stage_names import CLOSED, LOST_STATUS_ID, NEW, WON_STATUS_ID

MAX_FUTURE_SECONDS = 300  # an amoCRM time further ahead than this is a forgery or a broken clock


class StageMapping(NamedTuple):
    """What an amoCRM stage maps to, and which change of the mapping that is."""

    status: str | None
    version: int | None = None
    mapped_at: int | None = None


@dataclass(frozen=True)
class StatusChange:
    previous: str | None
    reason: str
    occurred_at: int
    event_id: str


def in_future(timestamp: int | None) -> bool:
    return timestamp is not None and timestamp > time.time() + MAX_FUTURE_SECONDS


def derive(status_id: int | None, mapping: StageMapping | None, current: str | None) -> str:
    """SPEC §2: 142/143 are CLOSED; a mapped stage gives its status; an unmapped one keeps the
    current status, or NEW for a new lead."""
    if status_id in (WON_STATUS_ID, LOST_STATUS_ID):
        return CLOSED
    if mapping is not None and mapping.status:
        return mapping.status
    return current or NEW


def stage_changed(lead: Lead, previous: str | None, occurred_at: int) -> StatusChange:
    return StatusChange(previous, AMO_STAGE_CHANGED, occurred_at, notifications.event_id_for(lead, occurred_at))


def mapping_changed(lead: Lead, previous: str | None, mapping: StageMapping | None) -> StatusChange:
    stage = f"lead-status-{lead.amo_lead_id}-{lead.amo_pipeline_id}-{lead.amo_status_id}-mapping"
    if mapping is not None and mapping.version:
        return StatusChange(
            previous, MAPPING_CHANGED, int(mapping.mapped_at or time.time()), f"{stage}-v{int(mapping.version)}"
        )
    now = int(time.time())
    return StatusChange(previous, MAPPING_CHANGED, now, f"{stage}-at-{now}")


def change_between(old: Lead | None, *, new: Lead, mapping: StageMapping | None, amo_time: int) -> StatusChange | None:
    """The status change writing `new` over `old` makes (None for a new lead or the same status)."""
    if old is None or old.status == new.status:
        return None
    if (old.amo_pipeline_id, old.amo_status_id) == (new.amo_pipeline_id, new.amo_status_id):
        return mapping_changed(new, old.status, mapping)
    return stage_changed(new, old.status, amo_time)


def _mapping_holds(lead: Lead, mapping: StageMapping | None) -> Condition | None:
    if lead.amo_status_id in (WON_STATUS_ID, LOST_STATUS_ID) or lead.amo_status_id is None:
        return None
    if mapping is not None and mapping.status:
        return AmoStage.mapped_status == mapping.status
    return AmoStage.mapped_status.does_not_exist()


def write(
    lead: Lead,
    *,
    condition: Condition,
    change: StatusChange | None = None,
    mapping: StageMapping | None = None,
    actions: list[Any] | None = None,
) -> bool:
    """Put `lead` (or apply `actions` to it) under `condition`; with a `change`, record its
    notification in the same transaction, as long as `mapping` still holds for the lead's stage.
    False when a condition failed: the caller re-reads and decides again."""
    if change is None:
        return wrote(
            lambda: lead.update(actions=actions, condition=condition) if actions else lead.save(condition=condition)
        )
    note = notifications.outbox_item(
        lead,
        previous_status=change.previous,
        occurred_at=change.occurred_at,
        reason=change.reason,
        event_id=change.event_id,
    )
    check = _mapping_holds(lead, mapping)
    try:
        with TransactWrite(connection=Lead._get_connection().connection) as transaction:
            if check is not None:
                transaction.condition_check(AmoStage, lead.amo_pipeline_id, lead.amo_status_id, condition=check)
            transaction.save(note, condition=Notification.event_id.does_not_exist())
            if actions:
                transaction.update(lead, actions=actions, condition=condition)
            else:
                transaction.save(lead, condition=condition)
    except PynamoDBException as error:
        if not is_conflict(error):
            raise
        # reasons come as condition check, then puts (the note first), then updates (the lead)
        failed = [
            reason is not None and reason.code == "ConditionalCheckFailed"
            for reason in getattr(error, "cancellation_reasons", [])
        ]
        note_at = 1 if check is not None else 0
        if failed and failed[note_at] and not any(failed[:note_at] + failed[note_at + 1 :]):
            # this change was recorded already (a retry after an answer lost): its lead is
            # written again, and its notification, if still pending, dispatched now, not by the sweeper
            landed = write(lead, condition=condition, actions=actions)
            notifications.dispatch_if_pending(note.event_id)
            return landed
        return False
    notifications.recorded(note)
    return True
