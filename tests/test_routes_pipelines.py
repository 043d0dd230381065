"""HTTP edge of pipelines, stages, mapping, users and roles."""

import json

import pytest

from tests import fixtures
from tests.conftest import API_KEY
from tests.fixtures import HAL, HOST, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}


@pytest.fixture
def synced(client, amo):
    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    response = client.http.post(f"{P}/sync-pipelines", headers=HEADERS)
    assert response.status_code == 200 and response.json_body["synced"] == 2
    return client


def put_mapping(client, stage_id, body):
    return client.http.put(f"{P}/stages/{stage_id}/mapping", headers=HEADERS, body=json.dumps(body))


def test_stages_of_a_pipeline_with_paging(synced):
    body = synced.http.get(f"{P}/pipelines/3177731/stages?limit=2", headers=HEADERS).json_body
    assert body["count"] == 2 and body["nextCursor"]
    rest = synced.http.get(
        f"{P}/pipelines/3177731/stages?limit=10&cursor={body['nextCursor']}", headers=HEADERS
    ).json_body
    assert [s["id"] for s in rest["data"]] == [58141911, 142, 143]


@pytest.mark.parametrize(
    "query,message",
    [
        ("limit=0", "limit must be between 1 and 1000"),
        ("limit=1001", "limit must be between 1 and 1000"),
        ("limit=abc", "limit must be a non-negative integer"),
        ("cursor=%%%", "cursor is invalid"),
    ],
)
def test_bad_paging_parameters_are_400(synced, query, message):
    response = synced.http.get(f"{P}/pipelines?{query}", headers=HEADERS)
    assert response.status_code == 400 and message in response.json_body["Message"]


def test_unknown_pipeline_stages_are_404(synced):
    assert synced.http.get(f"{P}/pipelines/42/stages", headers=HEADERS).status_code == 404


@pytest.mark.parametrize(
    "stage,body,status,message",
    [
        ("58141811", {"mappedStatus": "WON"}, 400, "mappedStatus must be one of NEW, IN_PROGRESS, CLOSED"),
        ("58141811", {}, 400, "mappedStatus must be one of"),
        ("58141811", {"mappedStatus": "NEW", "pipelineId": "x"}, 400, "pipelineId must be an integer"),
        ("abc", {"mappedStatus": "NEW"}, 400, "stageId must be a positive integer"),
        ("777", {"mappedStatus": "NEW"}, 404, "stage 777"),
    ],
)
def test_mapping_validation(synced, stage, body, status, message):
    response = put_mapping(synced, stage, body)
    assert response.status_code == status and message in response.json_body["Message"]


def test_auto_apply_threshold_must_be_a_fraction(synced):
    response = synced.http.post(f"{P}/mapping/auto-apply", headers=HEADERS, body=json.dumps({"minConfidence": 2}))
    assert response.status_code == 400 and "minConfidence" in response.json_body["Message"]


def test_sync_without_a_connection_is_409_with_a_clear_message(client):
    response = client.http.post(f"{P}/sync-pipelines", headers=HEADERS)
    assert response.status_code == 409 and "not connected" in response.json_body["Message"]


def test_amocrm_down_is_a_clean_502(client, amo, monkeypatch):
    store_tokens()
    from chalicelib import wiring

    monkeypatch.setattr(wiring.amo().client, "_sleep", lambda s: None)
    amo.get(f"{HOST}/api/v4/leads/pipelines", status=503)
    response = client.http.post(f"{P}/sync-pipelines", headers=HEADERS)
    assert response.status_code == 502 and "503" in response.json_body["Message"]


@pytest.mark.parametrize("query", ["limit=%C2%B2", "limit=%D9%A3"])  # "²", Arabic-Indic "٣": isdigit() but not int()
def test_unicode_digits_are_a_400_not_a_500(client, query):
    response = client.http.get(f"{P}/pipelines?{query}", headers=HEADERS)
    assert response.status_code == 400


def test_unicode_digit_path_parameter_is_a_400(client):
    response = client.http.get(f"{P}/pipelines/%C2%B2/stages", headers=HEADERS)
    assert response.status_code == 400
