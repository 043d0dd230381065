"""`custom_fields_values` writes, shared by leads and contacts."""

from __future__ import annotations

import copy
from typing import Any

from sandbox import entities


def merge_custom_fields(current: list | None, changes: Any, errors: list, path: str) -> list | None:
    """amoCRM semantics: each field given replaces that field's values; `values: null` clears it."""
    if changes is None:
        return None
    if not isinstance(changes, list):
        errors.append(
            {
                "code": "InvalidType",
                "path": f"{path}custom_fields_values",
                "detail": "This value should be of type array.",
            }
        )
        return current
    fields = {(f.get("field_id"), f.get("field_code")): f for f in copy.deepcopy(current or [])}
    by_code = {f.get("field_code"): key for key, f in fields.items() if f.get("field_code")}
    by_id = {f.get("field_id"): key for key, f in fields.items()}
    for index, change in enumerate(changes):
        if not isinstance(change, dict) or not (change.get("field_id") or change.get("field_code")):
            errors.append(
                {
                    "code": "FieldMissing",
                    "path": f"{path}custom_fields_values.{index}.field_id",
                    "detail": "field_id or field_code is required",
                }
            )
            continue
        key = by_id.get(change.get("field_id")) or by_code.get(change.get("field_code"))
        if change.get("values") is None:
            if key:
                fields.pop(key)
            continue
        if not isinstance(change["values"], list):
            errors.append(
                {
                    "code": "InvalidType",
                    "path": f"{path}custom_fields_values.{index}.values",
                    "detail": "This value should be of type array.",
                }
            )
            continue
        code = change.get("field_code")
        system = entities.SYSTEM_FIELDS.get(code or "")
        field_id = change.get("field_id") or (system[0] if system else None)
        fields[key or (field_id, code)] = {
            "field_id": field_id,
            "field_name": system[1] if system else "Поле",
            "field_code": code,
            "field_type": "multitext" if system else "text",
            "values": [dict(v) for v in change["values"] if isinstance(v, dict)],
        }
    return list(fields.values()) or None
