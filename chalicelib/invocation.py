"""What every invocation does around its handler, whatever triggered it (app.py's "all" middleware).

- The correlation id: a route's is the caller's `X-Request-Id` or API Gateway's request id; a
  queue batch's is the one its records carry (their `correlation_id` message attribute, set by
  whoever queued them) when they agree, else the Lambda request id (each record is then
  handled under its own, see queue_batch.run); a schedule's is the EventBridge event id.
- The cold-start flag and the Lambda request id go on every log line of the invocation; a
  cold start also counts the metric `ColdStart` (dimension function_name), once per container.
- An unhandled error of an event handler is logged as one JSON line with the id, then raised
  (routes never raise: Chalice turns their errors into a 500 and logs them through its app
  logger, which propagates to the same JSON handler).
- The metrics recorded meanwhile are written as one EMF line per dimension set (deployed only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice.app import CloudWatchEvent, Request, SQSEvent

from chalicelib import logs, metrics, settings
from chalicelib.services.queue_batch import Message

log = logging.getLogger(__name__)

_state = {"cold": True}


def correlation_id_of(event: Any) -> str:
    if isinstance(event, Request):
        headers: Any = event.headers or {}
        return logs.clean(headers.get("x-request-id")) or logs.clean((event.context or {}).get("requestId"))
    if isinstance(event, SQSEvent):
        carried = {Message.from_record(record).correlation_id for record in event.to_dict().get("Records") or []}
        return carried.pop() if len(carried) == 1 else ""
    if isinstance(event, CloudWatchEvent):
        return logs.clean(event.event_id)
    return ""


def _lambda_context(event: Any) -> Any:
    return event.lambda_context if isinstance(event, Request) else getattr(event, "context", None)


def around(event: Any, get_response: Callable[[Any], Any]) -> Any:
    context = _lambda_context(event)
    request_id = getattr(context, "aws_request_id", None)
    cold, _state["cold"] = _state["cold"], False
    if cold:
        metrics.count("ColdStart", function_name=getattr(context, "function_name", None) or "local")
    with logs.invocation(correlation_id_of(event) or request_id, cold_start=cold, function_request_id=request_id):
        try:
            return get_response(event)
        except Exception:
            log.exception("unhandled error in %s", getattr(context, "function_name", None) or type(event).__name__)
            raise
        finally:
            metrics.flush(emit=settings.deployed())
