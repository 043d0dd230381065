"""Token refreshes under faults (issue 13, items 9 and 10): a refusal that arrives after someone
else stored a good pair, a token request that must fit inside the lease, a rotated pair that
DynamoDB will not take."""

import json
import time

import pytest
from pynamodb.exceptions import UpdateError

from chalicelib import wiring
from chalicelib.amo.budget import MAX_WAIT_SECONDS
from chalicelib.amo.oauth import TOKEN_TIMEOUTS, TokenPair
from chalicelib.models import AmoToken
from chalicelib.services import token_store
from chalicelib.services.errors import NotConnected
from chalicelib.services.token_store import LEASE_SECONDS, TOKEN_RETRY, TokenStore
from tests import fixtures
from tests.fixtures import HAL, HOST, PROBLEM, store_tokens, stored_token

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

TOKEN_URL = f"{HOST}/oauth2/access_token"


def test_a_refusal_after_another_invocation_stored_a_new_pair_uses_that_pair(amo):
    store_tokens("access-1", "refresh-1", expires_in=-10)

    def meanwhile_someone_else_refreshed(request):
        # our lease ran out while amoCRM kept us waiting; another invocation took it, refreshed
        # with refresh-1 and stored its pair, so refresh-1 is spent when ours arrives
        token = stored_token()
        token.update(
            actions=[
                AmoToken.access_token.set("access-2"),
                AmoToken.refresh_token.set("refresh-2"),
                AmoToken.expires_at.set(fixtures.token_body()["server_time"] + 86400),
                AmoToken.refresh_lease_owner.set("another-invocation"),
            ],
            add_version_condition=False,
        )
        return 401, PROBLEM, '{"title": "Unauthorized", "status": 401, "hint": "Token has been revoked"}'

    amo.add_callback("POST", TOKEN_URL, callback=meanwhile_someone_else_refreshed)

    assert wiring.token_store().get_access_token() == "access-2"
    token = stored_token()
    assert token.needs_reauth is not True and token.refresh_token == "refresh-2"


@pytest.fixture
def dynamodb_refuses_token_writes(monkeypatch):
    state = {"refusing": True, "attempts": 0}
    real = token_store.update_stored

    def update(actions, condition=None):
        if state["refusing"]:
            state["attempts"] += 1
            raise UpdateError("ProvisionedThroughputExceededException")
        return real(actions, condition)

    monkeypatch.setattr(token_store, "update_stored", update)
    return state


def test_a_rotated_pair_dynamodb_refuses_is_kept_used_and_saved_later(amo, dynamodb_refuses_token_writes):
    store_tokens("access-1", "refresh-1", expires_in=-10)
    amo.post(TOKEN_URL, json=fixtures.token_body("access-2", "refresh-2"), headers=HAL)
    slept: list[float] = []
    store = TokenStore(wiring.amo().oauth, sleep=slept.append)

    assert store.get_access_token() == "access-2"  # the new pair, though it is not stored yet
    assert dynamodb_refuses_token_writes["attempts"] == token_store.SAVE_ATTEMPTS and sum(slept) < 10
    assert stored_token().refresh_token == "refresh-1"
    assert store.get_access_token() == "access-2"  # still refusing: the kept pair is used again

    dynamodb_refuses_token_writes["refusing"] = False
    assert store.get_access_token() == "access-2"  # and saved at last
    token = stored_token()
    assert (token.access_token, token.refresh_token) == ("access-2", "refresh-2")
    assert len([c for c in amo.calls if c.request.url == TOKEN_URL]) == 1  # refresh-2 never spent twice


def test_a_kept_pair_never_overwrites_an_operator_s_reconnection(amo, dynamodb_refuses_token_writes):
    """Regression (issue 23): the pair a process kept while DynamoDB refused it was written
    unconditionally later, over the pair an operator had stored by reconnecting meanwhile."""
    store_tokens("access-1", "refresh-1", expires_in=-10)
    amo.post(TOKEN_URL, json=fixtures.token_body("access-2", "refresh-2"), headers=HAL)
    store = TokenStore(wiring.amo().oauth, sleep=lambda seconds: None)
    assert store.get_access_token() == "access-2"  # kept in memory: DynamoDB refused it

    dynamodb_refuses_token_writes["refusing"] = False
    reconnection = TokenPair("operator-access", "operator-refresh", int(time.time()) + 86400)
    # the operator reconnects: the callback stores its pair this way
    token_store.save(lambda token: token_store.apply_pair(token, reconnection, time.time()) or token)

    assert store.get_access_token() == "operator-access"
    token = stored_token()
    assert (token.access_token, token.refresh_token) == ("operator-access", "operator-refresh")
    assert store.get_access_token() == "operator-access"  # the stale pair is gone, not retried
    assert stored_token().refresh_token == "operator-refresh"


def test_a_kept_pair_is_dropped_when_the_tokens_were_removed_meanwhile(amo, dynamodb_refuses_token_writes):
    store_tokens("access-1", "refresh-1", expires_in=-10)
    amo.post(TOKEN_URL, json=fixtures.token_body("access-2", "refresh-2"), headers=HAL)
    store = TokenStore(wiring.amo().oauth, sleep=lambda seconds: None)
    store.get_access_token()
    dynamodb_refuses_token_writes["refusing"] = False
    token_store.disconnect()  # the operator disconnects

    with pytest.raises(NotConnected):
        store.get_access_token()
    assert token_store.load_token() is None  # not re-created by the kept pair


