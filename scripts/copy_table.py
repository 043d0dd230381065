"""Copy every item of one DynamoDB table into another: `python scripts/copy_table.py SOURCE TARGET`.

The way back from a point-in-time restore (docs/operating.md, "Restoring a table"): DynamoDB
restores into a new table, while the stack's functions read `<TablePrefix><suffix>`, so the
restored items are copied into the stage's own table. An item of the target with the same key
is replaced by the source's; items only the target has stay. Both tables must have the same key.
Uses the AWS credentials and region of the shell.
"""

from __future__ import annotations

import argparse
from typing import Any


class CopyError(SystemExit):
    """Stops the copy with a message saying what is wrong."""


def _key(client: Any, table: str) -> list[dict]:
    return sorted(client.describe_table(TableName=table)["Table"]["KeySchema"], key=lambda k: k["KeyType"])


def copy(client: Any, *, source: str, target: str, dry_run: bool = False) -> int:
    """Items copied (or, with `dry_run`, that would be)."""
    if source == target:
        raise CopyError("source and target are the same table")
    if _key(client, source) != _key(client, target):
        raise CopyError(f"{source} and {target} have different keys: not copies of one table")
    copied = 0
    batch: list[dict] = []
    for page in client.get_paginator("scan").paginate(TableName=source, ConsistentRead=True):
        for item in page["Items"]:
            copied += 1
            if not dry_run:
                batch.append({"PutRequest": {"Item": item}})
                if len(batch) == 25:  # BatchWriteItem's limit
                    _write(client, target, batch)
                    batch = []
    if batch:
        _write(client, target, batch)
    return copied


def _write(client: Any, table: str, batch: list[dict]) -> None:
    pending = {table: batch}
    for _ in range(10):
        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
    raise CopyError(f"{table} kept refusing writes (throttled?): run the copy again, it is idempotent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the restored table, e.g. amocrm-prod-leads-restored")
    parser.add_argument("target", help="the stage's table, e.g. amocrm-prod-leads")
    parser.add_argument("--dry-run", action="store_true", help="count the items, write nothing")
    args = parser.parse_args()
    import boto3

    count = copy(boto3.client("dynamodb"), source=args.source, target=args.target, dry_run=args.dry_run)
    print(f"{count} item(s) {'would be ' if args.dry_run else ''}copied from {args.source} to {args.target}")


if __name__ == "__main__":
    main()
