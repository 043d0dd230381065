"""The sandbox behaves like amoCRM where the service depends on it (reference §11)."""

import time

import requests

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def test_pages_follow_next_links_and_end_with_an_empty_204(sandbox, api):
    first = api("GET", "/api/v4/leads", params={"limit": 20})
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/hal+json"
    body = first.json()
    assert len(body["_embedded"]["leads"]) == 20 and body["_page"] == 1
    second = requests.get(body["_links"]["next"]["href"], headers=first.request.headers)
    assert len(second.json()["_embedded"]["leads"]) == 10
    assert "next" not in second.json()["_links"]
    past_end = api("GET", "/api/v4/leads", params={"limit": 20, "page": 3})
    assert past_end.status_code == 204 and past_end.content == b""


def test_limit_above_250_is_silently_served_as_50(api):
    # amoCRM replaces an oversized limit rather than refusing it (reference §3.3, §13)
    response = api("GET", "/api/v4/leads", params={"limit": 251})
    assert response.status_code == 200
    assert "limit=50" in response.json()["_links"]["self"]["href"]


def test_with_contacts_embeds_main_contact_links(api):
    lead = api("GET", "/api/v4/leads", params={"with": "contacts", "limit": 1}).json()["_embedded"]["leads"][0]
    contacts = lead["_embedded"]["contacts"]
    assert contacts and contacts[0]["is_main"] is True and "href" in contacts[0]["_links"]["self"]
    assert "contacts" not in api("GET", f"/api/v4/leads/{lead['id']}").json()["_embedded"]


def test_filter_by_ids_and_updated_at(sandbox, api):
    ids = sorted(sandbox.contacts)[:3]
    got = api("GET", "/api/v4/contacts", params=[("filter[id][]", i) for i in ids]).json()
    assert [c["id"] for c in got["_embedded"]["contacts"]] == ids
    phones = [f for f in got["_embedded"]["contacts"][0]["custom_fields_values"] if f["field_code"] == "PHONE"]
    assert phones[0]["values"][0]["value"].startswith("+")
    future = int(time.time()) + 3600
    assert api("GET", "/api/v4/leads", params={"filter[updated_at][from]": future}).status_code == 204


