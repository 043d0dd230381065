"""A renamed account (reference §1.6, §13): a refresh answered 401/404 because the subdomain
changed is followed to the account's new domain, which is stored and used from then on; the
connection stays pinned to the account id, not to its name."""

import json

import pytest

from chalicelib import memo, wiring
from chalicelib.amo.errors import AmoError
from chalicelib.amo.oauth import AccountDomain
from chalicelib.services import connection
from chalicelib.services.errors import Conflict, ReauthorizationRequired
from tests import fixtures
from tests.fixtures import ACCOUNT_ID, HAL, HOST, PROBLEM, store_tokens, stored_token

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

NEW_HOST = "https://renamed.amocrm.ru"
SHARED_HOST = f"https://{fixtures.API_DOMAIN}"  # the token's api_domain: the only host that answers the lookup
OLD_ACCESS = fixtures.access_jwt()
LOOKUP = "/oauth2/account/current/subdomain"
ACCOUNT_GONE = {"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "Account not found"}


def domain_answer(account_id=ACCOUNT_ID, subdomain="renamed", domain="renamed.amocrm.ru"):
    return {"id": account_id, "subdomain": subdomain, "domain": domain, "top_level_domain": "ru"}


def renamed_account(amo, host=HOST, lookup_host=SHARED_HOST, answer=None):
    """GIVEN the account was renamed: the old host no longer knows it, the lookup on the shared
    API host names the new one."""
    amo.post(f"{host}/oauth2/access_token", status=404, json=ACCOUNT_GONE, headers=PROBLEM)
    amo.get(f"{lookup_host}{LOOKUP}", json=answer or domain_answer(), headers=HAL)


def test_a_refresh_refused_after_a_rename_is_retried_on_the_new_domain_and_every_later_call_follows(amo):
    store_tokens(OLD_ACCESS, "refresh-1", expires_in=-10)
    renamed_account(amo)
    amo.post(f"{NEW_HOST}/oauth2/access_token", json=fixtures.token_body("access-new", "refresh-new"), headers=HAL)
    amo.get(f"{NEW_HOST}/api/v4/account", json=fixtures.account_body(subdomain="renamed"), headers=HAL)

    account = wiring.amo().account.get()

    assert account.subdomain == "renamed"
    lookup = next(c for c in amo.calls if c.request.url.endswith(LOOKUP))
    assert lookup.request.url == f"{SHARED_HOST}{LOOKUP}"  # never the account host that refused
    assert lookup.request.headers["X-Refresh-Token"] == "refresh-1"
    assert "Authorization" not in lookup.request.headers
    retried = [c for c in amo.calls if c.request.url == f"{NEW_HOST}/oauth2/access_token"]
    assert [json.loads(c.request.body)["refresh_token"] for c in retried] == ["refresh-1"]
    token = stored_token()
    assert (token.domain, token.subdomain, token.account_id) == ("renamed.amocrm.ru", "renamed", ACCOUNT_ID)
    assert (token.access_token, token.refresh_token, token.needs_reauth) == ("access-new", "refresh-new", False)

    memo.clear_all()  # a fresh process: it reads the domain from the stored tokens
    calls = len(amo.calls)
    status = connection.get_connection_status(wiring.amo())
    assert status["connected"] is True and status["domain"] == "renamed.amocrm.ru"
    assert [c.request.url for c in amo.calls[calls:]] == [f"{NEW_HOST}/api/v4/account"]


def test_a_lookup_that_names_another_account_is_not_followed(amo):
    store_tokens(OLD_ACCESS, "refresh-1", expires_in=-10)
    renamed_account(amo, answer=domain_answer(account_id=999))

    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()

    assert not any(c.request.url.startswith(NEW_HOST) for c in amo.calls)
    token = stored_token()
    assert token.needs_reauth is True and token.domain == "testaccount.amocrm.ru"


@pytest.mark.parametrize(
    "answer",
    [
        domain_answer(subdomain="evil", domain="evil.example.com"),
        domain_answer(subdomain="renamed", domain="other.amocrm.ru"),
        domain_answer(subdomain="testaccount", domain="testaccount.amocrm.ru"),  # not renamed at all
    ],
    ids=["foreign-host", "host-of-another-name", "same-domain"],
)
def test_a_lookup_without_a_new_amocrm_domain_leaves_the_refusal_standing(amo, answer):
    store_tokens(OLD_ACCESS, "refresh-1", expires_in=-10)
    renamed_account(amo, answer=answer)

    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()

    # the refusal and the lookup, and no second refresh anywhere
    assert [c.request.method for c in amo.calls] == ["POST", "GET"]
    assert stored_token().domain == "testaccount.amocrm.ru"


@pytest.mark.parametrize(
    "access",
    [
        "access-old",  # not a JWT
        fixtures.access_jwt(api_domain=None),  # issued before 2024-08-21: no claim
        fixtures.access_jwt(api_domain="evil.example.com"),  # not an amoCRM host
    ],
    ids=["opaque", "no-claim", "foreign-claim"],
)
def test_without_a_usable_api_domain_the_refusal_stands_and_nothing_is_asked(amo, access):
    store_tokens(access, "refresh-1", expires_in=-10)
    amo.post(f"{HOST}/oauth2/access_token", status=404, json=ACCOUNT_GONE, headers=PROBLEM)

    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()

    assert [c.request.url for c in amo.calls] == [f"{HOST}/oauth2/access_token"]
    assert stored_token().needs_reauth is True


def test_a_refresh_refused_as_bad_request_asks_no_domain_lookup(amo):
    store_tokens(OLD_ACCESS, "refresh-1", expires_in=-10)
    amo.post(f"{HOST}/oauth2/access_token", status=400, json={**fixtures.REVOKED, "status": 400}, headers=PROBLEM)

    with pytest.raises(ReauthorizationRequired):
        wiring.token_store().get_access_token()

    assert [c.request.url for c in amo.calls] == [f"{HOST}/oauth2/access_token"]


def test_with_a_loopback_sandbox_the_rename_is_stored_but_calls_stay_on_its_host(amo, monkeypatch):
    sandbox = "http://127.0.0.1:8765"
    monkeypatch.setenv("AMO_BASE_URL", sandbox)
    memo.clear_all()
    store_tokens(OLD_ACCESS, "refresh-1", expires_in=-10)
    renamed_account(amo, host=sandbox, lookup_host=sandbox)
    amo.post(f"{sandbox}/oauth2/access_token", json=fixtures.token_body("access-new", "refresh-new"), headers=HAL)
    amo.get(f"{sandbox}/api/v4/account", json=fixtures.account_body(subdomain="renamed"), headers=HAL)

    assert wiring.amo().account.get().subdomain == "renamed"

    assert all(c.request.url.startswith(sandbox) for c in amo.calls)
    lookup = next(c for c in amo.calls if c.request.url.endswith(LOOKUP))
    assert lookup.request.headers["Host"] == fixtures.API_DOMAIN  # the sandbox tells hosts apart by name
    assert [c.request.method for c in amo.calls].count("POST") == 2  # refused, then retried after the lookup
    assert (stored_token().domain, stored_token().access_token) == ("renamed.amocrm.ru", "access-new")


def test_after_a_rename_a_new_consent_of_the_same_account_is_accepted_under_its_new_name(amo):
    store_tokens("access-old", "refresh-1")
    token = stored_token()
    token.subdomain, token.domain = "renamed", "renamed.amocrm.ru"  # as a followed rename stores it
    token.save()
    amo.post(f"{NEW_HOST}/oauth2/access_token", json=fixtures.token_body("access-9", "refresh-9"), headers=HAL)
    amo.get(f"{NEW_HOST}/api/v4/account", json=fixtures.account_body(subdomain="renamed"), headers=HAL)

    answer = connection.exchange_code(
        wiring.amo(), code="code", state=connection.consent_url()["state"], referer="renamed.amocrm.ru"
    )

    assert answer["accountId"] == ACCOUNT_ID and answer["domain"] == "renamed.amocrm.ru"
    assert connection.expected_subdomain() == "renamed"
    assert stored_token().access_token == "access-9"


def test_a_rename_nobody_followed_does_not_lock_the_connected_account_out_of_reconnecting(amo):
    store_tokens("access-old", "refresh-1")  # stored as "testaccount"; the account is now "renamed"
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("access-9", "refresh-9"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(subdomain="renamed"), headers=HAL)

    connection.exchange_code(
        wiring.amo(), code="code", state=connection.consent_url()["state"], referer="renamed.amocrm.ru"
    )

    token = stored_token()
    assert (token.account_id, token.subdomain, token.domain) == (ACCOUNT_ID, "renamed", "renamed.amocrm.ru")


def test_another_account_under_the_connected_name_is_still_refused(amo):
    store_tokens("access-old", "refresh-1")
    amo.post(f"{HOST}/oauth2/access_token", json=fixtures.token_body("access-9", "refresh-9"), headers=HAL)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(account_id=999), headers=HAL)

    with pytest.raises(Conflict):
        connection.exchange_code(wiring.amo(), code="code", state=connection.consent_url()["state"])

    assert stored_token().access_token == "access-old"


@pytest.mark.parametrize(
    ("body", "host"),
    [
        (domain_answer(), "renamed.amocrm.ru"),
        (domain_answer(domain="amocrm.com"), "renamed.amocrm.com"),  # a bare base domain
        (domain_answer(subdomain="Renamed", domain="Renamed.Kommo.com"), "renamed.kommo.com"),
    ],
)
def test_the_domain_answer_is_read_as_the_account_host(body, host):
    assert AccountDomain.from_response(body) == AccountDomain(ACCOUNT_ID, host.split(".")[0], host)


@pytest.mark.parametrize("body", [{}, None, {"id": "1", "subdomain": "x"}, domain_answer(domain="x.evil.com")])
def test_a_domain_answer_without_an_amocrm_host_is_an_error(body):
    with pytest.raises(AmoError):
        AccountDomain.from_response(body)
