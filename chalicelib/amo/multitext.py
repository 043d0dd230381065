"""Changing one phone or e-mail of a contact without losing the others (reference §5.3, §13).

amoCRM replaces a multitext field's whole value list with the values sent: a contact written
with only the new phone loses its mobile, home and every other number. So a change is made
against the contact as amoCRM holds it now: every other value is kept (with its enum), the value
the caller changes (the field's first value, the one this service mirrors as `phone`/`email`)
is replaced, or the new value is added first when the field is empty, and values that are the
same once normalised (a phone's digits, an e-mail's lower case) are sent once.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_ENUM = "WORK"
_KEEP = ("value", "enum_id", "enum_code")


def normalised(code: str, value: Any) -> str:
    """A value as compared: the digits of a phone (its text, for one written without any: "по
    WhatsApp"), an e-mail stripped and in lower case; "" only for a blank value."""
    text = str(value or "").strip()
    if code == "PHONE":
        return re.sub(r"\D", "", text) or text.casefold()
    return text.casefold()


def field_values(custom_fields: Any, code: str) -> list[dict]:
    """The values of the field with this code (PHONE, EMAIL) as amoCRM answered them."""
    for field in custom_fields if isinstance(custom_fields, list) else []:
        if isinstance(field, dict) and field.get("field_code") == code:
            values = field.get("values")
            return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []
    return []


def merged(current: list[dict], code: str, new_value: str) -> list[dict] | None:
    """The full list to write so that `new_value` becomes the field's first value and every
    other value stays; None when the field already reads that way (nothing to send). The value
    replaced is the first one that is not blank, the one the mirror holds (`first_value`)."""
    key = normalised(code, new_value)
    usable = [v for v in current if normalised(code, v.get("value"))]
    if usable and normalised(code, usable[0].get("value")) == key:
        return None
    # the new value takes the enum of the same number already held (a MOB stays a MOB), else the
    # enum of the first value it replaces
    same = next((v for v in usable if normalised(code, v.get("value")) == key), usable[0] if usable else {})
    enum = {k: same[k] for k in ("enum_id", "enum_code") if same.get(k) is not None}
    result = [{"value": new_value, **(enum or {"enum_code": DEFAULT_ENUM})}]
    seen = {key}
    for value in usable[1:]:
        value_key = normalised(code, value.get("value"))
        if value_key not in seen:
            seen.add(value_key)
            result.append({k: value[k] for k in _KEEP if value.get(k) is not None})
    return result


def changed_fields(current_custom_fields: Any, wanted: dict[str, str]) -> list[dict]:
    """`custom_fields_values` for the multitext fields whose merged list differs from what
    amoCRM holds (`wanted` maps PHONE/EMAIL to the caller's new value); fields that do not
    change are left out, so they are not written at all."""
    fields = []
    for code, new_value in wanted.items():
        values = merged(field_values(current_custom_fields, code), code, new_value)
        if values is not None:
            fields.append({"field_code": code, "values": values})
    return fields
