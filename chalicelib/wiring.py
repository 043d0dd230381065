"""The objects the edge (app.py, cli.py) hands to services, built once per warm Lambda.

`amo()` is the amoCRM API of the configured account: one HTTP session, one limiter and one
token store shared by every thread of the process. Services never import this module: they
receive what they need as arguments, so a test or another caller can hand them anything.
"""
from __future__ import annotations

from chalicelib import settings
from chalicelib.amo.api import AmoApi
from chalicelib.amo.client import AmoClient
from chalicelib.amo.oauth import OAuth
from chalicelib.amo.ratelimit import RateLimiter
from chalicelib.amo.retry import RetryPolicy
from chalicelib.memo import memoize
from chalicelib.services.token_store import TOKEN_RETRY, TokenStore


@memoize()
def _connection(base_url: str, rate: float) -> tuple[AmoApi, TokenStore]:
    transport = AmoClient(base_url, limiter=RateLimiter(rate), retry=RetryPolicy())
    oauth = OAuth(AmoClient(base_url, session=transport.session, limiter=transport.limiter, retry=TOKEN_RETRY),
                  settings.oauth_credentials)
    store = TokenStore(oauth)
    return AmoApi(transport.using(store), oauth), store


def amo() -> AmoApi:
    """The amoCRM API of AMO_BASE_URL, authorized by the stored tokens."""
    return _connection(settings.amo_base_url(), settings.amo_rate_limit_per_second())[0]


def token_store() -> TokenStore:
    return _connection(settings.amo_base_url(), settings.amo_rate_limit_per_second())[1]
