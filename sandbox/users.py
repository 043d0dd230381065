"""Users and roles: administrators only, as in amoCRM (`non_admin` switches the token to a manager's)."""

from __future__ import annotations

from typing import Any

from sandbox import entities
from sandbox import query as q
from sandbox.account import Account
from sandbox.errors import problem


class Users(Account):
    def require_admin(self) -> None:
        if self.config.non_admin:
            raise problem(403, "Forbidden", "Access denied: only administrators may do this")

    def render_user(self, user: dict, with_: set[str]) -> dict:
        role = self.roles.get(user["role_id"]) if user["role_id"] else None
        return entities.user_body(
            user["id"],
            name=user["name"],
            email=user["email"],
            base=self.base_url(),
            lang=user["lang"],
            is_admin=user["is_admin"],
            role_id=user["role_id"],
            roles=([(role["id"], role["name"])] if role else []) if "role" in with_ else None,
        )

    def list_users(self, query: dict) -> tuple[int, Any]:
        self.require_admin()
        with_ = q.with_(query)
        with self.lock:
            users = sorted(self.users.values(), key=lambda u: u["id"])
            return self.page(users, "users", "/api/v4/users", query, lambda u: self.render_user(u, with_))

    def list_roles(self, query: dict) -> tuple[int, Any]:
        self.require_admin()
        with self.lock:
            roles = sorted(self.roles.values(), key=lambda r: r["id"])
            return self.page(
                roles,
                "roles",
                "/api/v4/roles",
                query,
                lambda r: entities.role_body(r["id"], r["name"], self.base_url()),
            )
