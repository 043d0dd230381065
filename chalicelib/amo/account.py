"""The amoCRM account (reference §2): `GET /api/v4/account`, readable by every user."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.amo.client import AmoClient
from chalicelib.amo.entities import optional_int
from chalicelib.amo.errors import AmoError


@dataclass(frozen=True)
class AccountInfo:
    id: int
    subdomain: str | None


class Account:
    path = "/api/v4/account"

    def __init__(self, client: AmoClient):
        self.client = client

    def get(self) -> AccountInfo:
        body = self.client.get(self.path) or {}
        account_id = optional_int(body, "id") if isinstance(body, dict) else None
        if account_id is None:
            raise AmoError("amoCRM /api/v4/account did not return an account id")
        subdomain = body.get("subdomain")
        return AccountInfo(id=account_id, subdomain=subdomain if isinstance(subdomain, str) else None)
