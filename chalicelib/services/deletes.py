"""Applying a delete made in amoCRM, whoever reports it (a webhook, the events log): believed
only when amoCRM confirms it, then applied the one way for each entity.

- a lead is unlinked: our record stays (the Main Backend refers to it), its amoCRM id goes;
- a task is marked unlinked, its record kept;
- a contact is erased: its row and the guest fields it fed on every lead (erasure.py).
A forged or misrouted `[delete]`, or an event the entity's restore has since undone, must not
unlink a live lead, so amoCRM is asked first: gone means a 204, or a 404 naming the entity, to
a direct GET, or the object marked deleted (reference §3.5, §10.1); any other 404 raises
`AmoUnknownPath` and the delete is tried again later.
"""

from __future__ import annotations

import logging

from chalicelib.amo.api import AmoApi
from chalicelib.amo.errors import AmoError
from chalicelib.services import erasure, leads, tasks
from chalicelib.services.webhook_outcomes import EventOutcome

log = logging.getLogger(__name__)


def still_in_amo(amo: AmoApi, entity: str, entity_id: int) -> bool:
    """False only when amoCRM confirms the entity is gone (see the module's docstring)."""
    raw = getattr(amo, entity).get(entity_id)
    return bool(raw) and not raw.get("is_deleted")


def apply(amo: AmoApi, *, entity: str, entity_id: int, trash_checked: bool = False) -> EventOutcome:
    """Confirm with amoCRM, then apply; STILL_EXISTS when amoCRM contradicts the delete. A lead
    is looked up in amoCRM's trash first (unless the caller just did): found there, the delete
    is confirmed with its time in one request; only a lead not there is asked for directly. A
    lead we do not hold linked costs no request at all."""
    deleted_at = None
    if entity == "leads":
        if not leads.is_linked(entity_id):
            return EventOutcome.UNKNOWN
        deleted_at = None if trash_checked else _trash_time(amo, entity_id)
    if deleted_at is None and still_in_amo(amo, entity, entity_id):
        log.warning("%s[delete] %s refused: amoCRM still has it", entity, entity_id)
        return EventOutcome.STILL_EXISTS
    return apply_confirmed(entity, entity_id, deleted_at=deleted_at)


def apply_confirmed(entity: str, entity_id: int, deleted_at: int | None = None) -> EventOutcome:
    """Apply a delete amoCRM has confirmed; UNKNOWN when we held nothing of it. `deleted_at`
    (amoCRM's clock) versions a lead's unlink (leads.unlink)."""
    if entity == "leads":
        return EventOutcome.UNLINKED if leads.unlink(entity_id, deleted_at) else EventOutcome.UNKNOWN
    if entity == "tasks":
        return EventOutcome.UNLINKED if tasks.unlink(entity_id) else EventOutcome.UNKNOWN
    erased = erasure.forget_contact(entity_id)
    return EventOutcome.ERASED if any(erased.values()) else EventOutcome.UNKNOWN


def trash_time(raw: object) -> int | None:
    """A trash entry's `updated_at`: when amoCRM deleted it, on amoCRM's clock (reference §10.1)."""
    updated_at = raw.get("updated_at") if isinstance(raw, dict) and raw.get("is_deleted") else None
    return updated_at if isinstance(updated_at, int) and not isinstance(updated_at, bool) else None


def _trash_time(amo: AmoApi, lead_id: int) -> int | None:
    """When amoCRM deleted the lead, from its trash; None when the trash does not hold it (not
    deleted, or purged) or could not be read: then a direct GET decides."""
    try:
        found = [raw for raw in amo.leads.in_trash([lead_id]) if isinstance(raw, dict) and raw.get("id") == lead_id]
    except (AmoError, ValueError) as error:  # the direct GET still confirms or refuses the delete
        log.info("lead %s: the trash could not be read (%s)", lead_id, type(error).__name__)
        return None
    return trash_time(found[0]) if found else None