def test_every_pipeline_has_its_own_unsorted_and_shares_142_143(api):
    pipelines = api("GET", "/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    assert len(pipelines) == 2
    unsorted = [next(s["id"] for s in p["_embedded"]["statuses"] if s["type"] == 1) for p in pipelines]
    assert len(set(unsorted)) == 2
    for pipeline in pipelines:
        assert {142, 143} <= {s["id"] for s in pipeline["_embedded"]["statuses"]}


def test_refresh_tokens_rotate_and_a_spent_one_is_revoked(sandbox, token):
    url = f"{sandbox.base_url()}/oauth2/access_token"
    grant = {
        **CLIENT,
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "redirect_uri": "http://127.0.0.1:9/callback",
    }
    first = requests.post(url, json=grant)
    assert first.status_code == 200
    assert first.json()["refresh_token"] != token["refresh_token"]
    again = requests.post(url, json=grant)
    assert again.status_code == 401
    assert again.json()["hint"] == "Token has been revoked"
    assert again.headers["Content-Type"] == "application/problem+json"


def test_expired_access_token_is_401(sandbox, api):
    sandbox.expire_tokens()
    response = api("GET", "/api/v4/account")
    assert response.status_code == 401
    assert response.json()["title"] == "Unauthorized"


def test_more_than_7_requests_in_a_rolling_second_are_refused(sandbox, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("sandbox.traffic.time.monotonic", lambda: now[0])
    sandbox.arrivals = []
    assert [sandbox.admit("GET /api/v4/account") for _ in range(12)] == [True] * 7 + [False] * 5
    now[0] += 0.999
    assert sandbox.admit("GET /api/v4/account") is False  # still inside the rolling second
    now[0] += 0.002
    assert sandbox.admit("GET /api/v4/account") is True
    assert sandbox.stats_view()["rate_limited"] == 6


def test_a_refused_request_is_answered_429(sandbox, api):
    sandbox.config.rate_limit = 1
    statuses = [api("GET", "/api/v4/account").status_code for _ in range(3)]
    assert statuses[0] in (200, 429) and 429 in statuses


def test_blocked_mode_answers_html_403(sandbox, api):
    sandbox.config.blocked = True
    response = api("GET", "/api/v4/leads")
    assert response.status_code == 403 and response.text.startswith("<html>")


def test_create_lead_echoes_request_id_and_complex_creates_the_contact(api):
    created = api("POST", "/api/v4/leads", json=[{"name": "Бронь", "price": 100, "request_id": "abc"}]).json()
    assert created["_embedded"]["leads"][0]["request_id"] == "abc"
    complex_ = api(
        "POST",
        "/api/v4/leads/complex",
        json=[
            {
                "name": "С контактом",
                "_embedded": {
                    "contacts": [
                        {
                            "first_name": "Олена",
                            "custom_fields_values": [
                                {"field_code": "PHONE", "values": [{"value": "+380501112233", "enum_code": "MOB"}]}
                            ],
                        }
                    ]
                },
            }
        ],
    ).json()
    assert isinstance(complex_, list) and complex_[0]["merged"] is False
    contact = api("GET", f"/api/v4/contacts/{complex_[0]['contact_id']}").json()
    assert contact["custom_fields_values"][0]["values"][0]["value"] == "+380501112233"


def test_invalid_write_answers_validation_errors(api):
    response = api("POST", "/api/v4/leads", json=[{"name": "x", "price": "много"}])
    assert response.status_code == 400
    assert response.json()["validation-errors"][0]["errors"][0]["path"] == "price"


def test_single_missing_entity_is_204(api):
    assert api("GET", "/api/v4/leads/1").status_code == 204


def test_webhooks_are_form_encoded_with_bracket_keys_and_account_block(sandbox, api, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead", "update_lead"]})
    lead_ids = [i for i in sorted(sandbox.leads) if sandbox.leads[i]["status_id"] != 142][:2]
    api("PATCH", "/api/v4/leads", json=[{"id": i, "status_id": 142} for i in lead_ids])
    sandbox.dispatcher.flush()

    content_type, body, _ = receiver.bodies[-1]
    assert content_type == "application/x-www-form-urlencoded"
    pairs = dict(receiver.pairs())
    assert "leads%5Bstatus%5D%5B0%5D%5Bid%5D=" in body
    assert pairs["leads[status][1][status_id]"] == "142"
    assert "leads[status][0][old_status_id]" in pairs and "leads[update][0][last_modified]" in pairs
    assert pairs["account[id]"] == str(sandbox.config.account_id)
    assert pairs["account[subdomain]"] == "sandbox"


def test_webhook_subscription_is_idempotent_by_destination(api, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["add_lead"]})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["add_lead", "update_lead"]})
    found = api("GET", "/api/v4/webhooks", params={"filter[destination]": receiver.url}).json()
    assert found["_total_items"] == 1
    assert found["_embedded"]["webhooks"][0]["settings"] == ["add_lead", "update_lead"]
    assert api("DELETE", "/api/v4/webhooks", json={"destination": receiver.url}).status_code == 204
    assert api("GET", "/api/v4/webhooks", params={"filter[destination]": receiver.url}).status_code == 204


def test_install_redirects_the_browser_to_the_callback(sandbox, receiver):
    sandbox.config.redirect_uri = receiver.url
    result = requests.post(f"{sandbox.base_url()}/_sandbox/install", json={"state": "s1"}).json()
    assert result["callback_status"] == 200
    _, query, path = receiver.bodies[-1]
    assert "code=def502" in path and "referer=sandbox.amocrm.ru" in path and "state=s1" in path


def test_api_key_exchange_answers_202_and_delivers_a_code(sandbox, receiver):
    sandbox.config.redirect_uri = receiver.url
    user = next(iter(sandbox.users.values()))
    response = requests.post(
        f"{sandbox.base_url()}/oauth2/exchange_api_key",
        json={
            "login": user["email"],
            "api_key": "sandbox-api-key",
            "client_uuid": "sandbox-client-id",
            "client_secret": "sandbox-client-secret",
            "state": "st",
        },
    )
    assert response.status_code == 202 and response.content == b""
    deadline = time.time() + 5
    while not receiver.bodies and time.time() < deadline:
        time.sleep(0.05)
    assert "from_exchange=1" in receiver.bodies[-1][2]
