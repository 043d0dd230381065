"""Token lifecycle: exchange, proactive refresh, single refresh under concurrency, revocation."""

import json
import threading

import pytest
import responses

from chalicelib import wiring
from chalicelib.services import connection, token_store
from chalicelib.services.errors import Conflict, Forbidden, InvalidInput, ReauthorizationRequired
from tests import fixtures
from tests.fixtures import HAL, HOST, PROBLEM, store_tokens, stored_token

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

TOKEN_URL = f"{HOST}/oauth2/access_token"


def sent_json(call):
    return json.loads(call.request.body)


def test_code_exchange_stores_tokens_account_and_domain(amo):
    amo.post(TOKEN_URL, json=fixtures.token_body("access-new", "refresh-new"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    result = connection.exchange_code(wiring.amo(), code="auth-code", referer="testaccount.amocrm.ru")

    assert result == {
        "message": "amoCRM connected",
        "accountId": fixtures.ACCOUNT_ID,
        "domain": "testaccount.amocrm.ru",
    }
    token = stored_token()
    assert (token.access_token, token.refresh_token) == ("access-new", "refresh-new")
    assert token.account_id == fixtures.ACCOUNT_ID and token.subdomain == "testaccount"
    grant = sent_json(amo.calls[0])
    assert grant["grant_type"] == "authorization_code" and grant["code"] == "auth-code"
    assert grant["redirect_uri"].endswith("/integrations/amo-crm/callback")
    assert amo.calls[1].request.headers["Authorization"] == "Bearer access-new"


def test_rejected_code_is_invalid_input_and_keeps_existing_tokens(amo):
    store_tokens("working-access", "working-refresh")
    amo.post(
        TOKEN_URL,
        status=400,
        headers=PROBLEM,
        json={
            "hint": "Authorization code has expired",
            "title": "Некорректный запрос",
            "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
            "status": 400,
            "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
        },
    )
    with pytest.raises(InvalidInput, match="authorization code"):
        connection.exchange_code(wiring.amo(), code="stale-code", state=connection.consent_url()["state"])
    assert stored_token().access_token == "working-access"


def test_callback_for_another_account_is_rejected_and_old_tokens_kept(amo):
    store_tokens("working-access", "working-refresh")
    amo.post(TOKEN_URL, json=fixtures.token_body("other-access", "other-refresh"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(account_id=999, subdomain="testaccount"), headers=HAL)
    state = connection.consent_url()["state"]  # even a consent we started: the account is pinned
    with pytest.raises(Conflict, match="already connected"):
        connection.exchange_code(wiring.amo(), code="code", state=state)
    token = stored_token()
    assert (token.access_token, token.account_id) == ("working-access", fixtures.ACCOUNT_ID)


def test_callback_for_a_different_subdomain_than_configured_is_rejected(amo):
    amo.post(TOKEN_URL, json=fixtures.token_body(), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(subdomain="someoneelse"), headers=HAL)
    with pytest.raises(Forbidden, match="someoneelse"):
        connection.exchange_code(wiring.amo(), code="code")
    assert token_store.load_token() is None


def test_referer_of_another_account_is_rejected_before_the_code_is_spent(amo):
    with pytest.raises(Forbidden):
        connection.exchange_code(wiring.amo(), code="code", referer="intruder.amocrm.ru")
    assert len(amo.calls) == 0


def test_issued_state_is_accepted_once(amo):
    amo.post(TOKEN_URL, json=fixtures.token_body(), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    state = connection.issue_state()

    connection.exchange_code(wiring.amo(), code="code", state=state)

    with pytest.raises(Forbidden, match="state"):
        connection.exchange_code(wiring.amo(), code="code", state=state)


def test_unknown_state_is_rejected_without_calling_amocrm(amo):
    with pytest.raises(Forbidden, match="state"):
        connection.exchange_code(wiring.amo(), code="code", state="never-issued")
    assert len(amo.calls) == 0


def test_fresh_token_is_used_without_refresh(amo):
    store_tokens("access-1", expires_in=3600)
    assert wiring.token_store().get_access_token() == "access-1"
    assert len(amo.calls) == 0


def test_token_expiring_within_five_minutes_is_refreshed_once(amo):
    store_tokens("access-1", "refresh-1", expires_in=120)
    amo.post(TOKEN_URL, json=fixtures.token_body("access-2", "refresh-2"), headers=HAL)

    assert wiring.token_store().get_access_token() == "access-2"
    assert wiring.token_store().get_access_token() == "access-2"

    assert len(amo.calls) == 1
    assert sent_json(amo.calls[0])["refresh_token"] == "refresh-1"
    token = stored_token()
    assert token.refresh_token == "refresh-2" and token.refresh_lease_owner is None


def test_eight_threads_on_an_expired_token_cause_exactly_one_refresh(amo, atomic_moto):
    store_tokens("access-old", "refresh-old", expires_in=-10)
    amo.post(TOKEN_URL, json=fixtures.token_body("access-new", "refresh-new"), headers=HAL)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def worker():
        barrier.wait()
        try:
            results.append(wiring.token_store().get_access_token())
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert results == ["access-new"] * 8
    assert len([c for c in amo.calls if c.request.url == TOKEN_URL]) == 1
    assert stored_token().refresh_token == "refresh-new"


def test_revoked_refresh_token_marks_reauthorization_and_does_not_loop(amo):
    store_tokens("access-1", "refresh-spent", expires_in=-10)
    fixtures.refuse_refresh(amo)

    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()
    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()

    # one refresh; the token names no shared API host, so no rename lookup; then nothing more
    assert [c.request.method for c in amo.calls] == ["POST"]
    token = stored_token()
    assert token.needs_reauth is True and "re-authorize" in token.last_error
    status = connection.get_connection_status(wiring.amo())
    assert status["connected"] is False and status["needsReauthorization"] is True


def test_new_code_after_revocation_reconnects(amo):
    store_tokens("access-1", "refresh-spent", expires_in=-10)
    fixtures.refuse_refresh(amo)
    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()
    amo.replace(responses.POST, TOKEN_URL, json=fixtures.token_body("access-9", "refresh-9"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    connection.exchange_code(wiring.amo(), code="new-code")

    assert wiring.token_store().get_access_token() == "access-9"
    assert stored_token().needs_reauth is False


def test_connection_status_without_tokens():
    status = connection.get_connection_status(wiring.amo())
    assert status["connected"] is False and status["hasTokens"] is False


def test_api_key_exchange_issues_a_state_and_sends_client_credentials(amo):
    amo.post(f"{HOST}/oauth2/exchange_api_key", status=202, body=b"")

    result = connection.exchange_api_key_for_code(
        wiring.amo(), login="user@example.com", api_key="legacy-key", state="mystate"
    )

    assert result["state"] == "mystate"
    body = sent_json(amo.calls[0])
    assert body == {
        "login": "user@example.com",
        "api_key": "legacy-key",
        "client_uuid": "client-id-123",
        "client_secret": "client-secret-xyz",
        "state": "mystate",
    }
    connection.consume_state("mystate")  # issued, so the callback will accept it once
