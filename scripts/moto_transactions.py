"""moto's TransactWriteItems backs up a table for its rollback by `copy.deepcopy` of the whole
table, once per *item* that names it (up to 100 times per call). That makes a sync's conditional
puts of new items (services/mirror.py `put_new`: transactions of 100) quadratic in the table's
size, and even one copy per transaction made a 300-lead test suite spend a third of its time
copying. `item_level_rollback` backs up only what a transaction can change: the items its
operations name (each operation touches exactly its own key). A failed transaction puts those
items back as they were, as moto's whole-table swap did; a table whose items cannot be named
up front (an operation without its key, or a table with a stream, whose records a swap would
also roll back) is copied whole, once. Nothing else about moto changes.
Never deployed: used by the moto server of the local stack (atomic_moto.py) and by the tests."""

from __future__ import annotations

import copy
import functools
from typing import Any

from moto.dynamodb import models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_PATCHED = "_item_level_rollback"


def item_level_rollback() -> None:
    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, _PATCHED, False):
        return
    original = backend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backup = _Backup(self.tables, transact_items)
        models.copy = _CopyModule(backup.deepcopy)  # type: ignore[assignment]
        try:
            return original(self, transact_items)
        except BaseException:
            backup.restore()
            raise
        finally:
            models.copy = copy

    setattr(transact_write_items, _PATCHED, True)
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class _Backup:
    """What one transaction may change, taken before it runs: each named item as it was (None:
    absent), or, for a table whose items cannot be named, the whole table copied once."""

    def __init__(self, tables: dict[str, Table], transact_items: list[dict[str, Any]]) -> None:
        self._tables = tables
        self._items: dict[tuple[str, DynamoType, DynamoType | None], Any] = {}
        self._whole: dict[str, Table] = {}
        for entry in transact_items:
            operation = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            if not isinstance(operation, dict):
                continue  # moto refuses it; nothing is written
            name = operation.get("TableName")
            if name not in tables or name in self._whole:
                continue
            table = tables[name]
            key = _key(table, operation)
            if key is None or table.stream_shard is not None:
                self._whole[name] = copy.deepcopy(table)
            elif (name, *key) not in self._items:
                self._items[(name, *key)] = copy.deepcopy(table.get_item(*key))

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        """moto's own backup: a table stands for itself (restore() undoes the items), anything
        else is copied as before."""
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def restore(self) -> None:
        self._tables.update(self._whole)
        for (name, hash_key, range_key), item in self._items.items():
            if name not in self._whole:
                _put_back(self._tables[name].items, hash_key, range_key, item)


def _put_back(held: dict, hash_key: DynamoType, range_key: DynamoType | None, item: Any) -> None:
    """Make the table hold `item` (None: nothing) at this key, as moto's `Table.items` does."""
    if range_key is None:
        if item is None:
            held.pop(hash_key, None)
        else:
            held[hash_key] = item
    elif item is not None:
        held.setdefault(hash_key, {})[range_key] = item
    elif hash_key in held:
        held[hash_key].pop(range_key, None)
        if not held[hash_key]:
            del held[hash_key]


def _key(table: Table, operation: dict[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
    """The (hash, range) key an operation writes, as the table holds it; None if it names none."""
    attributes: Any = operation.get("Item") if "Item" in operation else operation.get("Key")
    try:
        hash_key = DynamoType(attributes[table.hash_key_attr])
        range_key = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
    except (KeyError, TypeError, AttributeError):
        return None
    return hash_key, range_key


class _CopyModule:
    """`copy` as moto's module sees it during one transaction."""

    def __init__(self, deepcopy: Any) -> None:
        self.deepcopy = deepcopy

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)
