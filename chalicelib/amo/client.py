"""HTTP transport to amoCRM API v4: bearer auth, admission by a limiter, retries, 204s, typed errors.

Knows amoCRM's wire formats and nothing of DynamoDB: the access token comes from a
`TokenSource` (the token store implements it) and every request start is admitted by a
`Limiter` (see budget/). What is retried, and when, is decided by `RetryPolicy`
(retry.py); a 401 triggers exactly one token refresh and one more send.

amoCRM's 429 is an HTML page without Retry-After, and repeated ones end in an account-wide
HTML 403 block (reference §3.4): a 429 is told to the limiter, which cools the whole
deployment down, and is retried at most MAX_429_RETRIES times, after the cool-down; a block
page is told to the limiter, which holds it for everyone, and is never retried.

Resources (leads.py, contacts.py, …) build on `get`, `get_one`, `post`, `patch`, `delete`
and `iter_pages`; nothing outside amo/ builds URLs.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from chalicelib import metrics
from chalicelib.amo import domains, problems
from chalicelib.amo.budget import ADMITTED, INTERACTIVE, Limiter
from chalicelib.amo.clock import amo_clock
from chalicelib.amo.errors import (
    AmoAuthError,
    AmoBlocked,
    AmoError,
    AmoForbidden,
    AmoNotFound,
    AmoNotModified,
    AmoPaymentRequired,
    AmoRateLimited,
    AmoUnavailable,
    AmoUnknownPath,
    AmoValidationError,
)
from chalicelib.amo.pages import embedded, next_href
from chalicelib.amo.retry import MAX_429_RETRIES, Attempt, RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)

PAGE_LIMIT = 250
BLOCK_SECONDS = 300.0  # after amoCRM's block page, nobody asks again for this long (then one probe)


class TokenSource(Protocol):
    def access_token(self) -> str: ...

    def refresh_after_unauthorized(self, rejected_token: str) -> str: ...


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 20.0

    @property
    def pair(self) -> tuple[float, float]:
        return (self.connect, self.read)


def new_session(pool_size: int = 16) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "amocrm-integration-service/1.0"
    return session


def _never_sent(error: requests.ConnectionError) -> bool:
    """True when the connection failed before any byte of the request left (safe to re-send)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


_DECODED = "_amo_decoded"  # a 2xx body decoded once, when its answer was checked (`_unreadable`)


def _json_or_none(response: requests.Response) -> Any:
    if hasattr(response, _DECODED):
        return getattr(response, _DECODED)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _unreadable(response: requests.Response) -> bool:
    """A 2xx whose body is not JSON: cut off mid-transfer where no Content-Length showed it, or a
    proxy's page. Never "nothing here": only a 204 (or no body at all) says that (reference §3.3);
    taking it for an empty page would end a sync early or confirm a delete amoCRM never made."""
    if not 200 <= response.status_code < 300 or response.status_code == 204 or not response.content:
        return False
    try:
        setattr(response, _DECODED, response.json())
    except ValueError:
        return True
    return False


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def is_block_page(response: requests.Response | None) -> bool:
    """amoCRM's account/IP block: a 403 with nginx's HTML page instead of problem+json (§3.4)."""
    return (
        response is not None
        and response.status_code == 403
        and _json_or_none(response) is None
        and _looks_like_html(response)
    )


def raise_for_status(response: requests.Response, what: str) -> None:
    """Turn an amoCRM error response into the matching typed exception."""
    status = response.status_code
    if status < 300 or status == 304:
        return
    if status < 400:  # a redirect would re-send the token or the client secret elsewhere
        raise AmoError(f"amoCRM {what} answered a redirect ({status}); redirects are not followed", status)
    body = _json_or_none(response)
    message = f"amoCRM {what} failed ({status}): " + problems.describe(body, response.reason or "error")
    if status == 400:
        errors = body.get("validation-errors") if isinstance(body, dict) else None
        raise AmoValidationError(message, status, errors)
    if status == 401:
        raise AmoAuthError(message, status, body)
    if status == 402:
        raise AmoPaymentRequired(message, status, body)
    if status == 403:
        if is_block_page(response):
            raise AmoBlocked(
                f"amoCRM {what} failed (403): the account or IP is blocked by amoCRM "
                "(HTML 403 page); contact amoCRM support",
                status,
            )
        raise AmoForbidden(message, status, body)
    if status == 404:  # only a 404 that names the entity says it is gone (reference §3.5)
        if problems.names_entity(body):
            raise AmoNotFound(message, status, body)
        raise AmoUnknownPath(f"{message} (a 404 naming no entity: not taken as gone)", status=status, detail=body)
    if status == 429:
        raise AmoRateLimited(message, status, body)
    if status >= 500:
        raise AmoUnavailable(message, status=status, detail=body)
    raise AmoError(message, status, body)


