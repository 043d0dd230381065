"""Input validation at the edge: each helper returns a clean value or raises InvalidInput
naming the offending field. The rules are the specs of chalicelib/schemas.py, which the OpenAPI
description is built from too."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal, overload

from chalicelib import schemas
from chalicelib.schemas import MAX_DEPTH, MAX_ID
from chalicelib.services.errors import InvalidInput


def body_object(body: Any, what: str = "request body") -> dict:
    """A parsed JSON body that is an object, at most MAX_DEPTH deep, whose numbers are all
    finite and within ±MAX_ID (whatever part of it a service later reads or stores)."""
    _check_json(body, "" if what == "request body" else what)
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return body


def _check_json(value: Any, name: str) -> None:
    """Walks the value without recursion: a deep body must not exhaust the stack here either."""
    pending: list[tuple[Any, tuple]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, (dict, list)):
            if len(path) >= MAX_DEPTH:
                raise schemas.fail(name, f"is nested too deeply (at most {MAX_DEPTH} levels)")
            pending.extend(
                (child, path + (key,)) for key, child in (item.items() if isinstance(item, dict) else enumerate(item))
            )
        elif (
            isinstance(item, float)
            and not (math.isfinite(item) and abs(item) <= MAX_ID)
            or isinstance(item, int)
            and abs(item) > MAX_ID
        ):
            raise schemas.fail(_dotted(name, path), "must be a finite number no larger than 2^53-1")


def _dotted(name: str, path: tuple) -> str:
    for key in path:
        name = f"{name}[{key}]" if isinstance(key, int) else f"{name}.{key}" if name else key
    return name


# Query parameters as Chalice hands them (a MultiDict, or None when there are none) or a plain dict.
Params = Mapping[str, str] | None


def _param(params: Params, name: str, spec: Any) -> Any:
    raw = (params or {}).get(name)
    return spec.default if raw is None or raw == "" else spec.parse(raw, name)


@overload
def string(data: Mapping, *, field: str, required: Literal[True] = True, max_length: int = 2000) -> str: ...
@overload
def string(data: Mapping, *, field: str, required: bool, max_length: int = 2000) -> str | None: ...
def string(data: Mapping, *, field: str, required: bool = True, max_length: int = 2000) -> str | None:
    """A required string is always there (a missing one is a 400); an optional one may be None."""
    return schemas.take(schemas.Str(max_length), data=data, key=field, required=required)


@overload
def integer(
    data: Mapping, *, field: str, required: Literal[True] = True, minimum: int | None = None, default: int | None = None
) -> int: ...
@overload
def integer(data: Mapping, *, field: str, required: bool, minimum: int | None = None, default: int) -> int: ...
@overload
def integer(
    data: Mapping, *, field: str, required: bool, minimum: int | None = None, default: None = None
) -> int | None: ...
def integer(
    data: Mapping, *, field: str, required: bool = True, minimum: int | None = None, default: int | None = None
) -> int | None:
    value = schemas.take(schemas.Int(-MAX_ID if minimum is None else minimum), data=data, key=field, required=required)
    return default if value is None else value


def query_int(params: Params, *, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """A non-negative integer query parameter (`?limit=50`); anything else is a 400."""
    return _param(params, name, schemas.Int(minimum, MAX_ID if maximum is None else maximum, default))


def query_bool(params: Params, name: str) -> bool | None:
    return _param(params, name, schemas.Bool())


def path_int(value: str, name: str) -> int:
    """A positive integer path parameter (`/stages/{stageId}`)."""
    return schemas.ID.parse(value, name)


def page_params(params: Params) -> tuple[int, str | None]:
    """`limit` (default 100, at most 1000) and `cursor` of a list route."""
    return _param(params, "limit", schemas.PAGE_LIMIT), (params or {}).get("cursor") or None


def callback_params(params: Params) -> tuple[str, str | None, str | None]:
    """`code`, `state` and `referer` of the OAuth callback (a public route: bounded before any
    of them reaches DynamoDB or a log line)."""
    data = params or {}
    code = string(data, field="code")
    state = schemas.take(schemas.OAUTH_STATE, data=data, key="state", required=False)
    referer = schemas.take(schemas.REFERER, data=data, key="referer", required=False)
    return code, state or None, referer or None


def boolean(data: Mapping, field: str, default: bool) -> bool:
    value = data.get(field)
    return default if value is None else schemas.Bool().check(value, field)


def fraction(data: Mapping, field: str, default: float) -> float:
    """A number between 0 and 1 (e.g. a confidence threshold), also written as a decimal string."""
    value = data.get(field)
    return default if value is None or value == "" else schemas.FRACTION.check(value, field)


def lead_data(value: Any, field: str = "leadData", require_name: bool = False) -> dict:
    """A lead as the Main Backend sends it: amoCRM lead fields, checked at the edge."""
    spec = replace(schemas.LEAD_DATA, required=("name",)) if require_name else schemas.LEAD_DATA
    return spec.check(body_object(value, field), field)


def contact_data(value: Any, field: str = "contact", require_name: bool = True) -> dict:
    spec = schemas.CONTACT if require_name else schemas.CONTACT_CHANGES
    return spec.check(body_object(value, field), "" if field == "request body" else field)


def task_data(value: Any) -> dict:
    return schemas.TASK.check(body_object(value), "")


def entity_type_param(params: Params) -> str | None:
    return _param(params, "entity_type", schemas.ENTITY_TYPE)


def task_filters(params: Params) -> tuple[bool | None, str | None, int | None]:
    """`is_completed`, `entity_type`, `entity_id` of GET tasks (entity_id needs entity_type)."""
    entity_type = entity_type_param(params)
    entity_id = _param(params, "entity_id", schemas.ID)
    if entity_id and not entity_type:
        raise InvalidInput("entity_id needs entity_type")
    return query_bool(params, "is_completed"), entity_type, entity_id


def guest_to_erase(value: Any) -> dict:
    """POST guests/erase's body as erase_guest's keywords (which refuses one naming nobody)."""
    body = schemas.GUEST_ERASURE.check(body_object(value), "")
    return {
        "amo_contact_id": body.get("amoContactId"),
        "email": body.get("email"),
        "phone": body.get("phone"),
        "also_in_amo": bool(body.get("alsoInAmo")),
    }
