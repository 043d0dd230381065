"""`custom_fields_values` writes, shared by leads and contacts."""

from __future__ import annotations

import copy
from typing import Any

from sandbox import entities

SYSTEM_CODES = {field_id: code for code, (field_id, _, _) in entities.SYSTEM_FIELDS.items()}


def _value(value: dict, system: tuple[int, str, dict[str, int]] | None) -> dict:
    """A value as stored; a PHONE or EMAIL value gets both its enum_code and enum_id (WORK when it
    names neither), as amoCRM answers them."""
    if system is None:
        return dict(value)
    enums = system[2]
    code = value.get("enum_code")
    if code not in enums:
        code = next((name for name, enum_id in enums.items() if enum_id == value.get("enum_id")), "WORK")
    return {"value": value.get("value"), "enum_id": enums[code], "enum_code": code}


def merge_custom_fields(current: list | None, changes: Any, errors: list, path: str) -> list | None:
    """amoCRM semantics: each field given replaces that field's whole value list, multitext PHONE
    and EMAIL included; `values: null` clears it; fields not given are kept (reference §5.3)."""
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
        code = change.get("field_code") or SYSTEM_CODES.get(change.get("field_id") or 0)
        system = entities.SYSTEM_FIELDS.get(code or "")
        field_id = system[0] if system else change.get("field_id")
        key = by_id.get(field_id) or by_code.get(code)
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
        # the values sent become the field's only values: a PHONE written with one number loses
        # the others (reference §5.3, §13)
        fields[key or (field_id, code)] = {
            "field_id": field_id,
            "field_name": system[1] if system else "Поле",
            "field_code": code,
            "field_type": "multitext" if system else "text",
            "values": [_value(v, system) for v in change["values"] if isinstance(v, dict)],
        }
    return list(fields.values()) or None
