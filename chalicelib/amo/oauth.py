"""amoCRM's OAuth 2.0 endpoints (reference §1): code exchange, refresh, API-key exchange, and
the domain lookup that finds a renamed account.

Calls go to the account's host (see client.AccountHost), never to the `referer` a callback
carries: the client secret must not be sent to a host named in a query parameter. The
credentials are read on every call, so a rotated secret is picked up without a restart.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.amo import domains
from chalicelib.amo.client import AccountHost, AmoClient, Timeouts
from chalicelib.amo.errors import (
    AmoAuthError,
    AmoError,
    AmoNotFound,
    AmoRateLimited,
    AmoTokenRevoked,
    AmoUnknownPath,
    AmoValidationError,
)

log = logging.getLogger(__name__)

TOKEN_TIMEOUTS = Timeouts(connect=5.0, read=15.0)


@dataclass(frozen=True)
class OAuthCredentials:
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: int

    @classmethod
    def from_response(cls, body: dict, now: float | None = None) -> TokenPair:
        """`expires_at` on this process's clock: `now` (when the request left) + `expires_in`.
        Not amoCRM's `server_time`: its clock may be off from ours, and the expiry is compared
        with ours (a server minutes behind would have every call refresh, one ahead none)."""
        try:
            issued = int(now if now is not None else time.time())
            return cls(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_at=issued + int(body.get("expires_in") or 86400),
            )
        except (KeyError, TypeError, ValueError):
            raise AmoError("amoCRM token response lacks access_token/refresh_token") from None


@dataclass(frozen=True)
class AccountDomain:
    """Where amoCRM says the account lives now (`/oauth2/account/current/subdomain`, §1.6)."""

    id: int
    subdomain: str
    domain: str

    @classmethod
    def from_response(cls, body: object) -> AccountDomain:
        """`{id, subdomain, domain, top_level_domain}`; `domain` is the full host
        (`<sub>.amocrm.ru`), and a bare `amocrm.ru` is completed with the subdomain."""
        data = body if isinstance(body, dict) else {}
        account_id, subdomain, domain = data.get("id"), data.get("subdomain"), data.get("domain")
        if isinstance(account_id, bool) or not isinstance(account_id, int) or not isinstance(subdomain, str):
            raise AmoError("amoCRM's account domain answer lacks id or subdomain")
        host = str(domain or "").lower()
        if not domains.is_amo_host(host):
            host = f"{subdomain.lower()}.{host}"
        if domains.subdomain_of(host) != subdomain.lower():
            raise AmoError("amoCRM's account domain answer names a host that is not amoCRM's")
        return cls(account_id, subdomain.lower(), host)


@dataclass(frozen=True)
class Refreshed:
    """A refreshed pair, and the account's new domain when the refresh found it renamed."""

    pair: TokenPair
    moved_to: AccountDomain | None = None


