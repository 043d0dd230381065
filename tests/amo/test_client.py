"""The amoCRM transport: paging, retries, write safety, typed errors, 401 refresh."""

import contextvars
import json
import time

import pytest
import requests
import responses

from chalicelib.amo import domains
from chalicelib.amo.budget import ADMITTED
from chalicelib.amo.client import AmoClient, RetryPolicy
from chalicelib.amo.errors import (
    AmoBlocked,
    AmoForbidden,
    AmoNotFound,
    AmoRateLimited,
    AmoUnavailable,
    AmoUnknownPath,
    AmoValidationError,
)
from chalicelib.amo.leads import Leads
from chalicelib.amo.oauth import OAuth, OAuthCredentials
from chalicelib.amo.retry import retry_after_seconds
from tests import fixtures
from tests.fixtures import HAL, HOST, PROBLEM

HTML_429 = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"  # noqa: E501


class NoLimit:
    interval = 0.0
    blocked = None

    def acquire(self, lane="interactive"):
        return 0.0

    def __init__(self):
        self.rate_limits = []
        self.successes = 0

    def rate_limited(self, retry_after):
        self.rate_limits.append(retry_after)

    def succeeded(self):
        self.successes += 1

    def block(self, seconds):
        self.blocked = seconds

    def describe(self):
        return {}


class FixedToken:
    def __init__(self):
        self.refreshes = 0
        self.token = "access-1"

    def access_token(self):
        return self.token

    def refresh_after_unauthorized(self, rejected_token):
        self.refreshes += 1
        self.token = "access-2"
        return self.token


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def gateway(sleeps):
    return AmoClient(HOST, tokens=FixedToken(), limiter=NoLimit(), sleep=sleeps.append, rand=lambda: 0.5)


def test_paging_follows_next_links_and_stops_on_204(amo, gateway):
    amo.get(
        f"{HOST}/api/v4/leads",
        json=fixtures.leads_page([1, 2], 1, True),
        headers=HAL,
        match=[responses.matchers.query_param_matcher({"limit": "250"})],
    )
    amo.get(
        f"{HOST}/api/v4/leads",
        json=fixtures.leads_page([3, 4], 2, True),
        headers=HAL,
        match=[responses.matchers.query_param_matcher({"page": "2", "limit": "250"})],
    )
    amo.get(
        f"{HOST}/api/v4/leads",
        json=fixtures.leads_page([5], 3, True),
        headers=HAL,
        match=[responses.matchers.query_param_matcher({"page": "3", "limit": "250"})],
    )
    amo.get(
        f"{HOST}/api/v4/leads",
        status=204,
        body=b"",
        match=[responses.matchers.query_param_matcher({"page": "4", "limit": "250"})],
    )

    pages = [[lead["id"] for lead in page] for page in gateway.iter_pages("/api/v4/leads", "leads")]

    assert pages == [[1, 2], [3, 4], [5]]
    assert len(amo.calls) == 4


def test_paging_stops_without_next_link(amo, gateway):
    amo.get(f"{HOST}/api/v4/leads", json=fixtures.leads_page([1], 1, False), headers=HAL)
    assert [len(page) for page in gateway.iter_pages("/api/v4/leads", "leads")] == [1]
    assert len(amo.calls) == 1


def test_paging_generator_holds_one_page_at_a_time(amo, gateway):
    amo.get(f"{HOST}/api/v4/leads", json=fixtures.leads_page([1], 1, True), headers=HAL)
    pages = gateway.iter_pages("/api/v4/leads", "leads")
    next(pages)
    assert len(amo.calls) == 1  # page 2 is not fetched until it is asked for


def test_next_link_on_a_foreign_host_is_rebased_onto_the_account_host(amo, gateway):
    page = fixtures.leads_page([1], 1, False)
    page["_links"]["next"] = {"href": "https://evil.example.com/api/v4/leads?page=2&limit=250"}
    amo.get(f"{HOST}/api/v4/leads", json=page, headers=HAL)
    amo.get(f"{HOST}/api/v4/leads", status=204)
    list(gateway.iter_pages("/api/v4/leads", "leads"))
    assert all(call.request.url.startswith(HOST) for call in amo.calls)


def test_empty_list_204_is_an_empty_result(amo, gateway):
    amo.get(f"{HOST}/api/v4/leads", status=204)
    assert gateway.get("/api/v4/leads") is None
    assert list(gateway.iter_pages("/api/v4/leads", "leads")) == []


