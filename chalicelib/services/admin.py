"""Operator tasks: create tables, report configuration and health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import PynamoDBException

from chalicelib import settings
from chalicelib.amo.api import AmoApi
from chalicelib.models import ALL_MODELS
from chalicelib.services import connection, notifications, pipelines, webhooks


def create_tables() -> list[tuple[str, str]]:
    """Create every missing table (on-demand, with its indexes and TTL); existing ones are kept."""
    results = []
    for model in ALL_MODELS:
        name = model.Meta.table_name
        if model.exists():
            results.append((name, "exists"))
            continue
        model.create_table(wait=True)
        results.append((name, "created"))
    return results


def _table_rows() -> tuple[list[tuple[str, str]], bool]:
    rows, ok = [], True
    for model in ALL_MODELS:
        name = model.Meta.table_name
        try:
            description = model.describe_table()
            rows.append((name, f"{description.get('TableStatus', '?')}, ~{description.get('ItemCount', 0)} items"))
        except PynamoDBException as error:
            ok = False
            missing = "not found" in str(error).lower() or "ResourceNotFound" in str(error)
            rows.append((name, "missing (run create-tables)" if missing else f"error: {error}"))
        except BotoCoreError as error:
            return [("endpoint", f"unreachable: {error}")], False
    return rows, ok


def status(amo: Callable[[], AmoApi]) -> dict[str, Any]:
    """Configuration, tables, unmapped stages and the amoCRM connection; `amo` builds the API (it
    may fail on a configuration problem, which is then reported like any other)."""
    config = {
        "AMO_BASE_URL": _safe(settings.amo_base_url),
        "AWS endpoint": settings.aws_endpoint_url() or "AWS default",
        "TABLE_PREFIX": settings.table_prefix(),
        "dev endpoints": "enabled" if settings.dev_endpoints_enabled() else "disabled",
        "webhook secret": "set" if settings.amo_webhook_secret() else "not set",
    }
    tables, tables_ok = _table_rows()
    mapping = pipelines.mapping_status() if tables_ok else None
    if tables_ok:
        try:
            link = connection.get_connection_status(amo())
            if link.get("connected"):
                link.update(webhooks.subscription_status(amo()))
        except settings.ConfigError as error:
            link = {"connected": False, "error": str(error)}
        link.update(notifications.dead_letters())
    else:
        link = {"connected": False}
    return {
        "config": config,
        "config_problems": settings.validate_all(),
        "tables": tables,
        "tables_ok": tables_ok,
        "connection": link,
        "mapping": mapping,
    }


def _safe(read) -> str:
    try:
        return read() or "(not set)"
    except settings.ConfigError as error:
        return f"invalid: {error}"
