"""Reading amoCRM list queries (`filter[...]`, `with`, `order`, `page`/`limit`), writing HAL pages,
and checking the shape of batch bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox import entities
from sandbox.errors import problem

MAX_LIMIT = 250
DEFAULT_LIMIT = 50


def values(query: dict, name: str) -> list[str]:
    """Every value of `name`, `name[]` and `name[0]`, `name[1]`…"""
    found = []
    for key, items in query.items():
        if key == name or key == f"{name}[]" or (key.startswith(f"{name}[") and key[len(name) + 1 : -1].isdigit()):
            found.extend(items)
    return found


def first(query: dict, name: str) -> str | None:
    found = query.get(name)
    return found[0] if found else None


def int_list(query: dict, name: str) -> list[int]:
    result = []
    for value in values(query, name):
        for part in value.split(","):
            if part.strip().isascii() and part.strip().isdigit():
                result.append(int(part))
    return result


def int_param(query: dict, name: str, default: int) -> int:
    value = first(query, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise problem(400, "Bad Request", f"{name} must be an integer") from None


def bounds(query: dict, name: str) -> tuple[int | None, int | None]:
    """`name[from]` and `name[to]` as ints (None when absent or not a number)."""

    def number(value: str | None) -> int | None:
        return int(value) if value and value.isascii() and value.isdigit() else None

    return number(first(query, f"{name}[from]")), number(first(query, f"{name}[to]"))


def as_filtered_by(query: dict, mode: str) -> dict | None:
    """The list query as an account in filter `mode` reads it (Config.filters); None means the
    account answers 204 without looking: a range filter with one bound on a range-only account."""
    if mode == "ignored":
        return {key: found for key, found in query.items() if not key.startswith("filter[")}
    if mode == "range-only":
        for key in query:
            if key.startswith("filter[") and key.endswith(("][from]", "][to]")):
                name = key[: key.rindex("[")]
                if not (first(query, f"{name}[from]") and first(query, f"{name}[to]")):
                    return None
    return query


def in_range(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def with_(query: dict) -> set[str]:
    return {part for value in query.get("with", []) for part in value.split(",") if part}


def ordered(items: list[dict], query: dict) -> list[dict]:
    """`order[updated_at|created_at|id]=asc|desc` (reference §5.1); by id when not asked."""
    for key in ("updated_at", "created_at", "id"):
        direction = first(query, f"order[{key}]")
        if direction:
            if direction not in ("asc", "desc"):
                raise problem(400, "Bad Request", f"order[{key}] must be asc or desc")
            return sorted(items, key=lambda i: (i[key], i["id"]), reverse=direction == "desc")
    return sorted(items, key=lambda i: i["id"])


def page(
    items: list,
    key: str,
    url: str,
    query: dict,
    render: Callable[[Any], dict],
    *,
    max_limit: int = MAX_LIMIT,
    oversized: str = "replace",
) -> tuple[int, Any]:
    """One HAL page of `items` under `_embedded.<key>`; 204 with no body past the end. `url` is
    absolute. A `limit` above `max_limit` is served as 50, no error (`oversized` "replace", what
    amoCRM appears to do, reference §3.3, §13), or refused ("reject")."""
    limit = int_param(query, "limit", DEFAULT_LIMIT)
    number = int_param(query, "page", 1)
    if limit > max_limit and oversized == "replace":
        limit = DEFAULT_LIMIT
    if limit < 1 or limit > max_limit:
        raise problem(400, "Bad Request", f"limit must be between 1 and {max_limit}")
    if number < 1:
        raise problem(400, "Bad Request", "page must be a positive integer")
    chunk = items[(number - 1) * limit : number * limit]
    if not chunk:
        return 204, None
    rendered = [render(i) for i in chunk]
    pairs = [(name, value) for name, found in query.items() for value in found]
    return 200, entities.page(
        key, rendered, url=url, number=number, limit=limit, has_next=number * limit < len(items), query=pairs
    )


def patch_items(items: Any, single_id: int | None) -> list:
    """PATCH /x/{id} takes one object, PATCH /x an array of objects with ids: one list either way."""
    if single_id is not None:
        if not isinstance(items, dict):
            raise problem(400, "Bad Request", "Body must be an object")
        items = [{**items, "id": single_id}]
    return require_list(items)


def require_list(items: Any) -> list:
    if not isinstance(items, list) or not items:
        raise problem(400, "Bad Request", "Request body must be a non-empty JSON array")
    if len(items) > MAX_LIMIT:
        raise problem(400, "Bad Request", f"At most {MAX_LIMIT} items per request")
    return items
