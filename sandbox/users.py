"""Users and roles: administrators only, as in amoCRM (`non_admin` switches the token to a manager's)."""

from __future__ import annotations

from typing import Any

from sandbox import query as q
from sandbox.account import Account
from sandbox.errors import problem


class Users(Account):
    def require_admin(self) -> None:
        if self.config.non_admin:
            raise problem(403, "Forbidden", "Access denied: only administrators may do this")

    def render_user(self, user: dict, with_: set[str]) -> dict:
        out = {
            "id": user["id"],
            "name": user["name"],
            "email": user["email"],
            "lang": user["lang"],
            "rights": {
                "leads": {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
                "tasks": {"edit": "A", "delete": "A"},
                "mail_access": False,
                "catalog_access": False,
                "status_rights": [],
                "is_admin": user["is_admin"],
                "is_free": False,
                "is_active": True,
                "group_id": None,
                "role_id": user["role_id"],
            },
            "_links": self.link(f"/api/v4/users/{user['id']}"),
        }
        if "role" in with_:
            role = self.roles.get(user["role_id"]) if user["role_id"] else None
            out["_embedded"] = {
                "roles": [{"id": role["id"], "name": role["name"], "_links": self.link(f"/api/v4/roles/{role['id']}")}]
                if role
                else [],
                "groups": [],
            }
        return out

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
                lambda r: {
                    "id": r["id"],
                    "name": r["name"],
                    "rights": {"leads": {"view": "A", "edit": "A"}},
                    "_links": self.link(f"/api/v4/roles/{r['id']}"),
                },
            )