def test_429_with_retry_after_cools_the_limiter_down_that_long_then_succeeds(amo, gateway, sleeps):
    amo.get(f"{HOST}/api/v4/account", status=429, headers={"Retry-After": "1"}, body="Too Many Requests")
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    assert gateway.get("/api/v4/account")["id"] == fixtures.ACCOUNT_ID
    assert gateway.limiter.rate_limits == [1.0]  # the limiter waits, for every process
    assert sleeps == []  # and the request does not wait again on top
    assert gateway.limiter.successes == 1


def test_amocrms_html_429_without_retry_after_is_a_cool_down_of_the_limiter(amo, gateway, sleeps):
    amo.get(f"{HOST}/api/v4/account", status=429, body=HTML_429, headers={"Content-Type": "text/html"})
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    gateway.get("/api/v4/account")
    assert gateway.limiter.rate_limits == [None]  # no Retry-After: the limiter's growing cool-down
    assert sleeps == []


def test_a_429_is_retried_at_most_twice_each_one_cooling_down(amo, gateway):
    """Regression (issue 24 item 3): one request went out 6 times in ~7.7 s at 429s."""
    amo.get(f"{HOST}/api/v4/account", status=429, body=HTML_429, headers={"Content-Type": "text/html"})
    with pytest.raises(AmoRateLimited):
        gateway.get("/api/v4/account")
    assert len(amo.calls) == 3
    assert gateway.limiter.rate_limits == [None, None, None]


@pytest.mark.parametrize(
    "header,seconds",
    [
        ("1", 1.0),
        ("120", 120.0),
        ("300", 120.0),  # plausible but long: bounded
        ("99999999999", None),  # absurd: ignored (it stopped every process for good)
        ("inf", None),  # non-finite: ignored (OverflowError, 500 on every route)
        ("1e300", None),
        ("nan", None),
        ("-5", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),  # a date far ahead: ignored
        ("not a date", None),
    ],
)
def test_retry_after_is_bounded_and_absurd_values_are_ignored(header, seconds):
    response = requests.Response()
    response.status_code, response.headers["Retry-After"] = 429, header
    assert retry_after_seconds(response) == seconds


def test_503_twice_then_success(amo, gateway, sleeps):
    amo.get(f"{HOST}/api/v4/account", status=503)
    amo.get(f"{HOST}/api/v4/account", status=503)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    assert gateway.get("/api/v4/account")["subdomain"] == fixtures.SUBDOMAIN
    assert len(amo.calls) == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential


def test_persistent_503_gives_up_with_unavailable(amo, sleeps):
    gateway = AmoClient(
        HOST, tokens=FixedToken(), limiter=NoLimit(), sleep=sleeps.append, retry=RetryPolicy(max_attempts=3)
    )
    amo.get(f"{HOST}/api/v4/account", status=503)
    with pytest.raises(AmoUnavailable):
        gateway.get("/api/v4/account")
    assert len(amo.calls) == 3


def test_persistent_429_gives_up_with_rate_limited(amo, sleeps):
    gateway = AmoClient(
        HOST, tokens=FixedToken(), limiter=NoLimit(), sleep=sleeps.append, retry=RetryPolicy(max_attempts=2)
    )
    amo.get(f"{HOST}/api/v4/account", status=429)
    with pytest.raises(AmoRateLimited):
        gateway.get("/api/v4/account")


def test_get_timeout_is_retried(amo, gateway):
    amo.get(f"{HOST}/api/v4/account", body=requests.ReadTimeout("read timed out"))
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    assert gateway.get("/api/v4/account")["id"] == fixtures.ACCOUNT_ID


def test_post_that_times_out_is_not_resent(amo, gateway):
    amo.post(f"{HOST}/api/v4/leads", body=requests.ReadTimeout("read timed out"))
    amo.post(f"{HOST}/api/v4/leads", json={"_embedded": {"leads": [{"id": 1}]}}, headers=HAL)

    with pytest.raises(AmoUnavailable, match="not re-sent"):
        gateway.post("/api/v4/leads", [{"name": "x"}])
    assert len(amo.calls) == 1


