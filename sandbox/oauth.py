"""OAuth: authorization codes, the token endpoint's grants (single-use refresh tokens), long-lived
tokens, the API-key exchange and the Bearer check of every API call.

Access tokens are JWTs, as amoCRM's are (reference §1.4): a client may read `exp` and
`api_domain` from them. The sandbox signs them with HS256 and its own key (amoCRM uses RS256);
it recognises tokens by lookup, not by signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sandbox import entities
from sandbox.account import Account, now
from sandbox.errors import oauth_problem, problem

CODE_LIFETIME = 1200
BAD_REQUEST = "Некорректный запрос"
INVALID_PARAMETERS = "В запросе отсутствует ряд параметров или параметры невалидны"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class RefreshToken:
    subdomain: str  # the account's subdomain as the holder last learnt it
    spent: bool = False


class OAuth(Account):
    codes: dict[str, dict]
    access_tokens: dict[str, int]  # token → expiry (unix seconds)
    refresh_tokens: dict[str, RefreshToken]
    signing_key: bytes

    def issue_code(self, redirect_uri: str) -> str:
        with self.lock:
            code = "def502" + secrets.token_hex(24)
            self.codes[code] = {"redirect_uri": redirect_uri, "expires": now() + CODE_LIFETIME}
            return code

    def api_domain(self) -> str:
        """The shared API host named in the tokens' `api_domain` claim (reference §1.6): never the
        account host. Config.api_domain, else the sandbox's own address under its other local
        name (127.0.0.1 ↔ localhost): the sandbox listens on one port and tells the two apart by
        the request's Host header."""
        if self.config.api_domain:
            return self.config.api_domain.lower()
        address = urlsplit(self.base_url())
        alias = "127.0.0.1" if address.hostname == "localhost" else "localhost"
        return f"{alias}:{address.port}" if address.port else alias

    def _access_token(self, lifetime: int) -> tuple[str, int]:
        """A new access token (a JWT shaped like amoCRM's) valid for `lifetime` seconds, and its expiry."""
        issued = now()
        expires = issued + lifetime
        claims = {
            "aud": self.config.client_id,
            "jti": str(uuid.uuid4()),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "sub": str(self.first_user_id()),
            "grant_type": "",
            "account_id": self.config.account_id,
            "base_domain": "amocrm.ru",
            "version": 2,
            "scopes": ["crm", "notifications"],
            "api_domain": self.api_domain(),
        }
        signed = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode()) + "." + _b64(json.dumps(claims).encode())
        signature = hmac.new(self.signing_key, signed.encode(), hashlib.sha256).digest()
        token = f"{signed}.{_b64(signature)}"
        self.access_tokens[token] = expires
        return token, expires

    def _issue_pair(self) -> dict:
        access, _ = self._access_token(self.config.token_lifetime)
        refresh = "def50200" + secrets.token_hex(32)
        self.refresh_tokens[refresh] = RefreshToken(self.config.subdomain)
        return entities.token(access, refresh_token=refresh, expires_in=self.config.token_lifetime, server_time=now())

    def token_grant(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise oauth_problem(400, BAD_REQUEST, INVALID_PARAMETERS)
        if body.get("client_id") != self.config.client_id or body.get("client_secret") != self.config.client_secret:
            raise oauth_problem(401, "Некорректный клиент", "Авторизация клиента не прошла")
        grant = body.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                entry = self.codes.pop(str(body.get("code")), None)
                if entry is None or entry["expires"] < now():
                    raise oauth_problem(400, BAD_REQUEST, INVALID_PARAMETERS, hint="Authorization code has expired")
                if entry["redirect_uri"] and body.get("redirect_uri") != entry["redirect_uri"]:
                    raise oauth_problem(400, BAD_REQUEST, "redirect_uri does not match")
                self.stats.code_grants += 1
                return self._issue_pair()
            if grant == "refresh_token":
                record = self._live_refresh_token(str(body.get("refresh_token")))
                if record.subdomain != self.config.subdomain:
                    # the holder still calls the account's old domain, which no longer exists
                    raise problem(404, "Not Found", "Account not found")
                record.spent = True  # single use: rotated below
                self.stats.refreshes += 1
                return self._issue_pair()
        raise oauth_problem(400, BAD_REQUEST, "Unsupported grant_type")

    def _live_refresh_token(self, token: str) -> RefreshToken:
        record = self.refresh_tokens.get(token)
        if record is None or record.spent:
            raise oauth_problem(401, BAD_REQUEST, INVALID_PARAMETERS, hint="Token has been revoked")
        return record

    def current_subdomain(self, refresh_token: str | None, host: str | None) -> dict:
        """`GET /oauth2/account/current/subdomain` with `X-Refresh-Token`: how the official SDK learns
        a renamed account's domain after its refresh failed (reference §1.6); the refresh works after.
        Only the shared API host (`api_domain`, by the request's Host header) answers it; the
        account host does not know the path (§1.6, §13)."""
        if (host or "").lower() != self.api_domain():
            raise problem(404, "Not Found", "Unknown path")
        with self.lock:
            self.stats.subdomain_lookups += 1
            record = self._live_refresh_token(refresh_token or "")
            record.subdomain = self.config.subdomain
            return {
                "id": self.config.account_id,
                "subdomain": self.config.subdomain,
                "domain": f"{self.config.subdomain}.amocrm.ru",
                "top_level_domain": "ru",
            }

    def long_lived_token(self, body: Any) -> dict:
        """A private integration's long-lived token (reference §1.5): no refresh token, the API takes
        it until it expires. Kommo allows 1 day to 5 years; the sandbox takes any positive lifetime."""
        body = {} if body is None else body
        lifetime = body.get("lifetime", 86400) if isinstance(body, dict) else None
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise problem(400, "Bad Request", "lifetime must be a positive number of seconds")
        with self.lock:
            token, expires_at = self._access_token(lifetime)
        return {"access_token": token, "expires_at": expires_at}

    def check_api_key_exchange(self, body: Any) -> dict:
        if not isinstance(body, dict) or not body.get("login") or not body.get("api_key"):
            raise problem(400, "Bad Request", "login and api_key are required")
        if body.get("client_uuid") != self.config.client_id or body.get("client_secret") != self.config.client_secret:
            raise problem(400, "Bad Request", "Invalid client")
        if body["api_key"] != self.config.api_key or not any(u["email"] == body["login"] for u in self.users.values()):
            raise problem(403, "Forbidden", "Not enough rights or wrong login/api_key")
        if not self.config.redirect_uri:
            raise problem(400, "Bad Request", "The integration has no redirect URI (install it first)")
        return {"code": self.issue_code(self.config.redirect_uri), "state": body.get("state")}

    def authorize(self, header: str | None) -> None:
        token = (header or "")[7:] if (header or "").startswith("Bearer ") else ""
        with self.lock:
            expires = self.access_tokens.get(token)
        if not expires or expires < now():
            raise problem(401, "Unauthorized", "Неверный логин или пароль")

    def expire_tokens(self) -> int:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0
            return len(self.access_tokens)
