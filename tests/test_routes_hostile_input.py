"""Hostile input answers 4xx with the usual {Code, Message}, never 500: huge and non-finite
numbers, non-ASCII digits, bodies nested past the stack; DynamoDB throttling answers 503.

Webhook bodies are parsed in chalicelib/amo/webhooks.py and are not covered here."""

import base64
import json
import re
from types import SimpleNamespace

import botocore.endpoint
import pytest
from moto.core.botocore_stubber import BotocoreStubber

from chalicelib.models import AmoContact, AmoTask
from chalicelib.schemas import BODIES
from tests.conftest import API_KEY
from tests.fixtures import store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
DIGITS_5000 = "9" * 5000
JSON_ROUTES = sorted(BODIES)  # "METHOD /route" of every route that reads a JSON body


def call(client, method, path, body=""):
    return client.http.request(method, P + path, headers=HEADERS, body=body)


def assert_refused(response, status=400, *words):
    assert response.status_code == status, response.body[:300]
    assert set(response.json_body) == {"Code", "Message"}
    for word in words:
        assert word in response.json_body["Message"]


@pytest.mark.parametrize(
    "method,path,name",
    [
        ("GET", f"/pipelines?limit={DIGITS_5000}", "limit"),
        ("POST", f"/sync-leads?limit={DIGITS_5000}", "limit"),
        ("POST", f"/sync-all?leadsLimit={DIGITS_5000}", "leadsLimit"),
        ("GET", f"/activity?entity=leads&id={DIGITS_5000}", "id"),
        ("GET", f"/tasks?entity_type=leads&entity_id={DIGITS_5000}", "entity_id"),
        ("GET", f"/pipelines/{DIGITS_5000}/stages", "pipelineId"),
        ("GET", f"/leads/{DIGITS_5000}", "amoLeadId"),
        ("GET", "/leads/9007199254740992", "amoLeadId"),
        ("GET", "/leads/%D9%A1%D9%A7%D9%A6%D9%A5%D9%A7", "amoLeadId"),  # ١٧٦٥٧
        ("GET", "/leads/1_7657", "amoLeadId"),
        ("GET", "/leads/%2017657", "amoLeadId"),
    ],
)
def test_huge_or_non_ascii_integers_in_queries_and_paths_are_400(client, method, path, name):
    assert_refused(call(client, method, path), 400, name)


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/update-lead", '{"leadId": 1e400, "leadData": {"price": 1}}', "leadId"),
        ("/update-lead", '{"leadId": Infinity, "leadData": {"price": 1}}', "leadId"),
        ("/update-lead", '{"leadId": NaN, "leadData": {"price": 1}}', "leadId"),
        ("/update-lead", '{"leadId": 100000000000000000000000000000000000000000, "leadData": {"price": 1}}', "leadId"),
        ("/update-lead", '{"leadId": 5, "leadData": {"price": 1e400}}', "leadData.price"),
        (
            "/create-lead",
            '{"leadData": {"name": "x", "price": 100000000000000000000000000000000000000000}}',
            "leadData.price",
        ),
        ("/sync-lead", '{"lead": {"id": 1e400, "pipeline_id": 1, "status_id": 2, "updated_at": 3}}', "lead.id"),
        (
            "/sync-lead",
            '{"lead": {"id": 5, "pipeline_id": 1, "status_id": 2, "updated_at": 3, "price": Infinity}}',
            "lead.price",
        ),
        (
            "/sync-lead",
            '{"lead": {"id": 5, "pipeline_id": 1, "status_id": 2, "updated_at": 3, "price": -1e400}}',
            "lead.price",
        ),
        ("/tasks", '{"text": "t", "complete_till": 100000000000000000000000000000000000000000}', "complete_till"),
    ],
)
def test_non_finite_or_huge_numbers_in_bodies_are_400_and_reach_nobody(client, amo, path, body, field):
    store_tokens()
    assert_refused(call(client, "POST", path, body), 400, field)
    assert len(amo.calls) == 0


def test_a_4000_digit_number_in_a_body_is_400(client):
    assert_refused(call(client, "POST", "/update-lead", '{"leadId": %s, "leadData": {}}' % ("9" * 4000)), 400, "leadId")


