"""The objects the edge (app.py, cli.py) hands to services, built once per warm Lambda.

`amo()` is the amoCRM API of the configured account: one HTTP session, one request budget,
one host (AMO_BASE_URL's, or the account's stored domain after a rename) and one token store
shared by every thread of the process (and, through the budget's table,
by every process of the deployment). Services never import this module: they receive what
they need as arguments, so a test or another caller can hand them anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib import settings
from chalicelib.amo.api import AmoApi
from chalicelib.amo.budget import Limiter, RateLimiter, SharedBudget
from chalicelib.amo.client import AccountHost, AmoClient
from chalicelib.amo.oauth import OAuth, OAuthCredentials
from chalicelib.memo import memoize
from chalicelib.services.budget_store import DynamoBudgetStore
from chalicelib.services.token_store import TOKEN_RETRY, TokenStore, load_token


@dataclass(frozen=True)
class ConnectionSettings:
    """What the amoCRM connection is built from; another value builds another connection."""

    base_url: str
    rate: float
    margin: float
    budget: str
    fallback_processes: int


def _limiter(config: ConnectionSettings) -> Limiter:
    if config.budget == "shared":
        return SharedBudget(
            DynamoBudgetStore(),
            rate=config.rate,
            margin=config.margin,
            trusted_clock=settings.deployed(),  # a Lambda's clock is kept by AWS's time sync
            who=settings.process_label(),
            fallback_processes=config.fallback_processes,
        )
    return RateLimiter(config.rate, margin=config.margin)


def oauth_credentials() -> OAuthCredentials:
    """The integration's OAuth credentials, read anew on every call (a rotated secret applies at once)."""
    return OAuthCredentials(
        client_id=settings.amo_client_id(),
        client_secret=settings.amo_client_secret(),
        redirect_uri=settings.amo_redirect_uri(),
    )


def _stored_domain() -> str | None:
    token = load_token()
    return token.domain if token else None


@memoize()
def _connection(config: ConnectionSettings) -> tuple[AmoApi, TokenStore]:
    # one host for both: after a rename, API and OAuth calls move together
    host = AccountHost(config.base_url, _stored_domain)
    transport = AmoClient(host, limiter=_limiter(config))
    oauth = OAuth(
        AmoClient(host, session=transport.session, limiter=transport.limiter, retry=TOKEN_RETRY),
        oauth_credentials,
    )
    store = TokenStore(oauth)
    return AmoApi(transport.using(store), oauth), store


def _current() -> tuple[AmoApi, TokenStore]:
    return _connection(
        ConnectionSettings(
            base_url=settings.amo_base_url(),
            rate=settings.amo_rate_limit_per_second(),
            margin=settings.amo_rate_margin_seconds(),
            budget=settings.amo_rate_budget(),
            fallback_processes=settings.amo_fallback_processes(),
        )
    )


def amo() -> AmoApi:
    """The amoCRM API of the connected account (on its stored domain), authorized by the stored tokens."""
    return _current()[0]


def token_store() -> TokenStore:
    return _current()[1]
