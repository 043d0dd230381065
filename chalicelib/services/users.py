"""amoCRM users and roles mirrored into DynamoDB (both lists are admin-only in amoCRM)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from chalicelib.amo.api import AmoApi
from chalicelib.amo.entities import MalformedEntity
from chalicelib.amo.errors import AmoForbidden
from chalicelib.amo.users import RoleInfo, UserInfo, read_role, read_user
from chalicelib.models import AmoRole, AmoUser
from chalicelib.services import mirror
from chalicelib.services.paging import page_of_sorted

log = logging.getLogger(__name__)

Mirrored = TypeVar("Mirrored", AmoUser, AmoRole)

NOT_ADMIN = (
    "amoCRM refused the list (403): the user who authorized the integration is not an "
    "account administrator; re-authorize as an administrator"
)


def _user_item(info: UserInfo) -> AmoUser:
    return AmoUser(
        id=info.id, name=info.name, email=info.email, lang=info.lang, role_id=info.role_id, account_id=info.account_id
    )


def _role_item(info: RoleInfo) -> AmoRole:
    return AmoRole(id=info.id, name=info.name, account_id=info.account_id)


def _mirror(
    what: str,
    *,
    pages: Iterator[list[Any]],
    read: Callable[[Any], Any],
    to_item: Callable[[Any], Mirrored],
    model: type[Mirrored],
) -> dict:
    """Replace the table's contents with amoCRM's list; per-item problems go to `errors`."""
    errors: list[dict[str, Any]] = []
    seen: set[int] = set()
    try:
        with model.batch_write() as batch:
            for page in pages:
                for raw in page:
                    try:
                        item = to_item(read(raw))
                    except MalformedEntity as error:
                        errors.append(mirror.item_error(raw, f"amoCRM sent a {what} without an integer id ({error})"))
                        continue
                    item.touch()
                    batch.save(item)
                    seen.add(item.id)
    except AmoForbidden:
        log.warning("%s sync refused by amoCRM: not an administrator", what)
        return {"synced": 0, "errors": [{"id": None, "message": NOT_ADMIN}]}
    if not errors:
        with model.batch_write() as batch:
            for stale in model.scan():
                if stale.id not in seen:
                    batch.delete(stale)
    return {"synced": len(seen), "errors": errors}


def sync_users(amo: AmoApi) -> dict:
    return _mirror("user", pages=amo.users.pages(), read=read_user, to_item=_user_item, model=AmoUser)


def sync_roles(amo: AmoApi) -> dict:
    return _mirror("role", pages=amo.roles.pages(), read=read_role, to_item=_role_item, model=AmoRole)


def get_users(limit: int, cursor: str | None) -> dict:
    users = sorted(AmoUser.scan(), key=lambda u: (u.name.casefold(), u.id))
    return page_of_sorted(users, limit=limit, cursor=cursor, render=lambda u: u.to_dict())


def get_roles(limit: int, cursor: str | None) -> dict:
    roles = sorted(AmoRole.scan(), key=lambda r: (r.name.casefold(), r.id))
    return page_of_sorted(roles, limit=limit, cursor=cursor, render=lambda r: r.to_dict())