def test_a_5000_digit_number_in_a_body_is_400(client):
    assert_refused(call(client, "POST", "/update-lead", '{"leadId": ' + DIGITS_5000 + ', "leadData": {}}'), 400)


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_on_any_json_route_is_400(client, dev_endpoints, route, depth):
    method, path = route.split(" ")
    body = '{"x": ' + "[" * depth + "]" * depth + "}"
    assert_refused(call(client, method, re.sub(r"{\w+}", "1", path), body), 400, "nested too deeply")


@pytest.fixture
def dynamodb_throttles(monkeypatch):
    """moto answers every DynamoDB request with the given error; botocore's back-off between its
    own retries is recorded instead of slept (the list of pauses is returned)."""
    pauses = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=pauses.append))

    def throttle(code: str) -> list:
        def answer(self, request):
            body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "Rate exceeded"}
            return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body)

        monkeypatch.setattr(BotocoreStubber, "process_request", answer)
        return pauses

    return throttle


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",  # AWS: "retry your request"
    ],
)
def test_dynamodb_throttling_is_503_with_retry_after(client, dynamodb_throttles, code):
    pauses = dynamodb_throttles(code)
    response = call(client, "GET", "/pipelines")
    assert_refused(response, 503, "retry")
    assert int(response.headers["Retry-After"]) > 0
    if "Internal" not in code:
        assert pauses, "botocore retries a throttled request before PynamoDB gives up"


def test_an_unreachable_dynamodb_is_503_with_retry_after_not_500(client, monkeypatch):
    """Regression (fault matrix): a timeout or a refused connection to DynamoDB answered 500."""

    def unreachable(self, request):
        raise botocore.exceptions.EndpointConnectionError(endpoint_url=request.url)

    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=lambda seconds: None))
    monkeypatch.setattr(BotocoreStubber, "process_request", unreachable)
    response = call(client, "GET", "/pipelines")
    assert_refused(response, 503, "retry")
    assert int(response.headers["Retry-After"]) > 0


def test_other_dynamodb_failures_stay_500(client, dynamodb_throttles):
    dynamodb_throttles("ValidationException")
    assert call(client, "GET", "/pipelines").status_code == 500


def _cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


HOSTILE_CURSORS = [
    _cursor({"k": {"id": 1}}),  # was 500: a bare number where DynamoDB wants {"N": "1"}
    _cursor({"k": {"id": {"N": "abc"}}}),
    _cursor({"k": {"id": {"N": "1e400"}}}),
    _cursor({"k": {"id": {"S": "7"}}}),
    _cursor({"k": {"id": {"B": "AAAA"}}}),
    _cursor({"k": {"id": {"N": "1", "S": "1"}}}),
    _cursor({"k": {"nope": {"S": "x"}}}),
    _cursor({"k": {"id": {"N": "1"}, "extra": {"S": "x"}}}),
    _cursor({"k": "x"}),
    _cursor({"k": [1]}),
    _cursor({"k": None}),
    _cursor({"offset": 3}),
    _cursor([1]),
    "%00%01",
    "not base64 at all!",
    "A" * 5000,
]


@pytest.mark.parametrize("path", ["/contacts", "/tasks", "/tasks?is_completed=false", "/tasks?entity_type=leads"])
@pytest.mark.parametrize("cursor", HOSTILE_CURSORS)
def test_a_forged_cursor_on_a_scanned_list_is_400_naming_the_cursor(client, path, cursor):
    """Regression (issue 23): a cursor whose start key DynamoDB cannot take answered 500."""
    separator = "&" if "?" in path else "?"
    assert_refused(call(client, "GET", f"{path}{separator}cursor={cursor}"), 400, "cursor")


def test_the_cursors_the_lists_hand_out_still_page_through_everything(client):
    for contact_id in range(1, 6):
        AmoContact(id=contact_id, name=f"C{contact_id}").save()
        AmoTask(id=contact_id, entity_type="leads", entity_id=100 + contact_id).save()
    for path in ("/contacts?limit=2", "/tasks?limit=2", "/tasks?limit=2&entity_type=leads"):
        seen, cursor = [], ""
        while True:
            page = call(client, "GET", path + (f"&cursor={cursor}" if cursor else ""))
            assert page.status_code == 200, page.body
            seen += [item["id"] for item in page.json_body["data"]]
            cursor = page.json_body.get("nextCursor")
            if not cursor:
                break
        assert sorted(seen) == [1, 2, 3, 4, 5], path
