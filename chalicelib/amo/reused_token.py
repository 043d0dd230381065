"""A token source that reuses the access token it last read, for a few seconds.

A sync sends a request every ~150 ms, and each one read the token item first (a consistent
DynamoDB read: about 4 ms of CPU and one more call on every request's path, the first
request's included). The reuse is safe because nothing about a token changes within
seconds that a request could not recover from:
- the store refreshes tokens REFRESH_BEFORE_EXPIRY_SECONDS (minutes) before they expire;
- if another process rotated the token meanwhile and amoCRM refuses the old one (401), the
  client asks `refresh_after_unauthorized`, which re-reads the item and returns the rotated
  token without refreshing again; the reused token is then replaced;
- a disconnect or a re-authorization mark is seen at most REUSE_SECONDS late.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from chalicelib.amo.client import TokenSource

REUSE_SECONDS = 5.0


class ReusedToken:
    def __init__(self, source: TokenSource, clock: Callable[[], float] = time.monotonic):
        self.source = source
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._read_at = 0.0

    def access_token(self) -> str:
        with self._lock:
            if self._token is not None and self._clock() - self._read_at < REUSE_SECONDS:
                return self._token
        token = self.source.access_token()
        self._keep(token)
        return token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        with self._lock:
            if self._token == rejected_token:
                self._token = None
        token = self.source.refresh_after_unauthorized(rejected_token)
        self._keep(token)
        return token

    def _keep(self, token: str) -> None:
        with self._lock:
            self._token, self._read_at = token, self._clock()
