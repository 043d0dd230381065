"""moto's TransactWriteItems backs up a table for its rollback once per *item* that names the
table (`copy.deepcopy` of the whole table, up to 100 times per call), which makes a sync's
conditional puts of new items (services/mirror.py `put_new`: transactions of 100) quadratic in
the table's size: a 1,100-lead test spent 25 s copying. `one_backup_per_table` makes each
transaction copy each table once, exactly what the rollback needs; nothing else changes.
Never deployed: used by the moto server of the local stack (atomic_moto.py) and by the tests."""

from __future__ import annotations

import copy
import functools
from typing import Any

from moto.dynamodb import models
from moto.dynamodb.models.table import Table

_PATCHED = "_one_backup_per_table"


def one_backup_per_table() -> None:
    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, _PATCHED, False):
        return
    original = backend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        copies: dict[int, tuple[Any, Any]] = {}  # id → (the table, its copy): the table pins its id

        def deepcopy_once(value: Any, memo: Any = None) -> Any:
            if not isinstance(value, Table):
                return copy.deepcopy(value, memo)
            if id(value) not in copies:
                copies[id(value)] = (value, copy.deepcopy(value, memo))
            return copies[id(value)][1]

        models.copy = _CopyModule(deepcopy_once)  # type: ignore[assignment]
        try:
            return original(self, transact_items)
        finally:
            models.copy = copy

    setattr(transact_write_items, _PATCHED, True)
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class _CopyModule:
    """`copy` as moto's module sees it during one transaction: deepcopy remembers what it copied."""

    def __init__(self, deepcopy: Any) -> None:
        self.deepcopy = deepcopy

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)
