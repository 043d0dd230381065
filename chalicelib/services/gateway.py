"""The process-wide amoCRM client, built once per warm Lambda from the current settings."""
from __future__ import annotations

import threading

from chalicelib import settings
from chalicelib.amo.client import AmoClient
from chalicelib.amo.oauth import OAuthCredentials
from chalicelib.amo.ratelimit import shared_limiter
from chalicelib.services import tokens

_clients: dict[tuple[str, float], AmoClient] = {}
_lock = threading.Lock()


def amo_client() -> AmoClient:
    """Authorized client for AMO_BASE_URL; one requests.Session and one rate limiter, shared."""
    base_url = settings.amo_base_url()
    rate = settings.amo_rate_limit_per_second()
    with _lock:
        client = _clients.get((base_url, rate))
        if client is None:
            client = AmoClient(base_url, tokens.stored_tokens, limiter=shared_limiter(rate))
            _clients[(base_url, rate)] = client
        return client


def oauth_credentials() -> OAuthCredentials:
    return OAuthCredentials(client_id=settings.amo_client_id(),
                            client_secret=settings.amo_client_secret(),
                            redirect_uri=settings.amo_redirect_uri())
