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
from chalicelib.services import erasure, leads, tasks
from chalicelib.services.webhook_outcomes import EventOutcome

log = logging.getLogger(__name__)


def still_in_amo(amo: AmoApi, entity: str, entity_id: int) -> bool:
    """False only when amoCRM confirms the entity is gone (see the module's docstring)."""
    raw = getattr(amo, entity).get(entity_id)
    return bool(raw) and not raw.get("is_deleted")


def apply(amo: AmoApi, entity: str, entity_id: int) -> EventOutcome:
    """Confirm with amoCRM, then apply; STILL_EXISTS when amoCRM contradicts the delete."""
    if still_in_amo(amo, entity, entity_id):
        log.warning("%s[delete] %s refused: amoCRM still has it", entity, entity_id)
        return EventOutcome.STILL_EXISTS
    return apply_confirmed(entity, entity_id)


def apply_confirmed(entity: str, entity_id: int) -> EventOutcome:
    """Apply a delete amoCRM has confirmed; UNKNOWN when we held nothing of it."""
    if entity == "leads":
        return EventOutcome.UNLINKED if leads.unlink(entity_id) else EventOutcome.UNKNOWN
    if entity == "tasks":
        return EventOutcome.UNLINKED if tasks.unlink(entity_id) else EventOutcome.UNKNOWN
    erased = erasure.forget_contact(entity_id)
    return EventOutcome.ERASED if any(erased.values()) else EventOutcome.UNKNOWN