@pytest.mark.parametrize(
    "broken",
    [
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(12 bytes read)"),
        requests.exceptions.ContentDecodingError("Received response with content-encoding: gzip, but failed"),
    ],
    ids=["cut-mid-body", "undecodable"],
)
def test_a_write_whose_answer_broke_off_is_not_resent_and_its_outcome_is_unknown(amo, gateway, broken):
    """Regression (fault matrix): a body cut mid-transfer escaped as a raw requests error (500)."""
    amo.post(f"{HOST}/api/v4/leads", body=broken)
    amo.post(f"{HOST}/api/v4/leads", json={"_embedded": {"leads": [{"id": 1}]}}, headers=HAL)

    with pytest.raises(AmoUnavailable, match="broken off") as raised:
        gateway.post("/api/v4/leads", [{"name": "x"}])
    assert raised.value.outcome_unknown and len(amo.calls) == 1


def test_a_read_whose_answer_broke_off_is_asked_again(amo, gateway):
    amo.get(f"{HOST}/api/v4/account", body=requests.exceptions.ChunkedEncodingError("Connection broken"))
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    assert gateway.get("/api/v4/account")["id"] == fixtures.ACCOUNT_ID


SHORT_PAGE = '{"_page":1,"_links":{},"_embedded":{"leads":[{"id":1,"na'  # stops half-way, no length to show it


def test_a_page_whose_body_stops_half_way_is_asked_again_never_taken_for_the_end(amo, gateway):
    amo.get(f"{HOST}/api/v4/leads", body=SHORT_PAGE, headers=HAL)
    amo.get(f"{HOST}/api/v4/leads", json={"_embedded": {"leads": [{"id": 1}]}}, headers=HAL)
    assert gateway.get("/api/v4/leads")["_embedded"]["leads"] == [{"id": 1}]
    assert len(amo.calls) == 2


def test_an_entity_answered_by_a_page_that_is_not_json_is_never_taken_for_gone(amo, gateway):
    """A delete is confirmed by a read that finds nothing: a proxy's 200 page must not be that."""
    for _ in range(gateway.retry.max_attempts):
        amo.get(f"{HOST}/api/v4/contacts/5", body="<html><body>Bad gateway</body></html>", content_type="text/html")
    with pytest.raises(AmoUnavailable, match="not JSON"):
        gateway.get_one("/api/v4/contacts/5")


def test_a_write_whose_body_stops_half_way_is_not_resent_and_its_outcome_is_unknown(amo, gateway):
    amo.post(f"{HOST}/api/v4/leads", body='{"_embedded":{"leads":[{"id":', headers=HAL)
    amo.post(f"{HOST}/api/v4/leads", json={"_embedded": {"leads": [{"id": 1}]}}, headers=HAL)
    with pytest.raises(AmoUnavailable) as raised:
        gateway.post("/api/v4/leads", [{"name": "x"}])
    assert raised.value.outcome_unknown and len(amo.calls) == 1


def test_a_created_answer_without_the_new_id_is_an_unknown_outcome_not_a_failure(amo, gateway):
    """Regression (issue 23): a 2xx without an id raised a plain error, the Idempotency-Key was
    released and the caller's retry created a second lead."""
    amo.post(f"{HOST}/api/v4/leads", json={"_embedded": {"leads": []}}, headers=HAL)
    with pytest.raises(AmoUnavailable) as raised:
        Leads(gateway).create({"name": "x"})
    assert raised.value.outcome_unknown


def test_post_after_503_is_not_resent(amo, gateway):
    amo.post(f"{HOST}/api/v4/leads", status=503)
    with pytest.raises(AmoUnavailable):
        gateway.post("/api/v4/leads", [{"name": "x"}])
    assert len(amo.calls) == 1


def test_post_refused_with_429_is_resent(amo, gateway):
    amo.post(f"{HOST}/api/v4/leads", status=429)
    amo.post(f"{HOST}/api/v4/leads", json={"_embedded": {"leads": [{"id": 7, "request_id": "0"}]}}, headers=HAL)
    assert gateway.post("/api/v4/leads", [{"name": "x"}])["_embedded"]["leads"][0]["id"] == 7
    assert len(amo.calls) == 2


