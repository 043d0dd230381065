"""The HTTP edge: API-key guard, dev-only routes, OAuth routes, the refresh schedule."""

import json
import re
from urllib.parse import urlencode

import pytest

from tests import fixtures
from tests.conftest import API_KEY
from tests.fixtures import HAL, HOST, PROBLEM, store_tokens, stored_token

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
KEY = {"X-API-Key": API_KEY}
JSON = {"Content-Type": "application/json"}


def protected_routes():
    """Every (method, path) the app serves except the callback and the webhook, read from the app
    itself so a route added later is covered without editing this test."""
    from app import app
    from chalicelib.web import PUBLIC_ROUTES

    return [
        (method, re.sub(r"{[^}]+}", "1", path))
        for path, methods in sorted(app.routes.items())
        if path not in PUBLIC_ROUTES
        for method in sorted(methods)
    ]


PROTECTED = protected_routes()


def call(client, method, path, headers=None, body=None):
    return client.http.request(
        method, path, headers={**JSON, **(headers or {})}, body=json.dumps(body) if body is not None else b""
    )


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
def test_protected_route_without_a_valid_api_key_is_401(client, method, path, headers, amo, dev_endpoints):
    response = call(client, method, path, headers, body={})
    assert response.status_code == 401
    assert response.json_body["Message"] == "missing or invalid X-API-Key"
    assert len(amo.calls) == 0


@pytest.mark.parametrize("path", [f"{P}/set-tokens"])
def test_dev_route_is_404_when_dev_endpoints_are_disabled(client, path):
    response = call(client, "POST", path, KEY, {"access_token": "a", "refresh_token": "r"})
    assert response.status_code == 404
    assert stored_token_or_none() is None


def stored_token_or_none():
    from chalicelib.services.token_store import load_token

    return load_token()


def test_set_tokens_stores_a_pair_when_dev_endpoints_are_enabled(client, dev_endpoints):
    response = call(
        client, "POST", f"{P}/set-tokens", KEY, {"access_token": "a-1", "refresh_token": "r-1", "expires_in": 600}
    )
    assert response.status_code == 200
    assert response.json_body == {"message": "tokens stored"}
    assert stored_token().access_token == "a-1"


def test_set_tokens_requires_its_api_key_even_when_enabled(client, dev_endpoints):
    assert call(client, "POST", f"{P}/set-tokens", {}, {"access_token": "a"}).status_code == 401


def test_set_tokens_validates_fields(client, dev_endpoints):
    response = call(client, "POST", f"{P}/set-tokens", KEY, {"access_token": 5, "refresh_token": "r"})
    assert response.status_code == 400
    assert "access_token must be a string" in response.json_body["Message"]


def test_callback_without_code_is_400(client, amo):
    response = client.http.get(f"{P}/callback?referer=testaccount.amocrm.ru")
    assert response.status_code == 400
    assert "code is required" in response.json_body["Message"]
    assert len(amo.calls) == 0


def test_callback_with_unknown_state_is_rejected(client, amo):
    response = client.http.get(f"{P}/callback?code=abc&state=forged&referer=testaccount.amocrm.ru")
    assert response.status_code == 403
    assert len(amo.calls) == 0


