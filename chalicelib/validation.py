"""Input validation at the edge: each helper returns a clean value or raises InvalidInput
naming the offending field."""
from __future__ import annotations

from typing import Any

from chalicelib.services.errors import InvalidInput
from chalicelib.services.paging import DEFAULT_LIMIT, MAX_LIMIT

_MISSING = object()


def body_object(body: Any, what: str = "request body") -> dict:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return body


def string(data: dict, field: str, *, required: bool = True, max_length: int = 2000) -> str | None:
    value = data.get(field, _MISSING)
    if value is _MISSING or value is None or value == "":
        if required:
            raise InvalidInput(f"{field} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string")
    if len(value) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters")
    return value


def integer(data: dict, field: str, *, required: bool = True, minimum: int | None = None,
            default: int | None = None) -> int | None:
    value = data.get(field, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise InvalidInput(f"{field} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{field} must be at least {minimum}")
    return value


def query_int(params: dict | None, name: str, default: int, *, minimum: int = 0,
              maximum: int | None = None) -> int:
    """A non-negative integer query parameter (`?limit=50`); anything else is a 400."""
    raw = (params or {}).get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(f"{name} must be a non-negative integer")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidInput(f"{name} must be {bound}")
    return value


def query_bool(params: dict | None, name: str) -> bool | None:
    raw = (params or {}).get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise InvalidInput(f"{name} must be true or false")
    return raw.lower() == "true"


def path_int(value: str, name: str) -> int:
    """A positive integer path parameter (`/stages/{stageId}`)."""
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        raise InvalidInput(f"{name} must be a positive integer")
    return int(value)


def page_params(params: dict | None) -> tuple[int, str | None]:
    """`limit` (default 100, at most 1000) and `cursor` of a list route."""
    limit = query_int(params, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    return limit, (params or {}).get("cursor") or None


def fraction(data: dict, field: str, default: float) -> float:
    """A number between 0 and 1 (e.g. a confidence threshold)."""
    value = data.get(field)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidInput(f"{field} must be a number between 0 and 1") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInput(f"{field} must be a number between 0 and 1")
    return float(value)


def _ids(data: dict, fields: tuple[str, ...], prefix: str) -> None:
    for name in fields:
        if name in data and data[name] is not None:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{prefix}{name} must be a positive integer")


def lead_data(value: Any, field: str = "leadData", require_name: bool = False) -> dict:
    """A lead as the Main Backend sends it: amoCRM lead fields, checked at the edge."""
    data = body_object(value, field)
    if require_name or "name" in data:
        name = data.get("name")
        if not isinstance(name, str) or (require_name and not name.strip()):
            raise InvalidInput(f"{field}.name must be a non-empty string")
    if "price" in data and data["price"] is not None:
        price = data["price"]
        if isinstance(price, bool) or not isinstance(price, int) or price < 0:
            raise InvalidInput(f"{field}.price must be a non-negative integer")
    _ids(data, ("pipeline_id", "status_id", "responsible_user_id", "loss_reason_id"), f"{field}.")
    if "custom_fields_values" in data and not isinstance(data["custom_fields_values"], (list, type(None))):
        raise InvalidInput(f"{field}.custom_fields_values must be a list")
    if "_embedded" in data and not isinstance(data["_embedded"], dict):
        raise InvalidInput(f"{field}._embedded must be an object")
    return data


def contact_data(value: Any, field: str = "contact", require_name: bool = True) -> dict:
    data = body_object(value, field)
    for name in ("name", "first_name", "last_name", "phone", "email"):
        if name in data and data[name] is not None and not isinstance(data[name], str):
            raise InvalidInput(f"{field}.{name} must be a string")
    if require_name and not any((data.get(n) or "").strip() for n in ("name", "first_name", "last_name")):
        raise InvalidInput(f"{field}.name is required")
    if data.get("email") and "@" not in data["email"]:
        raise InvalidInput(f"{field}.email must be an e-mail address")
    _ids(data, ("responsible_user_id",), f"{field}.")
    return data


def task_data(value: Any) -> dict:
    data = body_object(value)
    string(data, "text", max_length=5000)
    integer(data, "complete_till", minimum=0)
    entity_type = data.get("entity_type")
    if entity_type is not None and entity_type not in ("leads", "contacts", "companies"):
        raise InvalidInput("entity_type must be one of leads, contacts, companies")
    if (data.get("entity_id") is None) != (entity_type is None):
        raise InvalidInput("entity_id and entity_type go together")
    _ids(data, ("entity_id", "task_type_id", "responsible_user_id"), "")
    integer(data, "duration", required=False, minimum=0)
    return data


def entity_type_param(params: dict | None) -> str | None:
    value = (params or {}).get("entity_type")
    if value in (None, ""):
        return None
    if value not in ("leads", "contacts", "companies"):
        raise InvalidInput("entity_type must be one of leads, contacts, companies")
    return value


def task_filters(params: dict | None) -> tuple[bool | None, str | None, int | None]:
    """`is_completed`, `entity_type`, `entity_id` of GET tasks (entity_id needs entity_type)."""
    entity_type = entity_type_param(params)
    entity_id = query_int(params, "entity_id", 0) or None
    if entity_id and not entity_type:
        raise InvalidInput("entity_id needs entity_type")
    return query_bool(params, "is_completed"), entity_type, entity_id