def test_a_save_whose_answer_was_lost_counts_as_saved_on_its_retry(amo, monkeypatch):
    """The first write landed but its answer was lost: the retry finds the pair's own refresh
    token stored, which the condition accepts."""
    store_tokens("access-1", "refresh-1", expires_in=-10)
    amo.post(TOKEN_URL, json=fixtures.token_body("access-2", "refresh-2"), headers=HAL)
    real, lost = token_store.update_stored, []

    def applied_then_lost(actions, condition=None):
        result = real(actions, condition)
        if not lost:
            lost.append(True)
            raise UpdateError("the answer was lost")
        return result

    monkeypatch.setattr(token_store, "update_stored", applied_then_lost)
    store = TokenStore(wiring.amo().oauth, sleep=lambda seconds: None)

    assert store.get_access_token() == "access-2" and lost
    assert stored_token().refresh_token == "refresh-2" and store._unsaved is None


def test_one_token_call_at_its_slowest_including_budget_waits_ends_inside_the_lease():
    """Regression (issue 23): the lease (90 s) left out the rate budget's wait before each attempt
    (up to MAX_WAIT_SECONDS; a longer pause is refused at once): 3 x (10 + 5 + 15) + 2 x 5 = 100 s."""
    per_attempt = MAX_WAIT_SECONDS + TOKEN_TIMEOUTS.connect + TOKEN_TIMEOUTS.read
    worst = TOKEN_RETRY.max_attempts * per_attempt + (TOKEN_RETRY.max_attempts - 1) * TOKEN_RETRY.max_retry_after
    assert worst < LEASE_SECONDS


RENAMED_HOST = "https://renamed.amocrm.ru"
LOOKUP_URL = f"https://{fixtures.API_DOMAIN}/oauth2/account/current/subdomain"
DOMAIN_ANSWER = {"id": fixtures.ACCOUNT_ID, "subdomain": "renamed", "domain": "renamed.amocrm.ru"}


class SlowAmo:
    """amoCRM where every call takes a whole lease's worth of time (on the store's clock)."""

    def __init__(self):
        self.now = time.time()
        self.leases_seen: list[tuple[str | None, bool]] = []  # (owner, still valid) at each call

    def clock(self) -> float:
        return self.now

    def answer(self, status, body, headers=HAL, meanwhile=None):
        def callback(request):
            token = stored_token()
            self.leases_seen.append((token.refresh_lease_owner, (token.refresh_lease_until or 0) > self.now))
            if meanwhile:
                meanwhile()
            self.now += LEASE_SECONDS - 1
            return status, headers, json.dumps(body)

        return callback


def test_a_rename_s_three_token_calls_each_run_under_a_lease_still_held(amo):
    """Regression (issue 23): the lease covered one token call, but a rename takes three
    (refresh refused, domain lookup, refresh on the new host); by the last one the lease had
    expired and another invocation could have sent the same refresh token."""
    store_tokens(fixtures.access_jwt(), "refresh-1", expires_in=-10)
    slow = SlowAmo()
    gone = {"title": "Not Found", "status": 404, "detail": "Account not found"}
    amo.add_callback("POST", TOKEN_URL, callback=slow.answer(404, gone, PROBLEM))
    amo.add_callback("GET", LOOKUP_URL, callback=slow.answer(200, DOMAIN_ANSWER))
    new_pair = fixtures.token_body("access-new", "refresh-new")
    amo.add_callback("POST", f"{RENAMED_HOST}/oauth2/access_token", callback=slow.answer(200, new_pair))
    store = TokenStore(wiring.amo().oauth, clock=slow.clock, sleep=lambda seconds: None)

    assert store.get_access_token() == "access-new"

    owners = {owner for owner, _ in slow.leases_seen}
    assert len(slow.leases_seen) == 3 and len(owners) == 1 and None not in owners
    assert all(valid for _, valid in slow.leases_seen), slow.leases_seen
    token = stored_token()
    assert (token.refresh_token, token.domain, token.refresh_lease_owner) == ("refresh-new", "renamed.amocrm.ru", None)


def test_an_invocation_whose_lease_was_taken_mid_rename_stops_and_uses_the_other_s_pair(amo):
    store_tokens(fixtures.access_jwt(), "refresh-1", expires_in=-10)
    slow = SlowAmo()

    def another_invocation_took_over_and_finished():
        stored_token().update(
            actions=[
                AmoToken.access_token.set("access-other"),
                AmoToken.refresh_token.set("refresh-other"),
                AmoToken.expires_at.set(int(slow.now) + 86400),
                AmoToken.refresh_lease_owner.set("another-invocation"),
                AmoToken.refresh_lease_until.set(slow.now + LEASE_SECONDS),
            ],
            add_version_condition=False,
        )

    gone = {"title": "Not Found", "status": 404, "detail": "Account not found"}
    amo.add_callback(
        "POST", TOKEN_URL, callback=slow.answer(404, gone, PROBLEM, another_invocation_took_over_and_finished)
    )
    amo.add_callback("GET", LOOKUP_URL, callback=slow.answer(200, DOMAIN_ANSWER))
    store = TokenStore(wiring.amo().oauth, clock=slow.clock, sleep=lambda seconds: None)

    assert store.get_access_token() == "access-other"
    assert not [c for c in amo.calls if c.request.url.startswith(RENAMED_HOST)]  # refresh-1 not sent again
    assert stored_token().refresh_token == "refresh-other"
