"""Personal data kept no longer than PERSONAL_DATA_RETENTION_DAYS (default 730), applied by the
hourly sweeper (docs/personal-data.md):

- a lead unlinked from amoCRM (deleted there) that long ago loses its guest fields and amoCRM's
  custom fields (which may hold a phone or e-mail); the lead itself stays, it is the Main
  Backend's record;
- a contact row no lead refers to, unchanged that long, is deleted.
Leads still linked keep their guest fields: amoCRM is where the person is managed, and the next
sync would copy them again. Each run scans the two tables with a filter; both are small next to
what DynamoDB scans in a second.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from pynamodb.expressions.update import Action

from chalicelib import metrics, settings
from chalicelib.locking import wrote
from chalicelib.models import AmoContact, Lead, utc_now

log = logging.getLogger(__name__)


def sweep(now: datetime | None = None) -> dict:
    """One pass; `{leads, contacts}`: how many had their personal data erased."""
    cutoff = (now or utc_now()) - timedelta(days=settings.personal_data_retention_days())
    guest = Lead.guest_name.exists() | Lead.guest_phone.exists() | Lead.guest_email.exists()
    leads = 0
    unlinked_long_ago = Lead.amo_lead_id.does_not_exist() & (Lead.updated_at < cutoff)
    erase: list[Action] = [
        Lead.guest_name.remove(),
        Lead.guest_phone.remove(),
        Lead.guest_email.remove(),
        Lead.custom_fields.remove(),
    ]
    for lead in Lead.scan(unlinked_long_ago & guest):
        # on condition: a lead a restore linked again meanwhile keeps what it was given
        leads += wrote(functools.partial(lead.update, actions=erase, condition=unlinked_long_ago))
    contacts = 0
    for contact in AmoContact.scan(AmoContact.updated_at < cutoff):
        if not any(True for _ in Lead.by_amo_contact_id.query(contact.id, limit=1)):
            # not if a sync stored it again meanwhile
            contacts += wrote(functools.partial(contact.delete, AmoContact.updated_at < cutoff))
    if leads or contacts:
        metrics.count("PersonalDataExpired", leads + contacts)
        log.info("personal data past retention erased: %d leads' guest fields, %d contacts", leads, contacts)
    return {"leads": leads, "contacts": contacts}
