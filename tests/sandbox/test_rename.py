"""A renamed account (reference §1.6, §13): the refresh grant for a token issued before the
rename answers 404, as the old domain would, until the client asks the subdomain endpoint on
the shared API host named in the access token's `api_domain` claim (the account host does not
answer it)."""

import base64
import json

import requests

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def refresh(sandbox, refresh_token):
    return requests.post(
        f"{sandbox.base_url()}/oauth2/access_token",
        json={**CLIENT, "grant_type": "refresh_token", "refresh_token": refresh_token},
    )


def api_domain(access_token):
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["api_domain"]


def lookup(sandbox, refresh_token, host=None):
    """The look-up sent to the sandbox's address with `Host: <host>` (default: its api_domain)."""
    return requests.get(
        f"{sandbox.base_url()}/oauth2/account/current/subdomain",
        headers={"X-Refresh-Token": refresh_token, "Host": host or sandbox.api_domain()},
    )


def test_rename_shows_in_the_account_and_in_webhook_bodies(sandbox, api, control, receiver):
    assert control("/rename", {"subdomain": "newname"}).json()["previous"] == "sandbox"
    assert api("GET", "/api/v4/account").json()["subdomain"] == "newname"
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    assert dict(receiver.pairs())["account[subdomain]"] == "newname"


def test_refresh_after_rename_needs_the_subdomain_lookup_first(sandbox, token, control):
    control("/rename", {"subdomain": "newname"})
    refused = refresh(sandbox, token["refresh_token"])
    assert refused.status_code == 404
    assert refused.headers["Content-Type"] == "application/problem+json"

    found = lookup(sandbox, token["refresh_token"])
    assert found.status_code == 200
    assert found.json() == {
        "id": sandbox.config.account_id,
        "subdomain": "newname",
        "domain": "newname.amocrm.ru",
        "top_level_domain": "ru",
    }
    renewed = refresh(sandbox, token["refresh_token"])
    assert renewed.status_code == 200
    assert refresh(sandbox, renewed.json()["refresh_token"]).status_code == 200  # issued after: no look-up
    assert control("/stats", method="GET").json()["subdomain_lookups"] == 1


def test_subdomain_lookup_refuses_unknown_and_spent_refresh_tokens(sandbox, token):
    assert lookup(sandbox, "def50200nonsense").status_code == 401
    refresh(sandbox, token["refresh_token"])
    spent = lookup(sandbox, token["refresh_token"])
    assert spent.status_code == 401 and spent.json()["hint"] == "Token has been revoked"


def test_without_a_rename_refresh_needs_no_lookup(sandbox, token):
    assert refresh(sandbox, token["refresh_token"]).status_code == 200


def test_rename_refuses_a_subdomain_that_is_not_a_host_label(control):
    assert control("/rename", {"subdomain": "New Name"}).status_code == 400


def test_the_lookup_answers_only_on_the_api_domain_host_not_on_the_account_host(sandbox, token, control):
    control("/rename", {"subdomain": "newname"})
    account_host = sandbox.base_url().split("://")[1]
    on_account_host = lookup(sandbox, token["refresh_token"], host=account_host)
    assert on_account_host.status_code == 404
    # what a client does: read api_domain from its access token and ask there
    shared = api_domain(token["access_token"])
    assert shared != account_host
    found = requests.get(
        f"http://{shared}/oauth2/account/current/subdomain", headers={"X-Refresh-Token": token["refresh_token"]}
    )
    assert found.status_code == 200 and found.json()["subdomain"] == "newname"
    assert refresh(sandbox, token["refresh_token"]).status_code == 200


def test_api_domain_can_be_named_in_the_config(sandbox, token, control):
    assert control("/config", {"api_domain": "api-b.amocrm.ru"}).json()["api_domain"] == "api-b.amocrm.ru"
    assert lookup(sandbox, token["refresh_token"], host="api-b.amocrm.ru").status_code == 200
    refreshed = refresh(sandbox, token["refresh_token"]).json()
    assert api_domain(refreshed["access_token"]) == "api-b.amocrm.ru"
