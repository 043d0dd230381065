"""A create run once per `Idempotency-Key` header (services/idempotency.py keeps the key).

A module of its own, beside web.py: only the routes that create something in amoCRM reach the
idempotency table, and a function's role follows the modules its handlers reach
(scripts/infra_access.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice.app import Chalice

from chalicelib import web
from chalicelib.services import idempotency
from chalicelib.services.checkpoints import Checkpoint


def once(app: Chalice, *, scope: str, body: Any, work: Callable[[Checkpoint], dict]) -> dict:
    """`work` run once per key: a retry after a lost answer gets the first result, or 409 when
    the first attempt's outcome is unknown, never a second entity."""
    return idempotency.run_once(
        scope,
        key=web.request(app).headers.get("idempotency-key"),
        request=body,
        work=work,
        time_left=web.time_left_for_route(app),
    )
