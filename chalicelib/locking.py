"""Optimistic locking in one place: recognise a lost conditional write, re-read, retry; and
what DynamoDB said behind a PynamoDB error."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pynamodb.exceptions import PynamoDBException

T = TypeVar("T")


def error_code(error: PynamoDBException) -> str | None:
    """DynamoDB's error code (`ConditionalCheckFailedException`, a throttle…); None when the
    call got no answer. PynamoDB's own `cause_response_code` raises AttributeError then: a
    timeout or a dropped connection is a botocore error whose `response` is None."""
    return _error_field(error, "Code")


def error_message(error: PynamoDBException) -> str | None:
    return _error_field(error, "Message")


def _error_field(error: PynamoDBException, field: str) -> str | None:
    response = getattr(error.cause, "response", None)
    details = response.get("Error") if isinstance(response, dict) else None
    return details.get(field) if isinstance(details, dict) else None


def is_conflict(error: Exception) -> bool:
    """True when DynamoDB refused a write because its condition (version, lease…) did not hold."""
    return isinstance(error, PynamoDBException) and error_code(error) in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def wrote(write: Callable[[], object]) -> bool:
    """True when the conditional write landed, False when its condition did not hold; anything
    else raises."""
    try:
        write()
    except PynamoDBException as error:
        if is_conflict(error):
            return False
        raise
    return True


def retry_on_conflict(attempt: Callable[[], T], attempts: int = 5) -> T:
    """Run `attempt` (which re-reads, changes and conditionally writes) until it wins."""
    won: list[T] = []
    for _ in range(attempts - 1):
        if wrote(lambda: won.append(attempt())):
            return won[0]
    return attempt()  # the last try: a conflict now is raised like any other error
