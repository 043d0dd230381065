"""Account-level refusals (reference §3.5, §9.5, §13): an unpaid account answers 402 to every
API request but the token endpoint; on a lower plan `/api/v4/webhooks` answers 402 or 403 while
hooks already set up are still delivered."""

import pytest
import requests

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


@pytest.mark.parametrize("path", ["/api/v4/account", "/api/v4/leads", "/api/v4/leads/notes", "/api/v4/events"])
def test_an_unpaid_account_answers_402_problem_json(api, control, path):
    assert control("/config", {"unpaid": True}).json()["unpaid"] is True
    response = api("GET", path)
    assert response.status_code == 402
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 402 and response.json()["detail"] == "Аккаунт не оплачен"


def test_an_unpaid_account_still_refreshes_tokens_and_writes_are_refused_too(sandbox, api, control, token):
    control("/config", {"unpaid": True})
    assert api("POST", "/api/v4/leads", json=[{"name": "x"}]).status_code == 402
    refreshed = requests.post(
        f"{sandbox.base_url()}/oauth2/access_token",
        json={**CLIENT, "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert refreshed.status_code == 200
    control("/config", {"unpaid": False})
    assert api("GET", "/api/v4/account").status_code == 200


def test_an_unknown_token_is_still_401_on_an_unpaid_account(sandbox, control):
    control("/config", {"unpaid": True})
    response = requests.get(f"{sandbox.base_url()}/api/v4/account", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401


@pytest.mark.parametrize(("plan", "status"), [("payment_required", 402), ("forbidden", 403)])
def test_the_webhooks_api_on_a_lower_plan_refuses_every_method(api, control, receiver, plan, status):
    hook = {"destination": receiver.url, "settings": ["status_lead"]}
    assert api("POST", "/api/v4/webhooks", json=hook).status_code == 200
    control("/config", {"webhooks_api": plan})
    for method, body in (("GET", None), ("POST", hook), ("DELETE", {"destination": receiver.url})):
        response = api(method, "/api/v4/webhooks", json=body)
        assert response.status_code == status and response.headers["Content-Type"] == "application/problem+json"
    # receiving hooks is not affected
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    assert len(receiver.bodies) == 1
    control("/config", {"webhooks_api": "ok"})
    assert api("GET", "/api/v4/webhooks").status_code == 200


def test_webhooks_api_takes_only_its_three_values(control):
    assert control("/config", method="GET").json()["webhooks_api"] == "ok"
    assert control("/config", {"webhooks_api": "free"}).status_code == 400
