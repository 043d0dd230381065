"""HTTP transport to amoCRM API v4: bearer auth, pacing, retries, 204s, HAL paging, typed errors.

Knows amoCRM's wire formats and nothing of DynamoDB: the access token comes from a
`TokenSource` (the tokens service implements it).

Retry rules:
- 429, 502/503/504, timeouts and connection failures are retried with capped exponential
  backoff and jitter; a Retry-After header is honoured (and pauses the shared limiter).
- A write (POST/PATCH) is re-sent only when amoCRM certainly did not process it: after a
  429, or when the connection could not even be opened. After a read timeout, a dropped
  connection or a 5xx the write may have landed, so it is never re-sent: AmoUnavailable
  tells the caller the outcome is unknown.
- A 401 triggers exactly one token refresh and one retry.
"""
from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from chalicelib.amo.errors import (
    AmoAuthError,
    AmoBlocked,
    AmoError,
    AmoForbidden,
    AmoNotFound,
    AmoRateLimited,
    AmoUnavailable,
    AmoValidationError,
)
from chalicelib.amo.ratelimit import RateLimiter

log = logging.getLogger(__name__)

PAGE_LIMIT = 250
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class TokenSource(Protocol):
    def access_token(self) -> str: ...

    def refresh_after_unauthorized(self, rejected_token: str) -> str: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 4.0
    max_retry_after: float = 30.0

    def backoff(self, attempt: int, rand: Callable[[], float]) -> float:
        """Equal jitter: half the capped exponential delay, plus a random share of the other half."""
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return delay / 2 + rand() * delay / 2


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


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def _problem_message(body: Any, fallback: str) -> str:
    if not isinstance(body, dict):
        return fallback
    parts = [str(body[key]) for key in ("title", "detail", "hint") if body.get(key)]
    return ": ".join(parts) or fallback


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def raise_for_status(response: requests.Response, what: str) -> None:
    """Turn an amoCRM error response into the matching typed exception."""
    status = response.status_code
    if status < 400:
        return
    body = _json_or_none(response)
    message = f"amoCRM {what} failed ({status}): " + _problem_message(body, response.reason or "error")
    if status == 400:
        errors = body.get("validation-errors") if isinstance(body, dict) else None
        raise AmoValidationError(message, status, errors)
    if status == 401:
        raise AmoAuthError(message, status, body)
    if status == 403:
        if body is None and _looks_like_html(response):
            raise AmoBlocked(f"amoCRM {what} failed (403): the account or IP is blocked by amoCRM "
                             "(HTML 403 page); contact amoCRM support", status)
        raise AmoForbidden(message, status, body)
    if status == 404:
        raise AmoNotFound(message, status, body)
    if status == 429:
        raise AmoRateLimited(message, status, body)
    if status >= 500:
        raise AmoUnavailable(message, status, body)
    raise AmoError(message, status, body)


