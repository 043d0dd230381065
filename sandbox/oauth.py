"""OAuth: authorization codes, the token endpoint's grants (single-use refresh tokens), the API-key
exchange and the Bearer check of every API call."""
from __future__ import annotations

import secrets
from typing import Any

from sandbox.account import Account, now
from sandbox.errors import oauth_problem, problem

CODE_LIFETIME = 1200
BAD_REQUEST = "Некорректный запрос"
INVALID_PARAMETERS = "В запросе отсутствует ряд параметров или параметры невалидны"


class OAuth(Account):
    codes: dict[str, dict]
    access_tokens: dict[str, int]  # token → expiry (unix seconds)
    refresh_tokens: dict[str, bool]  # token → still usable

    def issue_code(self, redirect_uri: str) -> str:
        with self.lock:
            code = "def502" + secrets.token_hex(24)
            self.codes[code] = {"redirect_uri": redirect_uri, "expires": now() + CODE_LIFETIME}
            return code

    def _issue_pair(self) -> dict:
        access = "sbx." + secrets.token_urlsafe(32)
        refresh = "def50200" + secrets.token_hex(32)
        self.access_tokens[access] = now() + self.config.token_lifetime
        self.refresh_tokens[refresh] = True
        return {"token_type": "Bearer", "expires_in": self.config.token_lifetime, "access_token": access,
                "refresh_token": refresh, "server_time": now()}

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
                token = str(body.get("refresh_token"))
                if not self.refresh_tokens.get(token):
                    raise oauth_problem(401, BAD_REQUEST, INVALID_PARAMETERS, hint="Token has been revoked")
                self.refresh_tokens[token] = False  # single use: rotated below
                self.stats.refreshes += 1
                return self._issue_pair()
        raise oauth_problem(400, BAD_REQUEST, "Unsupported grant_type")

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
