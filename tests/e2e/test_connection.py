"""Connecting to amoCRM: install → connected; the API key; expired tokens refreshed without a
trace; installing the same account again."""

ACCOUNT_ID = 30896271  # the sandbox's account


def test_install_connects_and_test_reports_the_account_without_its_tokens(backend):
    installed = backend.connect()

    status, body = backend.call("GET", "test")

    assert status == 200
    assert {k: body[k] for k in ("connected", "hasTokens", "domain", "accountId", "needsReauthorization")} == {
        "connected": True,
        "hasTokens": True,
        "domain": "sandbox.amocrm.ru",
        "accountId": ACCOUNT_ID,
        "needsReauthorization": False,
    }
    assert isinstance(body["expiresAt"], (int, float)) and body["expiresAt"] > 0
    # access tokens are JWTs ("eyJ…"), refresh tokens start "def502": neither is ever shown
    for shown in (installed["callback_body"], str(body)):
        assert "eyJ" not in shown and "def502" not in shown


def test_a_protected_route_needs_the_api_key(backend):
    status, _ = backend.call("GET", "test", key=False)
    assert status == 401


def test_an_expired_access_token_is_refreshed_transparently(backend):
    before = backend.stats()
    backend.sandbox("POST", "/_sandbox/expire-tokens")

    status, body = backend.call("GET", "test")

    assert status == 200 and body["connected"] is True
    after = backend.stats()
    assert after["refreshes"] == before["refreshes"] + 1
    assert after["statuses"].get("401", 0) == before["statuses"].get("401", 0) + 1  # refused once, then refreshed


def test_a_code_without_our_state_cannot_replace_a_working_connection(backend):
    grants = backend.stats()["code_grants"]

    installed = backend.connect(with_state=False)  # someone's own install, not our consent address

    assert installed["callback_status"] == 403
    assert backend.stats()["code_grants"] == grants  # refused before the code was spent
    status, body = backend.call("GET", "test")
    assert status == 200 and body["connected"] is True


def test_installing_the_same_account_again_keeps_it_connected(backend):
    grants = backend.stats()["code_grants"]

    backend.connect()

    assert backend.stats()["code_grants"] == grants + 1
    status, body = backend.call("GET", "test")
    assert status == 200 and body["connected"] is True and body["accountId"] == ACCOUNT_ID