def test_post_whose_connection_could_not_open_is_resent(amo, gateway):
    refused = requests.ConnectionError(__import__("urllib3").exceptions.NewConnectionError(None, "Connection refused"))
    amo.post(f"{HOST}/api/v4/leads", body=refused)
    amo.post(f"{HOST}/api/v4/leads", json={"_embedded": {"leads": [{"id": 8}]}}, headers=HAL)
    assert gateway.post("/api/v4/leads", [{"name": "x"}])["_embedded"]["leads"][0]["id"] == 8


def test_403_html_page_is_blocked_not_auth(amo, gateway):
    amo.get(f"{HOST}/api/v4/leads", status=403, body=fixtures.BLOCKED_HTML, headers={"Content-Type": "text/html"})
    with pytest.raises(AmoBlocked, match="blocked"):
        gateway.get("/api/v4/leads")
    assert gateway.tokens.refreshes == 0
    assert len(amo.calls) == 1
    assert gateway.limiter.blocked == 300.0 and gateway.limiter.successes == 0  # held for everyone


def test_exchange_api_keys_429_is_its_own_quota_not_retried_and_cools_nobody_down(amo, gateway):
    """Regression (issue 24 item 4): amoCRM allows one exchange per 5 minutes per user and
    integration (reference §1.7); its 429 was retried and paused the whole deployment."""
    amo.post(f"{HOST}/oauth2/exchange_api_key", status=429, body=HTML_429, headers={"Content-Type": "text/html"})
    oauth = OAuth(gateway, lambda: OAuthCredentials("client-id", "client-secret", "https://service.example.com/cb"))
    with pytest.raises(AmoRateLimited, match="try again in 5 minutes"):
        oauth.exchange_api_key("manager@example.com", "api-key", "state-1")
    assert len(amo.calls) == 1
    assert gateway.limiter.rate_limits == []


def test_403_json_is_forbidden(amo, gateway):
    amo.get(
        f"{HOST}/api/v4/users",
        status=403,
        headers=PROBLEM,
        json={"title": "Forbidden", "type": "https://httpstatus.es/403", "status": 403, "detail": "Access denied"},
    )
    with pytest.raises(AmoForbidden, match="Access denied"):
        gateway.get("/api/v4/users")


def test_400_carries_validation_errors(amo, gateway):
    amo.post(f"{HOST}/api/v4/leads", status=400, json=fixtures.VALIDATION, headers=PROBLEM)
    with pytest.raises(AmoValidationError) as raised:
        gateway.post("/api/v4/leads", [{"name": "x"}])
    assert raised.value.validation_errors[0]["errors"][0]["code"] == "NotSupportedChoice"


