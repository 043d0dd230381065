"""The moto server (local DynamoDB and SQS), answering one request at a time.

DynamoDB applies each conditional write and each atomic counter update as one step; moto's
threaded server evaluates them without a lock, so two processes could both win a lease or
both be handed the same rate-budget slot. Single-item writes and transactions (where
conditions and counters live) therefore run one at a time; reads, queries and batch writes
run alongside them as before, so a big sync's writes do not queue everything else.

`python -m scripts.atomic_moto -H 127.0.0.1 -p 5055 [--fast-tables leads,contacts]`

`--fast-tables` (benchmarks only) serves the named tables' batch reads and writes from memory
instead (scripts/fast_tables.py says exactly what that does and does not do); the names are
table suffixes, after TABLE_PREFIX (`--table-prefix`, default the environment's, as the
service reads it).
"""

from __future__ import annotations

import argparse
import os
import threading

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from scripts.fast_tables import FastTables
from scripts.moto_transactions import item_level_rollback

ATOMIC = {f"DynamoDB_20120810.{op}" for op in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")}


def serialised(app):
    lock = threading.Lock()

    def call(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET") not in ATOMIC:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5055)
    parser.add_argument("--fast-tables", default="", help="comma-separated table suffixes served from memory")
    parser.add_argument("--table-prefix", default=os.environ.get("TABLE_PREFIX") or "amocrm-")
    args = parser.parse_args()
    item_level_rollback()
    app = serialised(DomainDispatcherApplication(create_backend_app))
    suffixes = [suffix for suffix in args.fast_tables.split(",") if suffix]
    if suffixes:
        app = FastTables(args.table_prefix + suffix for suffix in suffixes).wrap(app)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
