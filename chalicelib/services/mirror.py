"""Writing mirrored amoCRM entities: changed-only batch upserts, and scan paging for big tables.

Upserts read the stored items first (BatchGetItem, 100 keys a call) and write only what
changed (BatchWriteItem, 25 items a call, unprocessed items retried by PynamoDB), so a second
sync of unchanged data writes nothing, and a stored item with a newer amoCRM `updated_at` is
never replaced by an older one.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar

from chalicelib.amo.entities import MalformedEntity
from chalicelib.models import BaseModel, utc_now
from chalicelib.services.paging import decode_cursor, encode_cursor

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

BATCH_GET_SIZE = 100


def item_error(raw: Any, message: str) -> dict:
    """One entry of a sync's `errors`: the amoCRM id (when there is one) and what was wrong."""
    return {"id": raw.get("id") if isinstance(raw, dict) else None, "message": message}


def read_all(raw_items: Iterable[Any], read: Callable[[Any], T]) -> tuple[list[T], list[dict]]:
    """Read every amoCRM object with `read`; the malformed ones become `errors` entries."""
    infos, errors = [], []
    for raw in raw_items:
        try:
            infos.append(read(raw))
        except MalformedEntity as error:
            errors.append(item_error(raw, str(error)))
    return infos, errors


def batch_get(model: type[M], keys: Iterable[Any]) -> dict[Any, M]:
    """Stored items by hash key (models with a hash key only)."""
    keys = list(dict.fromkeys(keys))
    found: dict[Any, M] = {}
    hash_name = model._hash_keyname
    for start in range(0, len(keys), BATCH_GET_SIZE):
        for item in model.batch_get(keys[start:start + BATCH_GET_SIZE]):
            found[getattr(item, hash_name)] = item
    return found


def same(old: BaseModel, new: BaseModel, fields: Sequence[str]) -> bool:
    """True when writing `new` over `old` would change none of `fields`."""
    return all(getattr(old, f) == getattr(new, f) for f in fields)


def upsert_changed(model: type[M], items: list[M], fields: Sequence[str],
                   version_field: str = "amo_updated_at",
                   stored: dict[Any, M] | None = None) -> list[tuple[M | None, M]]:
    """Write the items that are new or changed; returns (previous, written) pairs.
    `stored` saves the read when the caller has already fetched the current items."""
    hash_name = model._hash_keyname
    if stored is None:
        stored = batch_get(model, [getattr(i, hash_name) for i in items])
    written: list[tuple[M | None, M]] = []
    now = utc_now()
    for item in items:
        old = stored.get(getattr(item, hash_name))
        if old is not None:
            if (getattr(old, version_field) or 0) > (getattr(item, version_field) or 0):
                continue  # amoCRM sent older data than we have
            if same(old, item, fields):
                continue
        item.created_at = old.created_at if old is not None and old.created_at else now
        item.updated_at = now
        written.append((old, item))
    if written:
        with model.batch_write() as batch:
            for _, item in written:
                batch.save(item)
    return written


def page_of_scan(run: Callable[[dict | None, int], Any], limit: int, cursor: str | None,
                 render: Callable[[Any], dict]) -> dict:
    """`{data, count, nextCursor?}` over a DynamoDB scan/query (cursor = LastEvaluatedKey).

    `run(start_key, limit)` returns a PynamoDB result iterator. A filtered scan may return fewer
    than `limit` items per page; `nextCursor` still says whether more remain.
    """
    start = decode_cursor(cursor).get("k")
    results = run(start, limit)
    data = [render(item) for item in results]
    page: dict[str, Any] = {"data": data, "count": len(data)}
    if results.last_evaluated_key:
        page["nextCursor"] = encode_cursor({"k": results.last_evaluated_key})
    return page