class AmoClient:
    def __init__(self, base_url: str, tokens: TokenSource | None = None, *,
                 session: requests.Session | None = None,
                 limiter: RateLimiter | None = None,
                 retry: RetryPolicy = RetryPolicy(),
                 timeouts: Timeouts = Timeouts(),
                 sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random):
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.session = session or new_session()
        self.limiter = limiter or RateLimiter()
        self.retry = retry
        self.timeouts = timeouts
        self._sleep = sleep
        self._rand = rand
        self._local = threading.local()

    def using(self, tokens: TokenSource) -> "AmoClient":
        """The same account, session and rate limiter, authorized by another token source."""
        return AmoClient(self.base_url, tokens, session=self.session, limiter=self.limiter, retry=self.retry,
                         timeouts=self.timeouts, sleep=self._sleep, rand=self._rand)

    @property
    def last_latency(self) -> float:
        """Seconds this thread's last request took on the wire (limiter waits excluded)."""
        return getattr(self._local, "latency", 0.0)

    # -- public API -------------------------------------------------------------------------

    def get(self, path: str, params: dict | list | None = None) -> Any:
        """GET a resource; None when amoCRM answers 204 (empty list / no such page)."""
        return self.request("GET", path, params=params)

    def get_one(self, path: str, params: dict | None = None) -> dict | None:
        """One entity by id, or None when it does not exist: amoCRM answers that with 204 or
        with 404 (reference §5.2), and both mean the same to a caller."""
        try:
            body = self.get(path, params)
        except AmoNotFound:
            return None
        return body if isinstance(body, dict) and body else None

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, json=body)

    def request(self, method: str, path: str, *, params: dict | list | None = None,
                json: Any = None, authorized: bool = True,
                timeouts: Timeouts | None = None) -> Any:
        """Send one logical request (with retries); return the decoded JSON body, or None."""
        url = self._url(path, params)
        headers = {"Accept": "application/hal+json, application/json"}
        token = None
        if authorized:
            token = self._tokens().access_token()
            headers["Authorization"] = f"Bearer {token}"
        response = self._send(method, url, json, headers, timeouts or self.timeouts)
        if response.status_code == 401 and authorized:
            token = self._tokens().refresh_after_unauthorized(token)
            headers["Authorization"] = f"Bearer {token}"
            response = self._send(method, url, json, headers, timeouts or self.timeouts)
        raise_for_status(response, f"{method} {urlsplit(url).path}")
        if response.status_code == 204:
            return None
        return _json_or_none(response)

    def iter_pages(self, path: str, embedded_key: str,
                   params: dict | None = None) -> Iterator[list[dict]]:
        """Yield one page of `_embedded[embedded_key]` at a time, following `_links.next`.

        Pages are requested with limit=250 and paging stops on a 204 or when there is no
        next link. Only the current page is held in memory.
        """
        query = {"limit": PAGE_LIMIT, **(params or {})}
        url = self._url(path, query)
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            body = self.request("GET", url)
            if not body:
                return
            yield (body.get("_embedded") or {}).get(embedded_key) or []
            url = self._next_link(body)

    def get_page(self, path: str, embedded_key: str, page: int,
                 params: dict | None = None) -> tuple[list[dict], bool]:
        """One page by number: (items, has_next). Lets callers keep several pages in flight."""
        body = self.get(path, {"limit": PAGE_LIMIT, **(params or {}), "page": page})
        if not body:
            return [], False
        items = (body.get("_embedded") or {}).get(embedded_key) or []
        return items, bool(self._next_link(body))

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

    def _next_link(self, body: dict) -> str | None:
        href = (((body.get("_links") or {}).get("next") or {}).get("href"))
        return self._url(href, None) if href else None

    def _send(self, method: str, url: str, body: Any, headers: dict,
              timeouts: Timeouts) -> requests.Response:
        idempotent = method in IDEMPOTENT_METHODS
        path = urlsplit(url).path
        last_error = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            self.limiter.acquire()
            sent = time.monotonic()
            try:
                response = self.session.request(method, url, json=body, headers=headers,
                                                timeout=timeouts.pair)
                self._local.latency = time.monotonic() - sent
            except requests.ConnectionError as error:
                if not (idempotent or _never_sent(error)):
                    raise AmoUnavailable(f"amoCRM {method} {path}: connection lost after sending; "
                                         "not re-sent because it may have been applied") from None
                last_error = f"connection failed ({type(error).__name__})"
                delay = self.retry.backoff(attempt, self._rand)
            except requests.Timeout:
                if not idempotent:
                    raise AmoUnavailable(f"amoCRM {method} {path}: no answer within "
                                         f"{timeouts.read:g}s; not re-sent because it may have "
                                         "been applied") from None
                last_error = "timed out"
                delay = self.retry.backoff(attempt, self._rand)
            else:
                status = response.status_code
                if status not in RETRYABLE_STATUSES or (status != 429 and not idempotent):
                    return response
                last_error = f"HTTP {status}"
                retry_after = _retry_after_seconds(response)
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    return response
                delay = retry_after if retry_after is not None else self.retry.backoff(attempt, self._rand)
                if status == 429:
                    self.limiter.pause(delay)
                if attempt == self.retry.max_attempts:
                    return response
            log.warning("amoCRM %s %s: %s, retry %d in %.2fs", method, path, last_error, attempt, delay)
            if attempt < self.retry.max_attempts:
                self._sleep(delay)
        raise AmoUnavailable(f"amoCRM {method} {path}: {last_error} after "
                             f"{self.retry.max_attempts} attempts")
