"""A renamed account (reference §1.6, §13): the refresh grant for a token issued before the
rename answers 404, as the old domain would, until the client asks the subdomain endpoint."""

import requests

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def refresh(sandbox, refresh_token):
    return requests.post(
        f"{sandbox.base_url()}/oauth2/access_token",
        json={**CLIENT, "grant_type": "refresh_token", "refresh_token": refresh_token},
    )


def lookup(sandbox, refresh_token):
    return requests.get(
        f"{sandbox.base_url()}/oauth2/account/current/subdomain", headers={"X-Refresh-Token": refresh_token}
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
