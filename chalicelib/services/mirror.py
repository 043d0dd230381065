"""Writing mirrored amoCRM entities: changed-only upserts, and scan paging for big tables.

Upserts read the stored items first (BatchGetItem, 100 keys a call) and write only what
changed, so a second sync of unchanged data writes nothing:
- items not stored yet go in transactions of up to 100, each on condition that it is still not
  stored (`put_new`): the fast path of a first sync, which never overwrites what a webhook
  stored meanwhile; the sync's hot paths hand them over already serialised (`Serializer`),
  because building PynamoDB models costs more CPU than the write;
- changed items are each written on condition that what is stored is not newer (amoCRM's
  `updated_at`): a webhook that landed between the read and the write is never overwritten by
  the older data a sync holds. A lost condition is reported back (`conflicts`), not retried.
- DynamoDB refuses a whole transaction for one item it cannot take (over 400 KB, a number over
  38 digits). Such a transaction is written again item by item; the items refused go to `errors` and
  the rest of the sync carries on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar

from botocore.exceptions import ParamValidationError
from pynamodb.attributes import Attribute, NumberAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import AttributeNullError, PynamoDBException
from pynamodb.expressions.condition import Condition

from chalicelib.amo.entities import MalformedEntity
from chalicelib.locking import error_code, error_message, item_reasons, wrote
from chalicelib.models import BaseModel, utc_now
from chalicelib.services.errors import InvalidInput
from chalicelib.services.paging import INVALID, decode_start_key, encode_cursor

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

BATCH_GET_SIZE = 100

Item = dict[str, dict[str, Any]]  # DynamoDB attribute values, as `Model.serialize` gives them


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


def hash_key_name(model: type[BaseModel]) -> str:
    """The name of the model's hash key; the helpers here serve only models that have one."""
    name = model._hash_keyname
    if name is None:
        raise TypeError(f"{model.__name__} has no hash key")
    return name


def batch_get(model: type[M], keys: Iterable[Any]) -> dict[Any, M]:
    """Stored items by hash key (models with a hash key only)."""
    return {key: model.from_raw_data(item) for key, item in batch_get_items(model, keys).items()}


def batch_get_items(model: type[BaseModel], keys: Iterable[Any]) -> dict[Any, Item]:
    """Stored items by hash key as DynamoDB holds them (`Item`, what `Serializer` gives), no
    model built: for callers that compare or pick a few values. Keys not processed by DynamoDB
    are asked again, as PynamoDB's `batch_get` does."""
    keys = list(dict.fromkeys(keys))
    hash_key = model._hash_key_attribute()
    if hash_key is None:
        raise TypeError(f"{model.__name__} has no hash key")
    name, kind = hash_key.attr_name, hash_key.attr_type
    connection, table = model._get_connection(), model.Meta.table_name
    found: dict[Any, Item] = {}
    for start in range(0, len(keys), BATCH_GET_SIZE):
        pending = [{name: {kind: hash_key.serialize(key)}} for key in keys[start : start + BATCH_GET_SIZE]]
        while pending:
            answer = connection.batch_get_item(pending)  # type: ignore[arg-type]  # keys as its batch_get gives them
            for item in answer.get("Responses", {}).get(table, []):
                found[hash_key.deserialize(item[name][kind])] = item
            pending = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys")
    return found


def same(old: BaseModel, new: BaseModel, fields: Sequence[str]) -> bool:
    """True when writing `new` over `old` would change none of `fields`."""
    return all(getattr(old, f) == getattr(new, f) for f in fields)


def attribute_names(model: type[BaseModel], fields: Sequence[str]) -> list[str]:
    """The names under which DynamoDB holds these attributes of the model."""
    attributes = model.get_attributes()
    return [attributes[f].attr_name for f in fields]


def same_items(stored: Item, new: Item, names: Sequence[str]) -> bool:
    """True when `new` holds exactly the stored values of these attributes (DynamoDB names), so
    that writing it would change none of them. False does not prove a change (a JSON text
    with its keys in another order is the same value): compare models (`same`) to decide."""
    return all(stored.get(name) == new.get(name) for name in names)


def text(item: Item, name: str) -> str | None:
    """A string attribute of an `Item` (None when absent)."""
    value = item.get(name)
    return value.get("S") if value else None


@dataclass
class Upserted(Generic[M]):
    written: list[tuple[M | None, M]] = field(default_factory=list)  # (what was stored, what replaced it)
    conflicts: list[M] = field(default_factory=list)  # stored item changed since it was read: not written
    errors: list[dict] = field(default_factory=list)  # refused by DynamoDB: not written


