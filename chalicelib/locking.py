"""Optimistic locking in one place: recognise a lost conditional write, re-read, retry; and
what DynamoDB said behind a PynamoDB error."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError
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


# DynamoDB's answers that mean "not now" rather than "no": the caller should retry later.
BUSY_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
# Reasons a transaction was cancelled for that say nothing about its conditions (AWS API
# reference, TransactWriteItems: CancellationReasons).
BUSY_REASONS = frozenset({"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"})


def cancellation_reasons(error: PynamoDBException) -> list[str]:
    """The reason codes of a cancelled transaction, one per item that had one (PynamoDB keeps
    them on its client error; a plain botocore error has them in its response)."""
    reasons = getattr(error.cause, "cancellation_reasons", None)
    if reasons is not None:
        return [reason.code for reason in reasons if reason is not None]
    response = getattr(error.cause, "response", None)
    raw = response.get("CancellationReasons") if isinstance(response, dict) else None
    return [r["Code"] for r in raw or [] if isinstance(r, dict) and r.get("Code") not in (None, "None")]


def item_reasons(error: PynamoDBException) -> list[str | None]:
    """A cancelled transaction's reason codes in the order of its items (None: that item was
    fine); empty for any other error."""
    if error_code(error) != "TransactionCanceledException":
        return []
    reasons = getattr(error.cause, "cancellation_reasons", None)
    if reasons is not None:
        return [reason.code if reason is not None else None for reason in reasons]
    response = getattr(error.cause, "response", None)
    raw = response.get("CancellationReasons") if isinstance(response, dict) else None
    return [r.get("Code") if isinstance(r, dict) and r.get("Code") != "None" else None for r in raw or []]


def is_conflict(error: Exception) -> bool:
    """True when DynamoDB refused a write because its condition (version, lease…) did not hold.
    A transaction cancelled only for throttling or a concurrent transaction is not a conflict:
    re-reading would find nothing changed (see is_busy)."""
    if not isinstance(error, PynamoDBException):
        return False
    code = error_code(error)
    if code == "TransactionCanceledException":
        return "ConditionalCheckFailed" in cancellation_reasons(error)
    return code == "ConditionalCheckFailedException"


def is_busy(error: Exception) -> bool:
    """True when DynamoDB could not be reached or asked us to slow down: throttled, a cancelled
    transaction whose reasons are only throttling or contention, an internal error, or no
    answer at all (a timeout or a dropped connection). The right answer is "retry later"."""
    if not isinstance(error, PynamoDBException) or is_conflict(error):
        return False
    code = error_code(error)
    if code == "TransactionCanceledException":
        return set(cancellation_reasons(error)) <= BUSY_REASONS
    return code in BUSY_CODES or (code is None and isinstance(error.cause, BotoCoreError))


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