def jwt_claims(token: str) -> dict:
    """The claims of a JWT (amoCRM's access and long-lived tokens are JWTs), or {} when the
    token is not one. Read, never verified: amoCRM does that."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def jwt_expires_at(token: str) -> float | None:
    """The `exp` claim of a JWT, or None when the token has none."""
    exp = jwt_claims(token).get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def jwt_api_domain(token: str | None) -> str | None:
    """The `api_domain` claim (tokens issued after 2024-08-21): the shared API host, §1.6."""
    domain = jwt_claims(token or "").get("api_domain")
    return domain if isinstance(domain, str) and domain else None


class OAuth:
    """The integration's OAuth calls on one account host (unauthenticated requests of `client`)."""

    def __init__(self, client: AmoClient, credentials: Callable[[], OAuthCredentials]):
        self.client = client
        self.client.reports_admissions = False  # a token refresh is not the page request that waits on it
        self.credentials = credentials

    def _token_request(self, grant: dict, what: str) -> TokenPair:
        credentials = self.credentials()
        body = {
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            **grant,
            "redirect_uri": credentials.redirect_uri,
        }
        sent = time.time()  # the token's lifetime runs from no later than this, on our clock
        try:
            response = self.client.request(
                "POST", path="/oauth2/access_token", json=body, authorized=False, timeouts=TOKEN_TIMEOUTS
            )
        except (AmoAuthError, AmoValidationError, AmoNotFound, AmoUnknownPath) as error:
            # 400/401 OAuthProblemJson: the code or refresh token is spent, revoked or invalid,
            # or the client credentials are wrong. Either way a person must re-authorize.
            # 404: no account on this host (any more): a renamed account, see refresh_following_rename.
            raise AmoTokenRevoked(f"{what} rejected by amoCRM: {error}", error.status, error.detail) from None
        if not isinstance(response, dict):
            raise AmoError(f"{what}: amoCRM answered without a token body")
        return TokenPair.from_response(response, now=sent)

    def exchange_code(self, code: str) -> TokenPair:
        return self._token_request({"grant_type": "authorization_code", "code": code}, "authorization code exchange")

    def refresh(self, refresh_token: str) -> TokenPair:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}, "token refresh")

    def account_domain(self, refresh_token: str, *, api_domain: str | None) -> AccountDomain | None:
        """Ask the shared API host (`api_domain`, never the account host) where the refresh
        token's account lives now (reference §1.6); None without a usable `api_domain`."""
        shared = domains.shared_api_host(self.client.host.configured, api_domain)
        if shared is None:
            log.warning("the access token names no shared API host (api_domain): a rename cannot be followed")
            return None
        base_url, headers = shared
        body = self.client.using(host=AccountHost(base_url)).request(
            "GET",
            path="/oauth2/account/current/subdomain",
            authorized=False,
            timeouts=TOKEN_TIMEOUTS,
            headers={**headers, "X-Refresh-Token": refresh_token},
        )
        return AccountDomain.from_response(body)

    def refresh_following_rename(
        self,
        refresh_token: str,
        *,
        account_id: int | None,
        domain: str | None,
        api_domain: str | None,
        before_next_call: Callable[[], None] = lambda: None,
    ) -> Refreshed:
        """Refresh; when amoCRM answers 401/404 because the account was renamed, learn its new
        domain from the shared API host (`api_domain`, the access token's claim), switch to it
        and refresh there once (as the official SDK does, reference §1.6).

        The switch happens only for the same account (`account_id`, when known) and a domain
        that differs from the one we hold (`domain`); otherwise the first refusal stands. The
        retry goes to `<new domain>` when the configured host is amoCRM's own, else it stays on
        the configured host (a sandbox): see domains.base_url_for.

        `before_next_call` runs before the lookup and before the second refresh: the token store
        extends its refresh lease there (and raises if it has lost it), so the lease covers one
        token call at a time, never the three a rename takes together.
        """
        try:
            return Refreshed(self.refresh(refresh_token))
        except AmoTokenRevoked as refused:
            moved = None
            if refused.status in (401, 404):
                before_next_call()
                moved = self._renamed(refresh_token, account_id=account_id, domain=domain, api_domain=api_domain)
            if moved is None:
                raise
        host = AccountHost(self.client.host.configured)
        host.follow(moved.domain)
        before_next_call()
        pair = OAuth(self.client.using(host=host), self.credentials).refresh(refresh_token)
        return Refreshed(pair, moved)

    def _renamed(
        self, refresh_token: str, *, account_id: int | None, domain: str | None, api_domain: str | None
    ) -> AccountDomain | None:
        try:
            moved = self.account_domain(refresh_token, api_domain=api_domain)
        except AmoError as error:  # a revoked token is refused here too: nothing was renamed
            log.info("amoCRM account domain lookup failed (%s): not a rename", error.status)
            return None
        if moved is None:
            return None
        if account_id and moved.id != account_id:
            log.error("amoCRM's domain lookup names account %s, not the connected %s", moved.id, account_id)
            return None
        if moved.domain == (domain or "").lower():
            return None
        return moved

    def exchange_api_key(self, login: str, api_key: str, state: str) -> None:
        """Ask amoCRM to deliver an authorization code to the redirect URI (answer: 202, no body).
        amoCRM allows this once per 5 minutes per user and integration (reference §1.7): its 429
        is that quota, not the API's rate, so it is not retried and cools nobody down."""
        credentials = self.credentials()
        try:
            self.client.request(
                "POST",
                path="/oauth2/exchange_api_key",
                authorized=False,
                timeouts=TOKEN_TIMEOUTS,
                own_quota=True,
                json={
                    "login": login,
                    "api_key": api_key,
                    "client_uuid": credentials.client_id,
                    "client_secret": credentials.client_secret,
                    "state": state,
                },
            )
        except AmoRateLimited:
            raise AmoRateLimited(
                "amoCRM accepts one API-key exchange per 5 minutes for a user and integration; try again in 5 minutes",
                429,
            ) from None


class StaticToken:
    """A TokenSource for one known access token (e.g. checking a freshly exchanged code)."""

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise AmoAuthError("amoCRM rejected the newly issued access token", 401)