def test_404_is_not_found(amo, gateway):
    amo.get(
        f"{HOST}/api/v4/leads/pipelines/1",
        status=404,
        headers=PROBLEM,
        json={"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "Pipeline not found"},
    )
    with pytest.raises(AmoNotFound, match="Pipeline not found"):
        gateway.get("/api/v4/leads/pipelines/1")


def test_401_refreshes_once_and_retries_with_the_new_token(amo, gateway):
    amo.get(f"{HOST}/api/v4/account", status=401, json=fixtures.UNAUTHORIZED, headers=PROBLEM)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    gateway.get("/api/v4/account")

    assert gateway.tokens.refreshes == 1
    assert [c.request.headers["Authorization"] for c in amo.calls] == ["Bearer access-1", "Bearer access-2"]


def test_each_admitted_attempt_is_reported_after_the_limiter_and_before_it_is_sent(amo, sleeps):
    """What PageFetcher's in-turn admission relies on: ADMITTED is called once per attempt,
    after the limiter admitted it and before it reaches amoCRM; never for OAuth requests."""
    events: list[str] = []

    class RecordingLimiter(NoLimit):
        def acquire(self, lane="interactive"):
            events.append("acquire")
            return 0.0

    answers = iter([(503, {}, "")] + [(200, HAL, json.dumps(fixtures.account_body()))] * 2)

    def sent(request):
        events.append("sent")
        return next(answers)

    amo.add_callback("GET", f"{HOST}/api/v4/account", callback=sent)
    client = AmoClient(HOST, tokens=FixedToken(), limiter=RecordingLimiter(), sleep=sleeps.append, rand=lambda: 0.5)

    def in_context():
        ADMITTED.set(lambda: events.append("admitted"))
        return client.get("/api/v4/account")

    assert contextvars.copy_context().run(in_context)["subdomain"] == fixtures.SUBDOMAIN
    assert events == ["acquire", "admitted", "sent"] * 2  # the 503, then its retry
    OAuth(client, lambda: None)  # type: ignore[arg-type,return-value]
    events.clear()
    contextvars.copy_context().run(in_context)
    assert events == ["acquire", "sent"]


@pytest.mark.parametrize(
    "host, platform",
    [
        ("a.amocrm.ru", "amocrm.ru"),
        ("a.amocrm.com", "kommo"),
        ("a.kommo.com", "kommo"),
        ("A.KOMMO.COM", "kommo"),
        ("a.amocrm.ru.evil.com", None),
        ("localhost", None),
        (None, None),
    ],
)
def test_the_platform_of_a_host_groups_amocrm_com_with_kommo(host, platform):
    assert domains.platform_of(host) == platform


@pytest.mark.parametrize(
    "body,content_type",
    [
        ({"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "Unknown path"}, PROBLEM),
        ({"title": "Not Found", "status": 404, "detail": "Account not found"}, PROBLEM),
        ("<html><head><title>404 Not Found</title></head><body>nginx</body></html>", {"Content-Type": "text/html"}),
        (None, {}),
    ],
    ids=["unknown-path", "account", "html", "empty"],
)
def test_a_404_that_names_no_entity_is_a_connection_error_not_a_missing_entity(amo, gateway, body, content_type):
    """Only a 204 or a 404 naming the entity means gone (reference §3.5)."""
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body or ""}
    amo.get(f"{HOST}/api/v4/leads/5", status=404, headers=content_type, **kwargs)
    with pytest.raises(AmoUnknownPath) as raised:
        Leads(gateway).get(5)
    assert isinstance(raised.value, AmoUnavailable) and not raised.value.outcome_unknown


@pytest.mark.parametrize(
    "detail", ["Lead not found", "Entity not found", "lead not found in this account", "Сделка не найдена"]
)
def test_a_404_naming_the_entity_or_a_204_means_it_does_not_exist(amo, gateway, detail):
    amo.get(
        f"{HOST}/api/v4/leads/5",
        status=404,
        json={"title": "Not Found", "status": 404, "detail": detail},
        headers=PROBLEM,
    )
    amo.get(f"{HOST}/api/v4/leads/6", status=204)
    assert Leads(gateway).get(5) is None and Leads(gateway).get(6) is None


def test_a_write_answered_by_an_unknown_path_404_was_not_applied(amo, gateway):
    amo.patch(
        f"{HOST}/api/v4/leads/5", status=404, json={"title": "Not Found", "detail": "Unknown path"}, headers=PROBLEM
    )
    with pytest.raises(AmoUnknownPath) as raised:
        gateway.patch("/api/v4/leads/5", {"price": 1})
    assert raised.value.outcome_unknown is False  # the caller may send it again under the same key


def test_a_token_from_a_server_whose_clock_is_off_expires_by_our_clock(amo, gateway):
    """The expiry is compared with this process's clock: amoCRM's `server_time` an hour behind
    (or ahead) must not make the token look expired at once (or valid an hour too long)."""
    oauth = OAuth(gateway, lambda: OAuthCredentials("client-id", "client-secret", "https://service.example.com/cb"))
    for skew in (-3600, 3600):
        body = {**fixtures.token_body(expires_in=86400), "server_time": int(time.time()) + skew}
        amo.post(f"{HOST}/oauth2/access_token", json=body)
        before = time.time()
        pair = oauth.refresh("a-refresh-token")
        assert before + 86400 - 1 <= pair.expires_at <= time.time() + 86400


def test_a_read_answered_500_is_asked_again_a_write_is_not(amo, gateway):
    amo.get(f"{HOST}/api/v4/account", status=500)
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    assert gateway.get("/api/v4/account")["id"] == fixtures.ACCOUNT_ID
    amo.post(f"{HOST}/api/v4/leads", status=500)
    with pytest.raises(AmoUnavailable) as raised:
        gateway.post("/api/v4/leads", [{"name": "x"}])
    assert raised.value.outcome_unknown and len(amo.calls) == 3
    for _ in range(3):
        amo.get(f"{HOST}/api/v4/leads/5", status=500)
    with pytest.raises(AmoUnavailable):
        gateway.get("/api/v4/leads/5")
    assert len(amo.calls) == 5  # a 500 that comes back is asked once more, not max_attempts times