def test_callback_from_a_browser_gets_a_short_html_page(client, amo):
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body(), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    response = client.http.get(f"{P}/callback?code=abc", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"amoCRM connected" in response.body


def test_callback_for_another_account_is_rejected_and_old_tokens_kept(client, amo):
    store_tokens("working", "working-refresh")
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("intruder"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(account_id=4242), headers=HAL)

    state = call(client, "GET", f"{P}/connect", KEY).json_body["state"]
    response = client.http.get(f"{P}/callback?code=abc&state={state}")

    assert response.status_code == 409
    assert stored_token().access_token == "working"


def test_connect_gives_the_consent_address_with_a_state_the_callback_accepts_once(client, amo):
    store_tokens("working", "working-refresh")  # connected: reconnecting needs a state of ours
    consent = call(client, "GET", f"{P}/connect", KEY).json_body
    url = consent["url"]
    assert url.startswith("https://www.amocrm.ru/oauth?") and "client_id=client-id-123" in url
    assert f"state={consent['state']}" in url and len(consent["state"]) >= 32
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("renewed", "renewed-refresh"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    first = client.http.get(f"{P}/callback?code=abc&state={consent['state']}&referer=testaccount.amocrm.ru")
    again = client.http.get(f"{P}/callback?code=abc&state={consent['state']}&referer=testaccount.amocrm.ru")

    assert first.status_code == 200 and stored_token().access_token == "renewed"
    assert again.status_code == 403


def test_a_connected_account_is_not_replaced_by_a_callback_without_state(client, amo):
    store_tokens("working", "working-refresh")
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("lower-privileged"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    response = client.http.get(f"{P}/callback?code=someone-elses-code&referer=testaccount.amocrm.ru")

    assert response.status_code == 403 and "GET connect" in response.json_body["Message"]
    assert stored_token().access_token == "working"
    assert not [c for c in amo.calls if "access_token" in c.request.url]  # the code was not even spent


def test_an_account_needing_reauthorization_may_be_reconnected_from_amocrm_without_state(client, amo):
    store_tokens("revoked", "revoked-refresh")
    token = stored_token()
    token.needs_reauth = True
    token.save()
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("fresh"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    assert client.http.get(f"{P}/callback?code=abc").status_code == 200
    assert stored_token().access_token == "fresh"


@pytest.mark.parametrize("referer", ["evil.example.com", "https://evil.example.com/x", "<script>", "[::1"])
def test_the_stored_domain_is_never_what_a_foreign_referer_says(client, amo, referer):
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body(), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    response = client.http.get(f"{P}/callback?" + urlencode({"code": "abc", "referer": referer}))
    assert response.status_code == 200
    assert stored_token().domain == "testaccount.amocrm.ru"


@pytest.mark.parametrize("field, value", [("state", "s" * 2100), ("state", "s" * 201), ("referer", "a" * 300)])
def test_an_over_long_callback_parameter_is_400_and_reaches_nobody(client, amo, field, value):
    """Regression (issue 23): a state over 2 KB went to DynamoDB as a key and answered 500."""
    response = client.http.get(f"{P}/callback?" + urlencode({"code": "abc", field: value}))
    assert response.status_code == 400, response.body[:200]
    assert field in response.json_body["Message"] and "at most" in response.json_body["Message"]
    assert len(amo.calls) == 0


@pytest.mark.parametrize(
    "referer", ["testaccount.kommo.com", "https://testaccount.amocrm.com/", "TESTACCOUNT.KOMMO.COM"]
)
def test_a_referer_on_the_other_platform_never_moves_the_account(client, amo, referer):
    """Regression (issue 23): `testaccount.kommo.com` moved an `.amocrm.ru` account's stored domain,
    and with it every later call and token, to another platform."""
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body(), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    response = client.http.get(f"{P}/callback?" + urlencode({"code": "abc", "referer": referer}))

    assert response.status_code == 200 and response.json_body["domain"] == "testaccount.amocrm.ru"
    assert stored_token().domain == "testaccount.amocrm.ru"


def test_a_reconnection_with_an_other_platform_referer_keeps_the_stored_domain(client, amo):
    store_tokens("working", "working-refresh")  # testaccount.amocrm.ru
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("renewed", "renewed-refresh"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    state = call(client, "GET", f"{P}/connect", KEY).json_body["state"]

    response = client.http.get(
        f"{P}/callback?" + urlencode({"code": "abc", "state": state, "referer": "testaccount.kommo.com"})
    )

    assert response.status_code == 200
    assert (stored_token().access_token, stored_token().domain) == ("renewed", "testaccount.amocrm.ru")


def test_a_state_the_caller_chooses_never_replaces_one_already_issued(client, amo):
    amo.post(f"{HOST}/oauth2/exchange_api_key", status=202)
    issued = call(client, "GET", f"{P}/connect", KEY).json_body["state"]
    body = {"login": "a@b.c", "api_key": "k", "state": issued}
    response = call(client, "POST", f"{P}/exchange-api-key", KEY, body)
    assert response.status_code == 409
    assert not [c for c in amo.calls if "exchange_api_key" in c.request.url]


def test_exchange_api_key_is_202(client, amo):
    amo.post(f"{HOST}/oauth2/exchange_api_key", status=202)
    response = call(client, "POST", f"{P}/exchange-api-key", KEY, {"login": "a@b.c", "api_key": "k"})
    assert response.status_code == 202
    assert response.json_body["state"]


@pytest.mark.parametrize(
    "body,message",
    [
        ([1, 2], "request body must be a JSON object"),
        ({"api_key": "k"}, "login is required"),
        ({"login": "a@b.c", "api_key": 12}, "api_key must be a string"),
    ],
)
def test_exchange_api_key_validates_its_body(client, body, message):
    response = call(client, "POST", f"{P}/exchange-api-key", KEY, body)
    assert response.status_code == 400
    assert message in response.json_body["Message"]


def test_malformed_json_is_400_not_500(client):
    response = client.http.post(f"{P}/exchange-api-key", headers={**JSON, **KEY}, body="{not json")
    assert response.status_code == 400


def test_amocrm_refusing_the_api_key_exchange_is_a_clean_error(client, amo):
    amo.post(
        f"{HOST}/oauth2/exchange_api_key",
        status=403,
        headers=PROBLEM,
        json={"title": "Forbidden", "type": "https://httpstatus.es/403", "status": 403, "detail": "Not enough rights"},
    )
    response = call(client, "POST", f"{P}/exchange-api-key", KEY, {"login": "a@b.c", "api_key": "k"})
    assert response.status_code == 502
    assert "Not enough rights" in response.json_body["Message"]
    assert "client-secret-xyz" not in response.body.decode()


def test_test_route_reports_reauthorization_needed(client, amo):
    store_tokens("a", "spent", expires_in=-5)
    fixtures.refuse_refresh(amo)
    body = client.http.get(f"{P}/test", headers=KEY).json_body
    assert body["connected"] is False and body["needsReauthorization"] is True


def test_refresh_schedule_refreshes_the_token(client, amo):
    store_tokens("a-1", "r-1", expires_in=80000)
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("a-2", "r-2"), headers=HAL)
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:refresh-token"]
    )

    result = client.lambda_.invoke("refresh-token", event).payload

    assert result["refreshed"] is True
    assert stored_token().refresh_token == "r-2"


def test_refresh_schedule_without_tokens_reports_instead_of_failing(client, amo):
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:refresh-token"]
    )
    result = client.lambda_.invoke("refresh-token", event).payload
    assert result["refreshed"] is False and "not connected" in result["reason"]
    assert len(amo.calls) == 0


def test_missing_api_key_configuration_is_503_not_500(client, monkeypatch):
    monkeypatch.delenv("MAIN_BACKEND_API_KEY")
    response = client.http.get(f"{P}/test", headers=KEY)
    assert response.status_code == 503
    assert "MAIN_BACKEND_API_KEY" in response.json_body["Message"]
