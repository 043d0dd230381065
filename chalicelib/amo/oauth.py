"""amoCRM's OAuth 2.0 endpoints (reference §1): code exchange, refresh, API-key exchange.

Calls go to the configured account host, never to the `referer` a callback carries: the
client secret must not be sent to a host named in a query parameter. The credentials are
read on every call, so a rotated secret is picked up without a restart.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.amo.client import AmoClient, Timeouts
from chalicelib.amo.errors import AmoAuthError, AmoError, AmoTokenRevoked, AmoValidationError

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
        try:
            issued = int(body.get("server_time") or now or time.time())
            return cls(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_at=issued + int(body.get("expires_in") or 86400),
            )
        except (KeyError, TypeError, ValueError):
            raise AmoError("amoCRM token response lacks access_token/refresh_token") from None


def jwt_expires_at(token: str) -> float | None:
    """The `exp` claim of a JWT (amoCRM's access and long-lived tokens are JWTs), or None when
    the token is not a JWT with one. Read, never verified: amoCRM does that."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class OAuth:
    """The integration's OAuth calls on one account host (unauthenticated requests of `client`)."""

    def __init__(self, client: AmoClient, credentials: Callable[[], OAuthCredentials]):
        self.client = client
        self.credentials = credentials

    def _token_request(self, grant: dict, what: str) -> TokenPair:
        credentials = self.credentials()
        body = {
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            **grant,
            "redirect_uri": credentials.redirect_uri,
        }
        try:
            response = self.client.request(
                "POST", "/oauth2/access_token", json=body, authorized=False, timeouts=TOKEN_TIMEOUTS
            )
        except (AmoAuthError, AmoValidationError) as error:
            # 400/401 OAuthProblemJson: the code or refresh token is spent, revoked or invalid,
            # or the client credentials are wrong. Either way a person must re-authorize.
            raise AmoTokenRevoked(f"{what} rejected by amoCRM: {error}", error.status, error.detail) from None
        if not isinstance(response, dict):
            raise AmoError(f"{what}: amoCRM answered without a token body")
        return TokenPair.from_response(response)

    def exchange_code(self, code: str) -> TokenPair:
        return self._token_request({"grant_type": "authorization_code", "code": code}, "authorization code exchange")

    def refresh(self, refresh_token: str) -> TokenPair:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}, "token refresh")

    def exchange_api_key(self, login: str, api_key: str, state: str) -> None:
        """Ask amoCRM to deliver an authorization code to the redirect URI (answer: 202, no body)."""
        credentials = self.credentials()
        self.client.request(
            "POST",
            "/oauth2/exchange_api_key",
            authorized=False,
            timeouts=TOKEN_TIMEOUTS,
            json={
                "login": login,
                "api_key": api_key,
                "client_uuid": credentials.client_id,
                "client_secret": credentials.client_secret,
                "state": state,
            },
        )


class StaticToken:
    """A TokenSource for one known access token (e.g. checking a freshly exchanged code)."""

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise AmoAuthError("amoCRM rejected the newly issued access token", 401)
