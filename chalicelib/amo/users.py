"""amoCRM users and roles (reference §8): both lists are for administrators only (403 otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.amo.client import AmoClient
from chalicelib.amo.entities import optional_int, require_int
from chalicelib.amo.pages import embedded


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    email: str | None
    lang: str | None
    role_id: int | None
    account_id: int | None


@dataclass(frozen=True)
class RoleInfo:
    id: int
    name: str
    account_id: int | None


def read_user(raw: Any) -> UserInfo:
    user_id = require_int(raw, "id", "user")
    roles = embedded(raw, "roles")
    rights = raw.get("rights") if isinstance(raw.get("rights"), dict) else {}
    role_id = optional_int(rights, "role_id") or (
        optional_int(roles[0], "id") if roles and isinstance(roles[0], dict) else None
    )
    email, lang = raw.get("email"), raw.get("lang")
    return UserInfo(
        id=user_id,
        name=str(raw.get("name") or ""),
        email=email if isinstance(email, str) else None,
        lang=lang if isinstance(lang, str) else None,
        role_id=role_id,
        account_id=optional_int(raw, "account_id"),
    )


def read_role(raw: Any) -> RoleInfo:
    return RoleInfo(
        id=require_int(raw, "id", "role"), name=str(raw.get("name") or ""), account_id=optional_int(raw, "account_id")
    )


class Users:
    path = "/api/v4/users"

    def __init__(self, client: AmoClient):
        self.client = client

    def pages(self) -> Iterator[list[Any]]:
        """Pages of users with their role; read each with read_user."""
        return self.client.iter_pages(self.path, "users", {"with": "role"})


class Roles:
    path = "/api/v4/roles"

    def __init__(self, client: AmoClient):
        self.client = client

    def pages(self) -> Iterator[list[Any]]:
        return self.client.iter_pages(self.path, "roles")
