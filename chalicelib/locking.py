"""Optimistic locking in one place: recognise a lost conditional write, re-read, retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pynamodb.exceptions import PynamoDBException

T = TypeVar("T")


def is_conflict(error: Exception) -> bool:
    """True when DynamoDB refused a write because its condition (version, lease…) did not hold."""
    return isinstance(error, PynamoDBException) and error.cause_response_code in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def retry_on_conflict(attempt: Callable[[], T], attempts: int = 5) -> T:
    """Run `attempt` (which re-reads, changes and conditionally writes) until it wins."""
    for remaining in range(attempts - 1, -1, -1):
        try:
            return attempt()
        except PynamoDBException as error:
            if not is_conflict(error) or remaining == 0:
                raise
    raise AssertionError("unreachable")
