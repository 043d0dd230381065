"""amoCRM's reasons for a refusal reach the caller in every shape amoCRM uses (reference §3.5,
§13), and no token ever does."""

import pytest

from chalicelib.amo.client import AmoClient
from chalicelib.amo.errors import AmoNotFound, AmoUnavailable, AmoValidationError
from chalicelib.amo.problems import describe, reasons, scrub
from chalicelib.amo.retry import RetryPolicy
from tests import fixtures
from tests.amo.test_client import FixedToken, NoLimit
from tests.fixtures import HOST, PROBLEM

ERRORS_MAP = {  # amocrm/amocrm-api-php issue 88
    "title": "Bad Request",
    "type": "https://httpstatus.es/400",
    "status": 400,
    "detail": "Invalid request body",
    "errors": {"11062353": "Loss reason can be specified only for lost lead"},
}
ERRORS_ARRAY = {  # issue 52
    "_total_items": 0,
    "errors": [{"title": "Entity not found", "status": 400, "detail": "id: Lead not found"}],
}


@pytest.fixture
def gateway():
    return AmoClient(
        HOST, tokens=FixedToken(), limiter=NoLimit(), retry=RetryPolicy(max_attempts=1), sleep=lambda s: None
    )


def test_validation_errors_become_path_and_detail():
    assert reasons(fixtures.VALIDATION) == [
        "custom_fields_values.0.field_id: The value you selected is not a valid choice."
    ]
    assert describe(fixtures.VALIDATION, "x").startswith("Bad Request: Request validation failed; custom_fields")


def test_an_errors_map_names_the_entity_and_the_sentence():
    assert reasons(ERRORS_MAP) == ["11062353: Loss reason can be specified only for lost lead"]


def test_an_errors_array_gives_title_and_detail_and_no_summary_falls_back():
    assert reasons(ERRORS_ARRAY) == ["Entity not found: id: Lead not found"]
    assert describe(ERRORS_ARRAY, "Bad Request") == "Bad Request; Entity not found: id: Lead not found"


def test_odd_bodies_give_no_reasons_and_never_fail():
    for body in (None, "oops", [], {"errors": "x"}, {"validation-errors": [None, {"errors": [7]}]}):
        assert reasons(body) == []
    assert describe(None, "Bad Gateway") == "Bad Gateway"


def test_tokens_echoed_by_amocrm_are_masked():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJl"
    body = {"title": "Bad Request", "errors": {"0": f"token {jwt} and def50200abc123 refused, Bearer xyz"}}
    text = describe(body, "x")
    assert jwt not in text and "def50200abc123" not in text and "xyz" not in text
    assert text.count("***") == 3
    assert scrub("plain words") == "plain words"


@pytest.mark.parametrize(
    "echoed",
    [
        "https://api.example.com/webhook?secret=s3cr%2Bet-value&x=1",
        "https://api.example.com/webhook?a=1&SECRET=s3cr%2Bet-value",
        "https%3A%2F%2Fapi.example.com%2Fwebhook%3Fsecret%3Ds3cr%252Bet-value%26x%3D1",
    ],
)
def test_a_webhook_secret_quoted_in_a_refusal_is_masked(echoed):
    """amoCRM's refusal of a subscription may quote its destination, which carries our secret."""
    refusal = {"request_id": "0", "errors": [{"code": "InvalidDestination", "path": "destination", "detail": echoed}]}
    body = {**fixtures.VALIDATION, "validation-errors": [refusal]}
    text = describe(body, "x")
    assert "s3cr" not in text and "et-value" not in text
    assert "api.example.com" in text and "***" in text


def test_masking_a_secret_keeps_the_words_around_it():
    quoted = "see (https://x.example/webhook?secret=abc); then"
    assert scrub(quoted) == "see (https://x.example/webhook?secret=***); then"


@pytest.mark.parametrize(
    "body,expected",
    [
        (fixtures.VALIDATION, "custom_fields_values.0.field_id: The value you selected is not a valid choice."),
        (ERRORS_MAP, "11062353: Loss reason can be specified only for lost lead"),
        (ERRORS_ARRAY, "Entity not found: id: Lead not found"),
    ],
)
def test_a_400_in_any_shape_is_a_validation_error_whose_message_says_why(amo, gateway, body, expected):
    amo.patch(f"{HOST}/api/v4/leads/11062353", status=400, json=body, headers=PROBLEM)
    with pytest.raises(AmoValidationError) as raised:
        gateway.patch("/api/v4/leads/11062353", {"loss_reason_id": 5})
    assert expected in str(raised.value)


def test_reasons_reach_404_and_5xx_messages_too(amo, gateway):
    amo.get(f"{HOST}/api/v4/leads/1", status=404, json={**ERRORS_ARRAY, "title": "Not Found"}, headers=PROBLEM)
    amo.get(
        f"{HOST}/api/v4/leads/2", status=500, json={"title": "Internal", "errors": {"2": "db down"}}, headers=PROBLEM
    )
    with pytest.raises(AmoNotFound, match="Lead not found"):
        gateway.get("/api/v4/leads/1")
    with pytest.raises(AmoUnavailable, match="2: db down"):
        gateway.get("/api/v4/leads/2")