class AccountHost:
    """Where one account's API answers: AMO_BASE_URL until the stored tokens name the account's
    current domain (it changes when the account is renamed). Every client of one connection
    shares it, so following a new domain moves them all (see domains.py for which hosts).
    `stored_domain` is asked once, on first use, so even a first unauthorized call (an OAuth
    code exchange) goes to the stored domain; the token store keeps it current after that."""

    def __init__(self, configured: str, stored_domain: Callable[[], str | None] | None = None):
        self.configured = configured.rstrip("/")
        self._stored_domain = stored_domain
        self._base_url: str | None = None if stored_domain else self.configured

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            self.follow(self._stored_domain() if self._stored_domain else None)
        return self._base_url or self.configured

    def follow(self, domain: str | None) -> None:
        self._base_url = domains.base_url_for(self.configured, domain)


class AmoClient:
    def __init__(
        self,
        base_url: str | AccountHost,
        *,
        tokens: TokenSource | None = None,
        session: requests.Session | None = None,
        limiter: Limiter,
        retry: RetryPolicy = RetryPolicy(),
        timeouts: Timeouts = Timeouts(),
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        lane: str = INTERACTIVE,
    ):
        self.host = base_url if isinstance(base_url, AccountHost) else AccountHost(base_url)
        self.lane = lane
        self.reports_admissions = True  # call ADMITTED (budget/local.py) for each attempt it admits
        self.tokens = tokens
        self.session = session or new_session()
        self.limiter = limiter
        self.retry = retry
        self.timeouts = timeouts
        self._sleep = sleep
        self._rand = rand
        self._local = threading.local()

    @property
    def base_url(self) -> str:
        return self.host.base_url

    def using(
        self, tokens: TokenSource | None = None, lane: str | None = None, host: AccountHost | None = None
    ) -> AmoClient:
        """The same account, session and limiter, authorized by another token source, admitted
        in another lane of the budget (a sync is `bulk`, everything else interactive) or sent
        to another host (a renamed account's new domain)."""
        return AmoClient(
            host or self.host,
            tokens=tokens if tokens is not None else self.tokens,
            session=self.session,
            limiter=self.limiter,
            retry=self.retry,
            timeouts=self.timeouts,
            sleep=self._sleep,
            rand=self._rand,
            lane=lane or self.lane,
        )

    @property
    def last_latency(self) -> float:
        """Seconds this thread's last request took on the wire (limiter waits excluded)."""
        return getattr(self._local, "latency", 0.0)

    # -- public API -------------------------------------------------------------------------

    def get(self, path: str, params: dict | list | None = None) -> Any:
        """GET a resource; None when amoCRM answers 204 (empty list / no such page)."""
        return self.request("GET", path=path, params=params)

    def get_one(self, path: str, params: dict | None = None, modified_since: int | None = None) -> dict | None:
        """One entity by id, or None when it does not exist: amoCRM answers that with 204 or
        with a 404 whose problem detail names the entity (reference §3.5, §5.2). Any other 404
        (an unknown path, an account not on this host) raises AmoUnknownPath: it proves nothing.

        `modified_since` (amoCRM's `updated_at` of the copy the caller holds) is sent as
        `If-Modified-Since`; amoCRM's 304 then raises `AmoNotModified` (what the caller holds
        is current), so repeated reads of unchanged data cost amoCRM nothing (reference §13)."""
        headers = {"If-Modified-Since": formatdate(modified_since, usegmt=True)} if modified_since else None
        try:
            body = self.request(
                "GET", path=path, params=params, headers=headers, not_modified=modified_since is not None
            )
        except AmoNotFound:
            return None
        return body if isinstance(body, dict) and body else None

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path=path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path=path, json=body)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path=path, json=body)

    def request(
        self,
        method: str,
        *,
        path: str,
        params: dict | list | None = None,
        json: Any = None,
        authorized: bool = True,
        timeouts: Timeouts | None = None,
        headers: dict[str, str] | None = None,
        not_modified: bool = False,
        own_quota: bool = False,
    ) -> Any:
        """Send one logical request (with retries); return the decoded JSON body, or None.
        `not_modified`: a 304 raises AmoNotModified (the request was conditional).
        `own_quota`: the endpoint counts its own calls (exchange_api_key: once per 5 minutes),
        so its 429 is neither retried nor a reason to cool the deployment down."""
        headers = {"Accept": "application/hal+json, application/json", **(headers or {})}
        token = None
        if authorized:  # first: loading the tokens tells which host the account is on now
            token = self._tokens().access_token()
            headers["Authorization"] = f"Bearer {token}"
        url = self._url(path, params)
        send = functools.partial(
            self._send,
            method,
            url=url,
            body=json,
            headers=headers,
            timeouts=timeouts or self.timeouts,
            own_quota=own_quota,
        )
        response = send()
        if response.status_code == 401 and token is not None:  # i.e. an authorized request
            token = self._tokens().refresh_after_unauthorized(token)
            headers["Authorization"] = f"Bearer {token}"
            response = send()  # `headers` carries the new token
        try:
            raise_for_status(response, f"{method} {urlsplit(url).path}")
        except AmoUnknownPath:  # a 404 applied nothing
            raise
        except AmoUnavailable as error:  # a 5xx to a write: amoCRM may have applied it anyway
            error.outcome_unknown = not self.retry.may_resend(method, Attempt(response=response))
            raise
        if response.status_code == 304 and not_modified:
            metrics.count("AmoNotModified")
            raise AmoNotModified(f"amoCRM {method} {urlsplit(url).path}: not modified")
        if response.status_code == 204:
            return None
        return _json_or_none(response)

    def iter_pages(self, path: str, key: str, params: dict | None = None) -> Iterator[list[dict]]:
        """Yield one page of `_embedded[key]` at a time, following `_links.next`.

        Pages are requested with limit=250 and paging stops on a 204 or when there is no
        next link. Only the current page is held in memory.
        """
        url: str | None = self._url(path, {"limit": PAGE_LIMIT, **(params or {})})
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            body = self.request("GET", path=url)
            if not body:
                return
            yield embedded(body, key)
            href = next_href(body)
            url = self._url(href, None) if href else None

    # -- internals --------------------------------------------------------------------------

    def _tokens(self) -> TokenSource:
        if self.tokens is None:
            raise AmoAuthError("no token source configured for an authorized amoCRM call")
        return self.tokens

    def _url(self, path: str, params: dict | list | None) -> str:
        """Absolute URL on the account host. A full URL (a HAL link) keeps only its path and
        query, so the bearer token is never sent to another host."""
        parts = urlsplit(path)
        url = self.base_url + (parts.path if parts.path.startswith("/") else "/" + parts.path)
        query = parts.query
        if params:
            encoded = urlencode(params, doseq=True)
            query = f"{query}&{encoded}" if query else encoded
        return f"{url}?{query}" if query else url

    def _attempt(self, method: str, *, url: str, body: Any, headers: dict, timeouts: Timeouts) -> Attempt:
        sent = time.monotonic()
        try:
            response = self.session.request(
                method, url, json=body, headers=headers, timeout=timeouts.pair, allow_redirects=False
            )
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as error:
            # the request arrived and the answer broke off: a write may have been applied
            return Attempt(failure=f"answer broken off mid-body ({type(error).__name__})")
        except requests.ConnectionError as error:
            return Attempt(failure=f"connection failed ({type(error).__name__})", reached_server=not _never_sent(error))
        except requests.Timeout:
            return Attempt(failure=f"no answer within {timeouts.read:g}s")
        self._local.latency = time.monotonic() - sent
        amo_clock().heard(response)
        if _unreadable(response):  # a read is retried; a write may have been applied (never re-sent)
            return Attempt(failure=f"answered {response.status_code} with a body that is not JSON (cut off?)")
        return Attempt(response=response)

    def _send(
        self, method: str, *, url: str, body: Any, headers: dict, timeouts: Timeouts, own_quota: bool
    ) -> requests.Response:
        """Send until amoCRM gives an answer worth returning, under the retry rules."""
        path = urlsplit(url).path
        number = limited = 0
        while True:
            number += 1
            try:
                self.limiter.acquire(self.lane)
            except AmoBlocked:
                metrics.count("AmoBlocked")
                raise
            admitted = ADMITTED.get() if self.reports_admissions else None
            if admitted is not None:
                admitted()
            attempt = self._attempt(method, url=url, body=body, headers=headers, timeouts=timeouts)
            metrics.count("AmoRequests")
            delay = self.retry.delay(attempt, number, self._rand) if self.retry.is_transient(attempt) else None
            if attempt.status == 429:
                metrics.count("AmoRateLimited")
                limited += 1
                if own_quota or limited > MAX_429_RETRIES:
                    delay = None
                if not own_quota:  # everyone cools down, not only this request; the next acquire waits
                    self.limiter.rate_limited(retry_after_seconds(attempt.response))
                    delay = None if delay is None else 0.0
            elif is_block_page(attempt.response):  # every process stops asking, not only this one
                metrics.count("AmoBlocked")
                self.limiter.block(BLOCK_SECONDS)
            elif attempt.response is not None and attempt.response.status_code < 500:
                self.limiter.succeeded()
            if delay is None or not self.retry.should_retry(method, attempt, number):
                return self._final(method, path=path, attempt=attempt, number=number)
            metrics.count("AmoRetries")
            log.warning(
                "amoCRM %s %s: %s, retry %d in %.2fs",
                method,
                path,
                attempt.failure or f"HTTP {attempt.status}",
                number,
                delay,
            )
            if delay:
                self._sleep(delay)

    def _final(self, method: str, *, path: str, attempt: Attempt, number: int) -> requests.Response:
        """The answer to hand back, or the error that says why there is none."""
        if attempt.response is not None:
            return attempt.response
        if not self.retry.may_resend(method, attempt):
            raise AmoUnavailable(
                f"amoCRM {method} {path}: {attempt.failure}; not re-sent because it may have been applied",
                outcome_unknown=True,
            )
        raise AmoUnavailable(f"amoCRM {method} {path}: {attempt.failure} after {number} attempts")
