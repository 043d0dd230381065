"""One JSON line per log event (Powertools' formatter), tagged with the current correlation id.

`configure()` puts one JSON handler on the root logger, at the level LOG_LEVEL (or Lambda's
AWS_LAMBDA_LOG_LEVEL) says, INFO by default; every chalicelib logger, and Chalice's own app
logger (created with `configure_logs=False`), propagate to it. So an unhandled error is one
line too, its traceback a field of it.

The correlation id and the invocation's keys (cold start, request id) live in context
variables: each request, queue record or schedule sets its own (`bound`, `invocation`), and
work handed to another thread keeps them only when it runs in a copy of the submitter's
context (`ThreadPool`, `contextvars.copy_context().run`). Messages are written by our own
code and never carry tokens, keys or secrets.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

T = TypeVar("T")
NO_ID = "-"
MAX_ID_LENGTH = 64

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default=NO_ID)
_invocation: contextvars.ContextVar[tuple[tuple[str, Any], ...]] = contextvars.ContextVar("invocation", default=())


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


def clean(candidate: object) -> str:
    """A correlation id someone handed us (a header, a message attribute), made safe to log."""
    text = "".join(ch for ch in str(candidate or "") if ch.isprintable() and not ch.isspace())
    return text[:MAX_ID_LENGTH]


@contextmanager
def bound(candidate: object) -> Iterator[str]:
    """Log under `candidate` inside the block (under the current id when it is empty)."""
    token = correlation_id.set(clean(candidate) or correlation_id.get())
    try:
        yield correlation_id.get()
    finally:
        correlation_id.reset(token)


@contextmanager
def invocation(candidate: object, **keys: Any) -> Iterator[str]:
    """One Lambda invocation (or local request): its correlation id (a new one when `candidate`
    is empty) and keys every line of it carries (cold_start, function_request_id)."""
    id_token = correlation_id.set(clean(candidate) or new_correlation_id())
    keys_token = _invocation.set(tuple((k, v) for k, v in keys.items() if v is not None))
    try:
        yield correlation_id.get()
    finally:
        _invocation.reset(keys_token)
        correlation_id.reset(id_token)


def current_id() -> str | None:
    """The correlation id to hand on (SQS message attributes, the outbox), None outside any."""
    value = correlation_id.get()
    return None if value == NO_ID else value


class ThreadPool(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in a copy of the submitting thread's context, so
    their log lines keep the correlation id (a plain pool's threads start with an empty one)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class _ContextFilter(logging.Filter):
    """Copies the emitting thread's context onto the record: the formatter adds record extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        for key, value in _invocation.get():
            setattr(record, key, value)
        return True


# Lambda's log-level filter knows TRACE, DEBUG, INFO, WARN, ERROR, FATAL; a line whose level it
# does not know counts as INFO, so Python's WARNING and CRITICAL would vanish under a WARN filter
LAMBDA_LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "FATAL"}


class JsonFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON line: level (as Lambda names it: WARN, FATAL), message, correlation_id,
    timestamp (UTC, RFC 3339), logger name, location, service, xray_trace_id in Lambda, and
    exception (the traceback as one string) and exception_name for errors."""

    def format(self, record: logging.LogRecord) -> str:
        python_name = record.levelname
        record.levelname = LAMBDA_LEVEL_NAMES.get(python_name, python_name)
        try:
            return super().format(record)
        finally:
            record.levelname = python_name

    def __init__(self) -> None:
        super().__init__(
            utc=True,
            use_rfc3339=True,
            serialize_stacktrace=False,
            name="%(name)s",
            service=os.environ.get("POWERTOOLS_SERVICE_NAME") or None,
            log_record_order=["level", "message", "correlation_id", "timestamp"],
        )


class _CurrentStreamHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout / sys.stderr is at the time (tests swap them)."""

    def __init__(self, stream_name: str):
        self._stream_name = stream_name
        super().__init__()

    @property
    def stream(self) -> Any:
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, _value: Any) -> None:
        return None


def level_from_environment(default: int = logging.INFO) -> int:
    """Lambda's log-level control (AWS_LAMBDA_LOG_LEVEL) wins over LOG_LEVEL: they must agree,
    or Lambda drops lines we write."""
    name = (os.environ.get("AWS_LAMBDA_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "").upper()
    name = {"WARN": "WARNING", "FATAL": "CRITICAL", "TRACE": "DEBUG"}.get(name, name)
    level = logging.getLevelName(name) if name else default
    return level if isinstance(level, int) else default


def configure(level: int | None = None, stream_name: str = "stdout") -> None:
    """Lambda logs go to stdout (CloudWatch); the CLI passes "stderr" to keep its output clean."""
    root = logging.getLogger()
    in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    for handler in list(root.handlers):
        # the Lambda runtime's and `chalice local`'s plain handlers would print every line twice
        if in_lambda or type(handler) is logging.StreamHandler or isinstance(handler.formatter, JsonFormatter):
            root.removeHandler(handler)
    handler = _CurrentStreamHandler(stream_name)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level if level is not None else level_from_environment())
    for noisy in ("botocore", "urllib3", "pynamodb", "aws_lambda_powertools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
