"""The HTTP edge's shared pieces: API-key guard, error mapping, small response helpers.

Services raise ServiceError / AmoError / ConfigError; `maps_errors` turns each into one
Chalice error with a message safe for the caller, and DynamoDB throttled, busy or unreachable
into a 503 with Retry-After. Anything unexpected stays a generic 500 (Chalice logs the traceback; `debug` is
off, so the caller never sees it).
"""

from __future__ import annotations

import functools
import hmac
import html
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chalice import (
    BadRequestError,
    ChaliceViewError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Response,
    TooManyRequestsError,
    UnauthorizedError,
)
from chalice.app import Chalice, Request
from pynamodb.exceptions import PynamoDBException

from chalicelib import schemas, settings
from chalicelib.amo.errors import (
    AmoBlocked,
    AmoError,
    AmoNotFound,
    AmoPaymentRequired,
    AmoRateLimited,
    AmoUnavailable,
    AmoValidationError,
)
from chalicelib.locking import error_code, is_busy
from chalicelib.memo import memoize
from chalicelib.services import account_payment
from chalicelib.services.errors import (
    AmbiguousGuest,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    Unauthenticated,
)
from chalicelib.services.sync import SyncRunning

log = logging.getLogger(__name__)

API_PREFIX = "/integrations/amo-crm"
PUBLIC_ROUTES = frozenset({f"{API_PREFIX}/callback", f"{API_PREFIX}/webhook"})
DEV_ROUTES = frozenset({f"{API_PREFIX}/set-tokens", f"{API_PREFIX}/test-lead"})


class BadGatewayError(ChaliceViewError):
    STATUS_CODE = 502


class ServiceUnavailableError(ChaliceViewError):
    STATUS_CODE = 503


class PaymentRequiredError(ChaliceViewError):
    """amoCRM's account is not paid: amoCRM refuses every API call until it is (reference §3.5)."""

    STATUS_CODE = 402


# What DynamoDB answers when a table or the account is over its capacity; botocore has already
# retried by then, so the caller is asked to come back rather than shown a 500.
RETRY_AFTER_SECONDS = 2


def _error_response(status: int, *, code: str, message: str, headers: dict | None = None, **extra: Any) -> Response:
    return Response(body={"Code": code, "Message": message, **extra}, status_code=status, headers=headers)


def api_key_matches(presented: str | None) -> bool:
    """Constant-time comparison with MAIN_BACKEND_API_KEY."""
    expected = settings.main_backend_api_key()
    return hmac.compare_digest((presented or "").encode(), expected.encode())


def guard(resource_path: str, headers: Any) -> Response | None:
    """The response that stops a request before its view, or None to let it through.

    Dev-only routes answer 404 unless ENABLE_DEV_ENDPOINTS=true; every route except the
    callback and the webhook needs X-API-Key.
    """
    if resource_path in DEV_ROUTES and not settings.dev_endpoints_enabled():
        return _error_response(404, code="NotFoundError", message="Not found")
    if resource_path in PUBLIC_ROUTES:
        return None
    try:
        if api_key_matches(headers.get("x-api-key")):
            return None
    except settings.ConfigError as error:
        log.error("refusing protected request: %s", error)
        return _error_response(503, code="ServiceUnavailableError", message=f"service is not configured: {error}")
    return _error_response(401, code="UnauthorizedError", message="missing or invalid X-API-Key")


def _translate(error: Exception) -> ChaliceViewError:
    if isinstance(error, InvalidInput):
        return BadRequestError(str(error))
    if isinstance(error, Unauthenticated):
        return UnauthorizedError(str(error))
    if isinstance(error, NotFound):
        return NotFoundError(str(error))
    if isinstance(error, Forbidden):
        return ForbiddenError(str(error))
    if isinstance(error, Conflict):
        return ConflictError(str(error))
    if isinstance(error, settings.ConfigError):
        return ServiceUnavailableError(f"service is not configured: {error}")
    if isinstance(error, AmoValidationError):  # the message carries amoCRM's reasons (amo/problems.py)
        return BadRequestError(str(error))
    if isinstance(error, AmoNotFound):
        return NotFoundError(str(error))
    if isinstance(error, AmoPaymentRequired):
        return PaymentRequiredError(
            'the amoCRM account is not paid (amoCRM answered 402 "Аккаунт не оплачен"): amoCRM refuses '
            "its API until someone pays for the account; GET test shows when it answers again"
        )
    if isinstance(error, AmoRateLimited):
        return TooManyRequestsError(str(error))
    if isinstance(error, AmoBlocked):
        return ServiceUnavailableError(str(error))
    if isinstance(error, AmoUnavailable) and error.outcome_unknown:
        return BadGatewayError(
            f"{error}; the outcome is unknown: retry with the same Idempotency-Key "
            "(or check amoCRM), never with a new one"
        )
    return BadGatewayError(str(error))


