"""Reading what DynamoDB said behind a PynamoDB error, including when it said nothing."""

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from pynamodb.exceptions import PutError, UpdateError

from chalicelib.locking import error_code, error_message, is_conflict


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