def refused(error: PynamoDBException) -> bool:
    """True when DynamoDB (or the client, before sending) refuses the item itself: retrying
    cannot help, unlike throttling or a network error."""
    return error_code(error) == "ValidationException" or isinstance(error.cause, ParamValidationError)


def refusal(item_id: Any, error: PynamoDBException) -> dict:
    reason = error_message(error) or str(error.cause or error)
    return {"id": item_id, "message": f"not stored, DynamoDB refused it: {reason[:200]}"}


def upsert_changed(
    model: type[M],
    *,
    items: list[M],
    fields: Sequence[str],
    version_field: str = "amo_updated_at",
    stored: dict[Any, M] | None = None,
    guard: Callable[[M], Condition] | None = None,
    item_id: Callable[[M], Any] | None = None,
) -> Upserted[M]:
    """Write the items that are new or changed. `stored` saves the read when the caller has
    already fetched the current items; `guard(stored item)` adds to the condition of a changed
    item's write; `item_id` names an item in `errors` (default: its hash key)."""
    hash_name = hash_key_name(model)
    item_id = item_id or (lambda item: getattr(item, hash_name))
    if stored is None:
        stored = batch_get(model, [getattr(i, hash_name) for i in items])
    result: Upserted[M] = Upserted()
    new: list[M] = []
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
        if old is None:
            new.append(item)
            continue
        version = getattr(model, version_field)
        condition = version.does_not_exist()
        if getattr(item, version_field) is not None:
            condition = condition | (version <= getattr(item, version_field))
        try:
            if wrote(partial(item.save, condition=condition & guard(old) if guard else condition)):
                result.written.append((old, item))
            else:
                result.conflicts.append(item)
        except PynamoDBException as error:
            if not refused(error):
                raise
            result.errors.append(refusal(item_id(item), error))
    if new:
        _batch_put(model, chunk=new, result=result, item_id=item_id)
    return result


class Serializer:
    """The attribute values of an item straight from its Python values (keyed by attribute name),
    exactly what `model(**values).serialize()` gives: defaults for the names not given, None
    left out, a missing non-null attribute refused. No model instance is built."""

    def __init__(self, model: type[BaseModel]) -> None:
        self._attributes = [
            (name, attr.attr_name, attr.attr_type, attr.null, _fast_serialize(attr), _default(attr))
            for name, attr in model.get_attributes().items()
        ]

    def __call__(self, values: dict[str, Any]) -> Item:
        item: Item = {}
        for name, attr_name, attr_type, nullable, serialize, default in self._attributes:
            value = values[name] if name in values else (default() if callable(default) else default)
            if value is not None:
                value = serialize(value)
            if value is not None:
                item[attr_name] = {attr_type: value}
            elif not nullable:
                raise AttributeNullError(name)
        return item


def _default(attr: Attribute) -> Any:
    return attr.default_for_new if attr.default_for_new is not None else attr.default


def _fast_serialize(attr: Attribute) -> Callable[[Any], Any]:
    """`attr.serialize`, minus its cost where the result is known to be the same: a str as it is,
    an int's digits (what json.dumps writes), and one datetime (a batch's `now`) formatted once."""
    if type(attr).serialize is Attribute.serialize:
        return lambda value: value
    if isinstance(attr, NumberAttribute):
        return lambda value: str(value) if type(value) is int else attr.serialize(value)
    if isinstance(attr, UTCDateTimeAttribute):
        last: list[tuple[datetime | None, str]] = [(None, "")]  # one slot, replaced whole: thread-safe

        def serialize(value: datetime) -> str:
            seen, text = last[0]
            if seen is not value:
                text = attr.serialize(value)
                last[0] = (value, text)
            return text

        return serialize
    return attr.serialize


@dataclass
class NewItems:
    """What became of items written as new: `taken` ids were stored by someone else meanwhile
    (not written: the caller reads them and writes on condition), `errors` DynamoDB refused."""

    taken: list[Any] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def put_new(model: type[BaseModel], items: list[tuple[Any, Item]]) -> NewItems:
    """Write items that were not stored when the caller looked, each given as (its id, its
    serialised attributes), each on condition that it still is not: a webhook that stored the
    same lead between the sync's read and this write keeps what it wrote.

    BatchWriteItem takes no condition, so the items go in transactions of up to 100 (one call
    per 100 items, the batch path's 4). A transaction cancelled only by its conditions or by
    items DynamoDB refuses is sent again without them; one refused as a whole (an item over
    400 KB) is written item by item to find the culprit."""
    result = NewItems()
    chunk: list[tuple[Any, Item]] = []
    size = 0
    for item_id, item in items:
        item_bytes = len(repr(item))  # an estimate above DynamoDB's count: JSON quoting included
        if chunk and (len(chunk) == TRANSACTION_ITEMS or size + item_bytes > TRANSACTION_BYTES):
            _put_absent(model, chunk, result)
            chunk, size = [], 0
        chunk.append((item_id, item))
        size += item_bytes
    if chunk:
        _put_absent(model, chunk, result)
    return result


