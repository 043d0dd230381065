"""Long-lived tokens (Kommo private integrations, reference §13): stored from the CLI or set in
AMO_LONG_LIVED_TOKEN, never refreshed, expiry from the JWT, a 401 means a person must act."""

import base64
import io
import json
import time

import pytest

from chalicelib import cli, metrics, wiring
from chalicelib.models import AmoToken
from chalicelib.services import connection, token_expiry, token_store
from chalicelib.services.errors import Forbidden, InvalidInput, ReauthorizationRequired
from tests import fixtures
from tests.fixtures import HAL, HOST, PROBLEM, store_tokens, stored_token
from tests.test_observability import totals

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

TOKEN_URL = f"{HOST}/oauth2/access_token"
DAY = 86400


def jwt(exp: float, account_id: int = fixtures.ACCOUNT_ID) -> str:
    """A long-lived token as Kommo issues it: a JWT with `exp`."""
    return fixtures.jwt({"exp": int(exp), "account_id": account_id})


def account_ok(amo, token=None):
    match = [] if token is None else [_bearer(token)]
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL, match=match)


def _bearer(token):
    import responses

    return responses.matchers.header_matcher({"Authorization": f"Bearer {token}"})


def test_a_stored_long_lived_token_keeps_no_refresh_token_and_expires_when_its_jwt_says(amo):
    token = jwt(time.time() + 365 * DAY)
    account_ok(amo, token)

    result = connection.store_long_lived_token(wiring.amo(), token)

    stored = stored_token()
    assert (stored.access_token, stored.refresh_token, stored.account_id) == (token, None, fixtures.ACCOUNT_ID)
    assert (
        stored.expires_at
        == result["expiresAt"]
        == int(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["exp"])
    )
    assert result["tokenType"] == "long_lived" and 364 < result["daysLeft"] <= 365


@pytest.mark.parametrize("bad", ["not-a-jwt", "a.b.c", jwt(time.time() - 10)])
def test_a_token_without_a_future_expiry_is_refused_before_amocrm_is_asked(amo, bad):
    with pytest.raises(InvalidInput):
        connection.store_long_lived_token(wiring.amo(), bad)
    assert len(amo.calls) == 0 and token_store.load_token() is None


def test_a_token_amocrm_refuses_or_of_another_subdomain_is_not_stored(amo):
    token = jwt(time.time() + 30 * DAY)
    amo.get(f"{HOST}/api/v4/account", status=401, json=fixtures.UNAUTHORIZED, headers=PROBLEM)
    with pytest.raises(InvalidInput, match="refused"):
        connection.store_long_lived_token(wiring.amo(), token)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(subdomain="someoneelse"), headers=HAL)
    with pytest.raises(Forbidden):
        connection.store_long_lived_token(wiring.amo(), token)
    assert token_store.load_token() is None


def test_a_long_lived_token_is_never_refreshed_even_near_its_expiry(amo):
    token = jwt(time.time() + 60)  # a minute left: an OAuth token would be refreshed now
    store_tokens(access=token, refresh=None, expires_in=60)
    account_ok(amo, token)

    wiring.amo().account.get()
    result = wiring.token_store().keep_alive()

    assert result["refreshed"] is False and "never refreshed" in result["reason"]
    assert not [c for c in amo.calls if c.request.url == TOKEN_URL]


def test_a_401_to_a_long_lived_token_needs_reauthorization_without_a_refresh(amo):
    token = jwt(time.time() + 30 * DAY)
    store_tokens(access=token, refresh=None)
    amo.get(f"{HOST}/api/v4/account", status=401, json=fixtures.UNAUTHORIZED, headers=PROBLEM)

    status = connection.get_connection_status(wiring.amo())

    assert status["connected"] is False and status["needsReauthorization"] is True
    assert not [c for c in amo.calls if c.request.url == TOKEN_URL]
    assert stored_token().needs_reauth is True
    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()


def test_the_environment_token_is_used_as_it_is_and_status_shows_its_type_and_expiry(amo, monkeypatch):
    expires_at = int(time.time()) + 10 * DAY  # read once: a second boundary between two reads made it flaky
    token = jwt(expires_at)
    monkeypatch.setenv("AMO_LONG_LIVED_TOKEN", token)
    account_ok(amo, token)
    metrics.flush(emit=False)

    status = connection.get_connection_status(wiring.amo())

    assert status["connected"] is True and status["tokenType"] == "long_lived"
    assert status["tokenSource"] == "AMO_LONG_LIVED_TOKEN" and status["expiresAt"] == expires_at
    assert 9.9 < status["daysLeft"] <= 10 and "expires in" in status["warning"]
    assert totals(metrics.flush(emit=False))["LongLivedTokenExpiringSoon"] == 1
    assert token_store.load_token().account_id == fixtures.ACCOUNT_ID  # webhooks can be checked against it
    assert token not in json.dumps(status)


def test_an_environment_token_refused_with_401_is_reported_not_refreshed(amo, monkeypatch):
    monkeypatch.setenv("AMO_LONG_LIVED_TOKEN", jwt(time.time() + 10 * DAY))
    store_tokens()  # an old OAuth pair stays unused
    amo.get(f"{HOST}/api/v4/account", status=401, json=fixtures.UNAUTHORIZED, headers=PROBLEM)

    status = connection.get_connection_status(wiring.amo())

    assert status["needsReauthorization"] is True and "long-lived" in status["error"]
    assert not [c for c in amo.calls if c.request.url == TOKEN_URL]


def test_an_oauth_connection_says_so_and_no_expiry_warning(amo):
    store_tokens()
    account_ok(amo)
    metrics.flush(emit=False)

    status = connection.get_connection_status(wiring.amo())

    assert status["tokenType"] == "oauth" and "daysLeft" not in status and "warning" not in status
    assert "LongLivedTokenExpiringSoon" not in totals(metrics.flush(emit=False))


def test_more_than_14_days_left_is_no_warning(monkeypatch):
    monkeypatch.setenv("AMO_LONG_LIVED_TOKEN", jwt(1_000_000 + 20 * DAY))
    metrics.flush(emit=False)
    assert token_expiry.report(now=1_000_000) == 20.0
    assert "LongLivedTokenExpiringSoon" not in totals(metrics.flush(emit=False))


def test_the_cli_reads_the_token_from_stdin_never_from_arguments(amo, monkeypatch, capsys):
    token = jwt(time.time() + 100 * DAY)
    account_ok(amo, token)
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))

    assert cli.main(["set-long-lived-token"]) == 0

    out = capsys.readouterr().out
    assert "long-lived token stored" in out and token not in out
    assert AmoToken.get(AmoToken.SINGLETON_KEY).access_token == token
    assert cli.main(["refresh-token"]) == 0
    assert "not refreshed" in capsys.readouterr().out
