"""Paging of list responses with `limit` and an opaque `cursor` (SPEC §3: Lambda's 6 MB limit)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.services.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_LENGTH = 4096  # a real one holds a few keys: far less
INVALID = "cursor is invalid: send back the nextCursor of the previous page"
_KEY_NUMBER = re.compile(r"-?[0-9]{1,38}")  # our numeric keys are integers (DynamoDB: 38 digits)
_KEY_STRING_MAX = 1024  # DynamoDB: a partition key is at most 2048 bytes, a sort key 1024


def encode_cursor(position: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict:
    if not cursor:
        return {}
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidInput(INVALID)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(INVALID) from None
    if not isinstance(position, dict):
        raise InvalidInput(INVALID)
    return position


def decode_start_key(cursor: str | None, schema: dict[str, str]) -> dict | None:
    """The DynamoDB start key a `page_of_scan` cursor carries, checked against `schema` (key
    attribute name -> "S" or "N"): exactly those attributes, each a well-formed value of its
    type. A forged key would otherwise reach DynamoDB and come back a ValidationException (500)."""
    position = decode_cursor(cursor)
    if not position:
        return None
    key = position.get("k")
    if set(position) != {"k"} or not isinstance(key, dict) or set(key) != set(schema):
        raise InvalidInput(INVALID)
    for name, kind in schema.items():
        if not _is_key_value(key[name], kind):
            raise InvalidInput(INVALID)
    return key


def _is_key_value(value: Any, kind: str) -> bool:
    if not isinstance(value, dict) or list(value) != [kind] or not isinstance(value[kind], str):
        return False
    text = value[kind]
    if kind == "N":
        return text.isascii() and _KEY_NUMBER.fullmatch(text) is not None
    return 0 < len(text.encode()) <= _KEY_STRING_MAX


def page_of_sorted(items: Iterable[Any], *, limit: int, cursor: str | None, render: Callable[[Any], dict]) -> dict:
    """`{data, count, nextCursor?}` for a small, fully sorted collection (offset cursor)."""
    offset = decode_cursor(cursor).get("offset", 0)
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput(INVALID)
    items = list(items)
    chunk = items[offset : offset + limit]
    result: dict[str, Any] = {"data": [render(item) for item in chunk], "count": len(chunk)}
    if offset + limit < len(items):
        result["nextCursor"] = encode_cursor({"offset": offset + limit})
    return result