TRANSACTION_ITEMS = 100  # DynamoDB's limit per TransactWriteItems
TRANSACTION_BYTES = 3_000_000  # of DynamoDB's 4 MB per transaction


def _put_absent(model: type[BaseModel], chunk: list[tuple[Any, Item]], result: NewItems) -> None:
    connection = model._get_connection().connection
    while chunk:
        try:
            connection.transact_write_items([], [], [_absent_put(model, item) for _, item in chunk], [])
            return
        except PynamoDBException as error:
            cancelled = error
            reasons = item_reasons(error)
            if len(reasons) != len(chunk) or not set(reasons) <= {None, *ITEM_REASONS}:
                if not refused(error):
                    raise  # throttled, a concurrent transaction, no answer: the caller's retry
                _put_one_by_one(model, chunk, result)
                return
        kept = []
        for (item_id, item), reason in zip(chunk, reasons, strict=True):
            if reason == "ConditionalCheckFailed":
                result.taken.append(item_id)
            elif reason == "ValidationError":
                result.errors.append(refusal(item_id, cancelled))
            else:
                kept.append((item_id, item))
        chunk = kept


ITEM_REASONS = frozenset({"ConditionalCheckFailed", "ValidationError"})


def _absent_put(model: type[BaseModel], item: Item) -> dict:
    key = hash_key_name(model)
    return {
        "TableName": model.Meta.table_name,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(#key)",
        "ExpressionAttributeNames": {"#key": key},
    }


def _put_one_by_one(model: type[BaseModel], chunk: list[tuple[Any, Item]], result: NewItems) -> None:
    connection = model._get_connection()
    hash_key = model._hash_key_attribute()
    for item_id, item in chunk:
        attributes = dict(item)
        try:
            connection.put_item(
                attributes.pop(hash_key.attr_name)[hash_key.attr_type],
                attributes=attributes,
                condition=hash_key.does_not_exist(),
            )
        except PynamoDBException as error:
            if error_code(error) == "ConditionalCheckFailedException":
                result.taken.append(item_id)
            elif refused(error):
                result.errors.append(refusal(item_id, error))
            else:
                raise


def _batch_put(model: type[M], *, chunk: list[M], result: Upserted[M], item_id: Callable[[M], Any]) -> None:
    by_id = {item_id(item): item for item in chunk}
    written = put_new(model, [(key, item.serialize()) for key, item in by_id.items()])
    taken = set(written.taken) | {error["id"] for error in written.errors}
    result.conflicts.extend(by_id[key] for key in written.taken)
    result.errors.extend(written.errors)
    result.written.extend((None, item) for key, item in by_id.items() if key not in taken)


def key_schema(model: type[BaseModel], index: Any = None) -> dict[str, str]:
    """The attributes (name -> "S"/"N") of a start key for a scan of `model`, or a query of one
    of its `index`es (whose start key also carries the table's key)."""
    attributes = list(model.get_attributes().values())
    if index is not None:
        attributes += list(index.Meta.attributes.values())
    return {a.attr_name: a.attr_type for a in attributes if a.is_hash_key or a.is_range_key}


def page_of_scan(
    run: Callable[[dict | None, int], Any],
    *,
    keys: dict[str, str],
    limit: int,
    cursor: str | None,
    render: Callable[[Any], dict],
) -> dict:
    """`{data, count, nextCursor?}` over a DynamoDB scan/query (cursor = LastEvaluatedKey).

    `run(start_key, limit)` returns a PynamoDB result iterator; `keys` is the start key's
    `key_schema`, which a cursor must match. A filtered scan may return fewer than `limit`
    items per page; `nextCursor` still says whether more remain.
    """
    start = decode_start_key(cursor, keys)
    results = run(start, limit)
    try:
        data = [render(item) for item in results]
    except PynamoDBException as error:  # a well-formed key DynamoDB still refuses (another query's)
        if start is None or error_code(error) != "ValidationException":
            raise
        raise InvalidInput(INVALID) from None
    page: dict[str, Any] = {"data": data, "count": len(data)}
    if results.last_evaluated_key:
        page["nextCursor"] = encode_cursor({"k": results.last_evaluated_key})
    return page
