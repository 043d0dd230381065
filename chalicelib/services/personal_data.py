"""What counts as a guest's personal data here, and how it is kept out of what we store for
diagnosis (docs/personal-data.md).

The activity log keeps event metadata only. A payload fragment is reduced to an allow-list of
keys that carry ids, times, states and counts: names, phones, e-mails, custom fields, notes,
task texts and raw bodies are never written. An allow-list, not a deny-list: amoCRM's webhook
items carry personal data under many keys (`name`, `custom_fields[…][values]`, `text`, a lead
named after its guest), and a key we do not know yet must not leak.
"""

from __future__ import annotations

import re
from typing import Any

PLACEHOLDER_NAME = "Deleted guest"  # what an erased contact is called in amoCRM
MAX_DEPTH = 4
SAFE_KEYS = frozenset(
    {
        # amoCRM's webhook items (legacy names, reference §9.3) and API objects
        "id",
        "status_id",
        "old_status_id",
        "pipeline_id",
        "old_pipeline_id",
        "responsible_user_id",
        "old_responsible_user_id",
        "modified_user_id",
        "created_user_id",
        "created_by",
        "updated_by",
        "last_modified",
        "date_create",
        "created_at",
        "updated_at",
        "complete_till",
        "account_id",
        "group_id",
        "type",
        "task_type",
        "element_id",
        "element_type",
        "entity_id",
        "entity_type",
        "status",
        "is_completed",
        "is_deleted",
        "price",
        "account",
        "subdomain",
        # what the service itself records
        "_error",
        "error",
        "bytes",
        "events",
        "entities",
        "problems",
        "source",
        "erased",
        "amoChanged",
        "by",
        "contacts",  # counts of an erasure
        "leads",
        "tasks",
        "activityLog",
    }
)


def strip(payload: Any, depth: int = 0) -> Any:
    """`payload` with every key outside SAFE_KEYS removed, at every depth (a list keeps its
    scalar items and stripped objects). What was left out is named under `_omitted` (key names
    only), so a reader knows the fragment is not the whole item."""
    if isinstance(payload, dict):
        if depth >= MAX_DEPTH:
            return {"_omitted": ["(nested too deep)"]}
        kept = {str(k): strip(v, depth + 1) for k, v in payload.items() if str(k) in SAFE_KEYS}
        omitted = sorted(str(k) for k in payload if str(k) not in SAFE_KEYS and str(k) != "_omitted")
        return {**kept, "_omitted": omitted} if omitted else kept
    if isinstance(payload, list):
        return [strip(item, depth + 1) for item in payload]
    return payload


def normal_email(email: str | None) -> str:
    """An e-mail as compared: trimmed, lower case."""
    return (email or "").strip().lower()


def normal_phone(phone: str | None) -> str:
    """A phone as compared: its digits only, and a Russian trunk prefix 8 read as 7
    (+7 999 123-45-67 and 8 (999) 123 45 67 are one number)."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    return digits
