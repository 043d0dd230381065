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
    if not raw.isdigit():
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
    if not value.isdigit() or int(value) <= 0:
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
