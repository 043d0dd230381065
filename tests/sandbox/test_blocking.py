"""429 as amoCRM sends it, and the account-wide block that repeated 429s lead to (reference
§3.4, §13): an nginx HTML page without Retry-After, then HTML 403 on every request, the token
endpoint included, until the block is lifted by hand."""

import requests

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def refresh(sandbox, token):
    return requests.post(
        f"{sandbox.base_url()}/oauth2/access_token",
        json={**CLIENT, "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )


def test_a_429_is_an_html_page_without_retry_after_by_default(api, control):
    assert control("/config", method="GET").json()["retry_after"] is None
    control("/config", {"error_rate_429": 1.0})
    response = api("GET", "/api/v4/leads")
    assert response.status_code == 429
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<title>429 Too Many Requests</title>" in response.text and "nginx" in response.text
    assert "Retry-After" not in response.headers


def test_retry_after_is_only_an_explicit_opt_in(api, control):
    control("/config", {"error_rate_429": 1.0, "retry_after": 4})
    assert api("GET", "/api/v4/leads").headers["Retry-After"] == "4"


def test_too_many_429s_in_a_minute_block_the_account_until_lifted_by_hand(sandbox, api, control, token):
    control("/config", {"block_after_429s": 3, "error_rate_429": 1.0})
    assert [api("GET", "/api/v4/leads").status_code for _ in range(3)] == [429, 429, 429]
    control("/config", {"error_rate_429": 0.0})
    config = control("/config", method="GET").json()
    assert config["blocked"] is True and config["block_after_429s"] == 3
    blocked = api("GET", "/api/v4/account")
    assert blocked.status_code == 403 and blocked.headers["Content-Type"].startswith("text/html")
    assert "403 Forbidden" in blocked.text and "nginx" in blocked.text
    # the token endpoint too: a client must not read this 403 as an auth problem
    assert refresh(sandbox, token).status_code == 403
    assert control("/stats", method="GET").json()["blocks"] == 1

    control("/config", {"blocked": False})
    assert api("GET", "/api/v4/account").status_code == 200
    assert refresh(sandbox, token).status_code == 200


def test_the_self_imposed_block_answers_what_the_blocked_switch_answers(sandbox, api, control):
    control("/config", {"blocked": True})
    by_hand = api("GET", "/api/v4/leads")
    control("/config", {"blocked": False, "block_after_429s": 1, "error_rate_429": 1.0})
    api("GET", "/api/v4/leads")
    control("/config", {"error_rate_429": 0.0})
    by_itself = api("GET", "/api/v4/leads")
    assert (by_itself.status_code, by_itself.text, by_itself.headers["Content-Type"]) == (
        by_hand.status_code,
        by_hand.text,
        by_hand.headers["Content-Type"],
    )


def test_429s_older_than_a_minute_do_not_count(sandbox, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("sandbox.traffic.time.monotonic", lambda: clock[0])
    sandbox.config.block_after_429s = 3
    for moment in (0.0, 30.0, 61.0, 95.0):  # never three within 60 s
        clock[0] = 1000.0 + moment
        sandbox.refuse()
    assert sandbox.config.blocked is False
    clock[0] = 1000.0 + 100.0  # 61, 95 and 100 are
    sandbox.refuse()
    assert sandbox.config.blocked is True


def test_block_after_429s_zero_never_blocks_and_bad_values_are_refused(sandbox, api, control):
    control("/config", {"block_after_429s": 0, "error_rate_429": 1.0})
    assert {api("GET", "/api/v4/leads").status_code for _ in range(25)} == {429}
    assert control("/config", method="GET").json()["blocked"] is False
    assert control("/config", {"block_after_429s": -1}).status_code == 400
    assert control("/config", {"block_after_429s": "many"}).status_code == 400
    assert control("/config", {"blocked": "perhaps"}).status_code == 400
