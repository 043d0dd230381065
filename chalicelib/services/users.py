"""amoCRM users and roles mirrored into DynamoDB (both lists are admin-only in amoCRM)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from chalicelib.amo.errors import AmoForbidden
from chalicelib.models import AmoRole, AmoUser, BaseModel
from chalicelib.services import gateway, mirror
from chalicelib.services.paging import page_of_sorted

log = logging.getLogger(__name__)

NOT_ADMIN = ("amoCRM refused the list (403): the user who authorized the integration is not an "
             "account administrator; re-authorize as an administrator")


def _user_from(raw: dict) -> AmoUser:
    roles = (raw.get("_embedded") or {}).get("roles") or []
    rights = raw.get("rights") or {}
    role_id = rights.get("role_id") or (roles[0].get("id") if roles else None)
    return AmoUser(id=raw["id"], name=str(raw.get("name") or ""), email=raw.get("email"),
                   lang=raw.get("lang"), role_id=role_id, account_id=raw.get("account_id"))


def _role_from(raw: dict) -> AmoRole:
    return AmoRole(id=raw["id"], name=str(raw.get("name") or ""), account_id=raw.get("account_id"))


def _mirror(path: str, key: str, params: dict, build: Callable[[dict], BaseModel],
            model: type[BaseModel]) -> dict:
    """Replace the table's contents with amoCRM's list; per-item problems go to `errors`."""
    errors: list[dict[str, Any]] = []
    seen: set[int] = set()
    try:
        with model.batch_write() as batch:
            for page in gateway.amo_client().iter_pages(path, key, params):
                for raw in page:
                    if not isinstance(raw, dict) or not isinstance(raw.get("id"), int):
                        errors.append(mirror.item_error(raw, f"amoCRM sent a {key[:-1]} without an integer id"))
                        continue
                    item = build(raw)
                    item.touch()
                    batch.save(item)
                    seen.add(item.id)
    except AmoForbidden:
        log.warning("%s sync refused by amoCRM: not an administrator", key)
        return {"synced": 0, "errors": [{"id": None, "message": NOT_ADMIN}]}
    if not errors:
        with model.batch_write() as batch:
            for stale in model.scan():
                if stale.id not in seen:
                    batch.delete(stale)
    return {"synced": len(seen), "errors": errors}


def sync_users() -> dict:
    return _mirror("/api/v4/users", "users", {"with": "role"}, _user_from, AmoUser)


def sync_roles() -> dict:
    return _mirror("/api/v4/roles", "roles", {}, _role_from, AmoRole)


def get_users(limit: int, cursor: str | None) -> dict:
    users = sorted(AmoUser.scan(), key=lambda u: (u.name.casefold(), u.id))
    return page_of_sorted(users, limit, cursor, lambda u: u.to_dict())


def get_roles(limit: int, cursor: str | None) -> dict:
    roles = sorted(AmoRole.scan(), key=lambda r: (r.name.casefold(), r.id))
    return page_of_sorted(roles, limit, cursor, lambda r: r.to_dict())
