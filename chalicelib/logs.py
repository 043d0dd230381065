"""One JSON line per log event, tagged with the current correlation id.

Chalice's `app.log` drops INFO by default; `configure()` sets INFO explicitly on the root
logger, which the chalicelib loggers propagate to. Messages are written by our own code and
never carry tokens, keys or secrets.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
import uuid

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class _CurrentStreamHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout / sys.stderr is at the time (tests swap them)."""

    def __init__(self, stream_name: str):
        self._stream_name = stream_name
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, _value) -> None:
        return None


def configure(level: int = logging.INFO, stream_name: str = "stdout") -> None:
    """Lambda logs go to stdout (CloudWatch); the CLI passes "stderr" to keep its output clean."""
    root = logging.getLogger()
    in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    for handler in list(root.handlers):
        # the Lambda runtime's and `chalice local`'s plain handlers would print every line twice
        if in_lambda or type(handler) is logging.StreamHandler or isinstance(handler.formatter, JsonFormatter):
            root.removeHandler(handler)
    handler = _CurrentStreamHandler(stream_name)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("botocore", "urllib3", "pynamodb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
