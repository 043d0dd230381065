"""Reading what DynamoDB said behind a PynamoDB error, including when it said nothing; and the
conditional write that may lose its condition."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from pynamodb.connection.base import VerboseClientError
from pynamodb.exceptions import CancellationReason, PutError, TransactWriteError, UpdateError

from chalicelib.locking import error_code, error_message, is_busy, is_conflict, retry_on_conflict, wrote


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "UpdateItem")


def test_a_refused_condition_is_a_conflict_and_says_so():
    error = UpdateError("Failed to update item", client_error("ConditionalCheckFailedException"))
    assert is_conflict(error)
    assert error_code(error) == "ConditionalCheckFailedException"
    assert error_message(error) == "ConditionalCheckFailedException happened"


def test_other_answers_are_not_conflicts():
    assert not is_conflict(PutError("Failed to put item", client_error("ProvisionedThroughputExceededException")))
    assert not is_conflict(ValueError("not a DynamoDB error"))


def test_an_error_without_an_answer_has_no_code_instead_of_raising():
    for cause in (ReadTimeoutError(endpoint_url="http://dynamodb"), EndpointConnectionError(endpoint_url="x"), None):
        error = UpdateError("Failed to update item", cause)
        assert error_code(error) is None and error_message(error) is None
        assert not is_conflict(error)


def conflict() -> UpdateError:
    return UpdateError("Failed to update item", client_error("ConditionalCheckFailedException"))


def failing(error: Exception):
    def write():
        raise error

    return write


def test_a_conditional_write_says_whether_it_landed():
    written = []
    assert wrote(lambda: written.append("item")) is True and written == ["item"]
    assert wrote(failing(conflict())) is False


def test_a_write_that_fails_for_another_reason_raises_what_failed():
    throttled = PutError("Failed to put item", client_error("ProvisionedThroughputExceededException"))
    with pytest.raises(PutError) as raised:
        wrote(failing(throttled))
    assert raised.value is throttled
    with pytest.raises(ValueError):
        wrote(failing(ValueError("not a DynamoDB error")))


def test_a_retried_change_runs_again_after_each_conflict_and_returns_what_won():
    answers = iter([conflict(), conflict(), "won"])

    def attempt():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_on_conflict(attempt) == "won"


def test_a_retried_change_raises_the_conflict_of_its_last_attempt():
    calls = []

    def attempt():
        calls.append(1)
        raise conflict()

    with pytest.raises(UpdateError):
        retry_on_conflict(attempt, attempts=3)
    assert len(calls) == 3


def cancelled(*reasons: str) -> TransactWriteError:
    """A transaction as PynamoDB raises it when DynamoDB cancelled it, one reason per item."""
    cause = VerboseClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}},
        "TransactWriteItems",
        {},
        cancellation_reasons=[None if code == "None" else CancellationReason(code=code) for code in reasons],
    )
    return TransactWriteError("Failed to write transaction items", cause)


def test_a_transaction_is_a_conflict_only_when_a_condition_failed():
    """Regression (issue 23): a transaction cancelled for throttling counted as a conflict, the
    caller re-read three times at once, gave up with 409 and the sync skipped the lead for good."""
    assert is_conflict(cancelled("None", "ConditionalCheckFailed"))
    assert not is_busy(cancelled("None", "ConditionalCheckFailed"))
    for reasons in (("ThrottlingError",), ("None", "TransactionConflict"), ("ProvisionedThroughputExceeded", "None")):
        error = cancelled(*reasons)
        assert not is_conflict(error), reasons
        assert is_busy(error), reasons


def test_throttles_internal_errors_and_silence_are_busy_and_other_refusals_are_not():
    for code in ("ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"):
        assert is_busy(PutError("Failed to put item", client_error(code))), code
    for cause in (ReadTimeoutError(endpoint_url="http://dynamodb"), EndpointConnectionError(endpoint_url="x")):
        assert is_busy(UpdateError("Failed to update item", cause))
    assert not is_busy(PutError("Failed to put item", client_error("ValidationException")))
    assert not is_busy(conflict())
    assert not is_busy(ValueError("not a DynamoDB error"))