def _note_unpaid(where: str) -> None:
    """Remember the unpaid account (status, the schedule); the caller gets its 402 either way."""
    try:
        account_payment.record_unpaid(where)
    except PynamoDBException as error:
        log.warning("could not record the unpaid account: %s", type(error).__name__)


def maps_errors(view: Callable) -> Callable:
    """Decorator for views: domain and amoCRM errors become the matching HTTP error."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except SyncRunning as error:  # 409 that names the running job, so the caller can follow it
            return _error_response(409, code="ConflictError", message=str(error), jobId=error.job_id)
        except AmbiguousGuest as error:  # 409 that lists the candidates, so the caller can name one
            return _error_response(409, code="ConflictError", message=str(error), amoContactIds=error.contact_ids)
        except (ServiceError, AmoError, settings.ConfigError) as error:
            if not isinstance(error, (InvalidInput, NotFound)):
                log.warning("%s %s: %s", view.__name__, type(error).__name__, error)
            if isinstance(error, AmoPaymentRequired):
                _note_unpaid(view.__name__)
            raise _translate(error) from None
        except RecursionError:
            # Only input nested deeper than the stack gets here: Chalice's json_body parses the
            # body before any of our checks can see it (validation.body_object bounds the rest).
            log.warning("%s: input nested too deeply", view.__name__, exc_info=True)
            raise BadRequestError(f"request body is nested too deeply (at most {schemas.MAX_DEPTH} levels)") from None
        except PynamoDBException as error:
            if not is_busy(error):
                raise
            log.warning(
                "%s: DynamoDB busy or unreachable (%s)", view.__name__, error_code(error) or type(error.cause).__name__
            )
            return _error_response(
                503,
                code="ServiceUnavailableError",
                message="the database is busy; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )

    return wrapper


def request(app: Chalice) -> Request:
    """The request the running route handler answers. Chalice types `current_request` as
    Optional because it is None outside a request; inside a route it is always set."""
    current = app.current_request
    if current is None:
        raise RuntimeError("no current request: only a route handler may ask for it")
    return current


def query(request: Request) -> Mapping[str, str]:
    """Query parameters; Chalice gives None (not {}) when there are none."""
    return request.query_params or {}


def raw_body(request: Request) -> bytes:
    """The body as bytes: Chalice types `raw_body` as str | bytes, though it always encodes it."""
    body = request.raw_body
    return body.encode() if isinstance(body, str) else body


API_GATEWAY_BUDGET_SECONDS = 25.0  # API Gateway answers 504 after 29 s


def time_left_for_route(app: Any) -> Callable[[], float]:
    """Seconds left before an HTTP request must have answered (API Gateway's limit, or the
    Lambda's own if that comes first); long syncs hand over to the queue before then."""
    deadline = time.monotonic() + API_GATEWAY_BUDGET_SECONDS
    context = getattr(app, "lambda_context", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)

    def time_left() -> float:
        left = deadline - time.monotonic()
        return min(left, remaining() / 1000.0) if callable(remaining) else left

    return time_left


def time_left_for_event(context: Any) -> Callable[[], float] | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: remaining() / 1000.0) if callable(remaining) else None


def own_url(request: Request, path_suffix: str) -> str:
    """This API's URL for a sibling route, as the caller reached it (stage prefix included)."""
    headers = request.headers
    scheme = headers.get("x-forwarded-proto") or "http"
    path = request.context.get("path") or ""
    base = path[: path.rfind(API_PREFIX)] if API_PREFIX in path else ""
    return f"{scheme}://{headers.get('host')}{base}{API_PREFIX}/{path_suffix}"


_OPENAPI = Path(__file__).with_name("openapi.json")


@memoize()
def openapi_document() -> dict:
    """The OpenAPI description (chalicelib/openapi.json, written by scripts/build_openapi.py)."""
    return json.loads(_OPENAPI.read_text())


def optional_json(request: Request) -> Any:
    """The JSON body, or {} when the request has none (a bare `POST` with no body)."""
    if not request.raw_body:
        return {}
    return request.json_body


def confirmation_page(request: Request, payload: dict) -> Response:
    """The callback's answer: a short HTML page for a browser, JSON for everyone else."""
    if "text/html" not in (request.headers.get("accept") or ""):
        return Response(body=payload)
    text = html.escape(payload.get("message", ""))
    account = html.escape(str(payload.get("domain") or payload.get("accountId") or ""))
    page = (
        f"<!doctype html><meta charset=utf-8><title>amoCRM</title>"
        f"<h1>{text}</h1><p>{account}</p><p>You can close this window.</p>"
    )
    return Response(body=page, headers={"Content-Type": "text/html; charset=utf-8"})
