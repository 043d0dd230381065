"""Paging of list responses with `limit` and an opaque `cursor` (SPEC §3: Lambda's 6 MB limit)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.services.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(position: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict:
    if not cursor:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is invalid: send back the nextCursor of the previous page") from None
    if not isinstance(position, dict):
        raise InvalidInput("cursor is invalid: send back the nextCursor of the previous page")
    return position


def page_of_sorted(items: Iterable[Any], *, limit: int, cursor: str | None, render: Callable[[Any], dict]) -> dict:
    """`{data, count, nextCursor?}` for a small, fully sorted collection (offset cursor)."""
    offset = decode_cursor(cursor).get("offset", 0)
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("cursor is invalid: send back the nextCursor of the previous page")
    items = list(items)
    chunk = items[offset : offset + limit]
    result: dict[str, Any] = {"data": [render(item) for item in chunk], "count": len(chunk)}
    if offset + limit < len(items):
        result["nextCursor"] = encode_cursor({"offset": offset + limit})
    return result
