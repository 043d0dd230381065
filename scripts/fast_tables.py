"""Benchmark stand-in for DynamoDB's big tables: BatchWriteItem and BatchGetItem on the named
tables answered from a plain in-memory store, in front of moto (`atomic_moto.py --fast-tables`).
Never deployed, never used by `make run` or the tests of the service.

Why: a first full sync of 50,000 leads writes them and their contacts in about 4,500 batch
calls, and one moto process (all Python, one core at most) cannot serve them at DynamoDB's pace;
the benchmark then measures the emulator. What a first sync does on those tables is only
BatchGetItem (is it stored yet?) and conditional Puts in transactions (store the new ones), and
all are simple enough to answer faithfully from a dict.

What it implements, per fast table:
- BatchWriteItem with PutRequests: each item stored as sent (DynamoDB JSON), replacing the item
  with the same key. DynamoDB's refusals that a sync relies on are kept (ValidationException):
  more than 25 requests, two requests for one key, an item without its key attributes or with a
  key of the wrong type, an item over 400 KB (size estimated as DynamoDB counts it).
  UnprocessedItems is always empty.
- TransactWriteItems of Puts on condition that the item is not stored yet (how a sync writes
  the items it believes new): all stored, or none and TransactionCanceledException with one
  reason per item; more than 100 items, two for one key, or an oversized item refused.
- BatchGetItem: the stored items for the keys asked (ConsistentRead accepted: the store is
  always consistent); more than 100 keys, duplicate keys, or keys that are not exactly the
  table's key refused as DynamoDB does. UnprocessedKeys is always empty.
- CreateTable and DeleteTable are passed to moto and also start or drop the table's store
  (the key schema comes from CreateTable); DescribeTable, UpdateTable and the TTL settings are
  passed to moto, which keeps the table's definition (its ItemCount stays 0).
Neither answer carries ConsumedCapacity: PynamoDB asks for it on every call (TOTAL) and only
logs it at debug level.
What it does not: conditions, expressions, projections, DeleteRequests, ReturnItemCollectionMetrics,
secondary indexes, capacity or throttling, item sizes exact to the byte, numbers' 38 digits.
Any other operation that names a fast table, any of the above asked for, or a batch that mixes
fast tables with moto's answers HTTP 400 (`StandInUnsupported`) and is counted in `refused`
(GET /_fast_tables/), so a code change that needs more fails the benchmark instead of quietly
measuring something else. Every other request goes to moto untouched.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

JSON_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "DynamoDB_20120810."
STATS_PATH = "/_fast_tables/"
MAX_BATCH_WRITE = 25
MAX_BATCH_GET = 100
MAX_TRANSACTION = 100
ANSWERS_DYNAMODB_GIVES = {"ValidationException", "TransactionCanceledException"}  # not counted as refused
MAX_ITEM_BYTES = 400 * 1024
PASSED_TO_MOTO = {"DescribeTable", "UpdateTable", "DescribeTimeToLive", "UpdateTimeToLive"}
PARTIQL = {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}

Start = Callable[..., Any]
Item = dict[str, dict[str, Any]]


class Refused(Exception):
    """Answered as a DynamoDB error: HTTP 400 with `__type` ending in `kind`."""

    def __init__(self, kind: str, message: str, extra: dict | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.extra = extra or {}


def invalid(message: str) -> Refused:
    """What DynamoDB itself would refuse (a sync treats it as the item's error)."""
    return Refused("ValidationException", message)


def unsupported(message: str) -> Refused:
    """What the stand-in does not do: a code name no caller handles, so the sync fails."""
    return Refused("StandInUnsupported", f"{message} (fast DynamoDB stand-in, scripts/fast_tables.py)")


class Table:
    """One fast table: items as sent, by their key (numbers compared as numbers, as DynamoDB does)."""

    def __init__(self, name: str, key_schema: list[dict], attributes: list[dict]) -> None:
        types = {a["AttributeName"]: a["AttributeType"] for a in attributes}
        self.name = name
        self.key = [(k["AttributeName"], types[k["AttributeName"]]) for k in key_schema]  # hash, then range
        self.items: dict[tuple, Item] = {}

    def key_of(self, attributes: Item, what: str) -> tuple:
        values = []
        for name, kind in self.key:
            value = attributes.get(name)
            if not isinstance(value, dict) or list(value) != [kind]:
                raise invalid(f"One or more parameter values were invalid: {what} lacks key {name} of type {kind}")
            values.append(Decimal(value[kind]) if kind == "N" else value[kind])
        return tuple(values)


class FastTables:
    """The fast tables of one server (names given in full, prefix included) and what they served."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = set(names)
        self.tables: dict[str, Table] = {}
        self.lock = threading.Lock()
        self.operations: dict[str, int] = {}
        self.refused: list[str] = []

    # -- the WSGI wrapper -------------------------------------------------------------------------

    def wrap(self, app: Callable[[dict, Start], Iterable[bytes]]) -> Callable[[dict, Start], Iterable[bytes]]:
        def call(environ: dict, start_response: Start) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == STATS_PATH:
                return _answer(start_response, "200 OK", self.stats(), "application/json")
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if not target.startswith(TARGET_PREFIX):
                return app(environ, start_response)
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again when the request is its
            if not any(name.encode() in body for name in self.names):
                return app(environ, start_response)
            operation = target.removeprefix(TARGET_PREFIX)
            try:
                answer = self.handle(operation, json.loads(body))
            except Refused as error:
                if error.kind not in ANSWERS_DYNAMODB_GIVES:
                    with self.lock:
                        self.refused.append(f"{operation}: {error}")
                error_body = {
                    "__type": f"com.amazonaws.dynamodb.v20120810#{error.kind}",
                    "message": str(error),
                    **error.extra,
                }
                return _answer(start_response, "400 Bad Request", error_body)
            if answer is None:
                return app(environ, start_response)
            return _answer(start_response, "200 OK", answer)

        return call

    def stats(self) -> dict:
        with self.lock:
            return {
                "items": {name: len(table.items) for name, table in self.tables.items()},
                "operations": dict(self.operations),
                "refused": list(self.refused),
            }

    # -- operations -------------------------------------------------------------------------------

    def handle(self, operation: str, request: dict) -> dict | None:
        """The answer to a request that names a fast table, or None when moto answers it."""
        touched = self._fast_tables_in(operation, request)
        if not touched:
            return None
        with self.lock:
            self.operations[operation] = self.operations.get(operation, 0) + 1
        if operation == "BatchWriteItem":
            return self.batch_write(request)
        if operation == "BatchGetItem":
            return self.batch_get(request)
        if operation == "TransactWriteItems":
            return self.transact_put_absent(request)
        if operation == "CreateTable":
            with self.lock:
                self.tables[request["TableName"]] = Table(
                    request["TableName"], request["KeySchema"], request["AttributeDefinitions"]
                )
            return None
        if operation == "DeleteTable":
            with self.lock:
                self.tables.pop(request["TableName"], None)
            return None
        if operation in PASSED_TO_MOTO:
            return None
        raise unsupported(f"{operation} on {', '.join(sorted(touched))} is not implemented")

    def _fast_tables_in(self, operation: str, request: dict) -> set[str]:
        if operation in PARTIQL:  # the tables are named inside the statements
            text = json.dumps(request)
            return {name for name in self.names if name in text}
        names: set[str | None] = {request.get("TableName"), *request.get("RequestItems", {})}
        for action in request.get("TransactItems", []):
            names.update(part.get("TableName") for part in action.values())
        return self.names.intersection(names)

    def _only_fast(self, operation: str, request: dict) -> list[tuple[Table, Any]]:
        """(table, what is asked of it) for each table of a batch, all of them fast ones."""
        slow = set(request["RequestItems"]) - self.names
        if slow:
            raise unsupported(f"{operation} mixing fast tables with moto's ({', '.join(sorted(slow))})")
        if request.get("ReturnItemCollectionMetrics", "NONE") != "NONE":
            raise unsupported(f"{operation} with ReturnItemCollectionMetrics")
        batches = []
        for name, asked in request["RequestItems"].items():
            table = self.tables.get(name)
            if table is None:
                raise Refused("ResourceNotFoundException", f"Requested resource not found: Table: {name} not found")
            batches.append((table, asked))
        return batches

    def batch_write(self, request: dict) -> dict:
        batches = self._only_fast("BatchWriteItem", request)
        if sum(len(requests) for _, requests in batches) > MAX_BATCH_WRITE:
            raise invalid(f"Too many items requested for the BatchWriteItem call (more than {MAX_BATCH_WRITE})")
        staged: list[tuple[Table, tuple, Item]] = []
        for table, requests in batches:
            keys = set()
            for write in requests:
                if list(write) != ["PutRequest"]:
                    raise unsupported(f"BatchWriteItem {'/'.join(write)} on {table.name}")
                item = write["PutRequest"]["Item"]
                key = table.key_of(item, "the item")
                if key in keys:
                    raise invalid("Provided list of item keys contains duplicates")
                if item_size(item) > MAX_ITEM_BYTES:
                    raise invalid("Item size has exceeded the maximum allowed size")
                keys.add(key)
                staged.append((table, key, item))
        with self.lock:  # all checked first: a refused batch stores nothing, as in DynamoDB
            for table, key, item in staged:
                table.items[key] = item
        return {"UnprocessedItems": {}}

    def transact_put_absent(self, request: dict) -> dict:
        """TransactWriteItems of Puts, each on condition that its item is not stored
        (`attribute_not_exists` of the hash key): all stored, or none and a cancellation with
        one reason per item, as DynamoDB answers."""
        actions = request["TransactItems"]
        if len(actions) > MAX_TRANSACTION:
            raise invalid(f"Member must have length less than or equal to {MAX_TRANSACTION}")
        staged: list[tuple[Table, tuple, Item]] = []
        for action in actions:
            put = action.get("Put")
            if list(action) != ["Put"] or set(put) - {
                "TableName",
                "Item",
                "ConditionExpression",
                "ExpressionAttributeNames",
            }:
                raise unsupported(f"TransactWriteItems other than plain Puts ({', '.join(action)})")
            table = self.tables.get(put["TableName"])
            if table is None:
                raise unsupported("TransactWriteItems mixing fast tables with moto's")
            condition = (put.get("ConditionExpression"), put.get("ExpressionAttributeNames"))
            if condition != ("attribute_not_exists(#key)", {"#key": table.key[0][0]}):
                raise unsupported(f"TransactWriteItems condition {condition[0]!r}")
            key = table.key_of(put["Item"], "the item")
            if any(key == other and table is t for t, other, _ in staged):
                raise invalid("Transaction request cannot include multiple operations on one item")
            if item_size(put["Item"]) > MAX_ITEM_BYTES:
                raise invalid("Item size has exceeded the maximum allowed size")
            staged.append((table, key, put["Item"]))
        with self.lock:
            reasons = ["ConditionalCheckFailed" if key in table.items else "None" for table, key, _ in staged]
            if "ConditionalCheckFailed" in reasons:
                raise Refused(
                    "TransactionCanceledException",
                    f"Transaction cancelled, please refer cancellation reasons [{', '.join(reasons)}]",
                    {"CancellationReasons": [{"Code": code} for code in reasons]},
                )
            for table, key, item in staged:
                table.items[key] = item
        return {}

    def batch_get(self, request: dict) -> dict:
        batches = self._only_fast("BatchGetItem", request)
        if sum(len(asked.get("Keys", [])) for _, asked in batches) > MAX_BATCH_GET:
            raise invalid(f"Too many items requested for the BatchGetItem call (more than {MAX_BATCH_GET})")
        responses: dict[str, list[Item]] = {}
        for table, asked in batches:
            extra = set(asked) - {"Keys", "ConsistentRead"}
            if extra:
                raise unsupported(f"BatchGetItem with {', '.join(sorted(extra))} on {table.name}")
            keys = []
            for key_attributes in asked["Keys"]:
                if len(key_attributes) != len(table.key):
                    raise invalid("The provided key element does not match the schema")
                keys.append(table.key_of(key_attributes, "the key"))
            if len(set(keys)) != len(keys):
                raise invalid("Provided list of item keys contains duplicates")
            with self.lock:
                responses[table.name] = [table.items[key] for key in keys if key in table.items]
        return {"Responses": responses, "UnprocessedKeys": {}}


def item_size(item: Item) -> int:
    """An item's size as DynamoDB counts it (attribute names + values), numbers estimated high."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "B":
        return (len(data) * 3) // 4  # base64 on the wire
    if kind == "N":
        return len(data) // 2 + 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: member}) for member in data)
    if kind == "L":
        return 3 + sum(1 + value_size(member) for member in data)
    return 3 + sum(len(name.encode()) + 1 + value_size(member) for name, member in data.items())  # M


def _answer(start_response: Start, status: str, body: dict, content_type: str = JSON_TYPE) -> list[bytes]:
    data = json.dumps(body, separators=(",", ":")).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]
