"""amoCRM API v4 bodies in the shape amoCRM sends them (reference amocrm-api.md §1.4, §2–§8): the
fields of each entity, its `_links` and `_embedded`, lists and HAL pages, the token answer.

The sandbox stores and serves what these build, and the tests' stand-ins for amoCRM
(tests/fixtures.py, tests/fake_amo.py) build their answers here too, so a correction to the
wire shape reaches both. An entity's record (`lead`, `contact`, …) holds its fields, as the
sandbox stores them; `*_body` adds what an answer carries besides. `base` is the account's
address: `https://sub.amocrm.ru`, or the sandbox's own. Standard library only, like the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

WON_STATUS_ID, LOST_STATUS_ID = 142, 143  # the same two ids in every pipeline (reference §4)
PHONE_FIELD_ID = 264911
EMAIL_FIELD_ID = 264913
# a contact's system multitext fields: id, name, and the account's enum id of each value type
# (reference §6; the ids are one account's, every account has its own)
SYSTEM_FIELDS: dict[str, tuple[int, str, dict[str, int]]] = {
    "PHONE": (
        PHONE_FIELD_ID,
        "Телефон",
        {"WORK": 193196, "WORKDD": 193198, "MOB": 193200, "FAX": 193202, "HOME": 193204, "OTHER": 193206},
    ),
    "EMAIL": (EMAIL_FIELD_ID, "Email", {"WORK": 193212, "PRIV": 193214, "OTHER": 193216}),
}
ALL_RIGHTS = {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"}


def link(base: str, path: str) -> dict:
    return {"self": {"href": f"{base}{path}"}}


def token(access_token: str, *, refresh_token: str, expires_in: int, server_time: int) -> dict:
    """`POST /oauth2/access_token`'s answer (reference §1.4)."""
    return {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": access_token,
        "refresh_token": refresh_token,
        "server_time": server_time,
    }


def account(
    account_id: int,
    *,
    name: str,
    subdomain: str,
    base: str,
    current_user_id: int,
    created_at: int,
    updated_at: int,
    is_technical_account: bool = False,
) -> dict:
    """`GET /api/v4/account` (reference §2)."""
    return {
        "id": account_id,
        "name": name,
        "subdomain": subdomain,
        "created_at": created_at,
        "created_by": 0,
        "updated_at": updated_at,
        "updated_by": 0,
        "current_user_id": current_user_id,
        "country": "RU",
        "currency": "RUB",
        "currency_symbol": "₽",
        "customers_mode": "disabled",
        "is_unsorted_on": True,
        "mobile_feature_version": 0,
        "is_loss_reason_enabled": True,
        "is_helpbot_enabled": False,
        "is_technical_account": is_technical_account,
        "contact_name_display_order": 1,
        "_links": link(base, "/api/v4/account"),
    }


def page(
    key: str,
    items: list,
    *,
    url: str,
    number: int,
    limit: int,
    has_next: bool,
    query: Iterable[tuple[str, str]] = (),
) -> dict:
    """One HAL page of a list (reference §3.3); `url` is the list's absolute address. The links
    repeat the request's `query` (filters, `with`, `order`) with only `page` (and `limit`) set."""
    kept = [(name, value) for name, value in query if name not in ("page", "limit")]

    def at(number: int) -> dict:
        return {"href": f"{url}?{urlencode([*kept, ('page', number), ('limit', limit)], safe='[],')}"}

    links = {"self": at(number)}
    if has_next:
        links["next"] = at(number + 1)
    if number > 1:
        links["prev"] = at(number - 1)
    return {"_page": number, "_links": links, "_embedded": {key: items}}


def collection(key: str, items: list, url: str) -> dict:
    """A list amoCRM answers whole, with its count (pipelines, webhooks)."""
    return {"_total_items": len(items), "_links": link(url, ""), "_embedded": {key: items}}


def status(
    status_id: int,
    *,
    name: str,
    sort: int,
    pipeline_id: int,
    account_id: int,
    color: str,
    type_: int = 0,
    editable: bool = True,
) -> dict:
    """A pipeline's status (stage); `type_` 1 is the unsorted one (reference §4)."""
    return {
        "id": status_id,
        "name": name,
        "sort": sort,
        "is_editable": editable,
        "pipeline_id": pipeline_id,
        "color": color,
        "type": type_,
        "account_id": account_id,
    }


def pipeline_statuses(
    pipeline_id: int,
    *,
    account_id: int,
    unsorted: tuple[int, str],
    stages: list[tuple[int, str, str]],
    won: str,
    lost: str,
) -> list[dict]:
    """Every status of a pipeline: its own unsorted one, `stages` (id, name, colour) in order, and
    the system statuses 142 (`won`) and 143 (`lost`), whose names each account chooses."""
    unsorted_id, unsorted_name = unsorted

    def of_pipeline(status_id: int, name: str, sort: int, color: str, **kind: Any) -> dict:
        return status(
            status_id, name=name, sort=sort, pipeline_id=pipeline_id, account_id=account_id, color=color, **kind
        )

    return [
        of_pipeline(unsorted_id, unsorted_name, 10, "#c1c1c1", type_=1, editable=False),
        *(
            of_pipeline(stage_id, name, 20 + position * 10, color)
            for position, (stage_id, name, color) in enumerate(stages)
        ),
        of_pipeline(WON_STATUS_ID, won, 10000, "#CCFF66", editable=False),
        of_pipeline(LOST_STATUS_ID, lost, 11000, "#D5D8DB", editable=False),
    ]


def status_body(record: dict, base: str) -> dict:
    path = f"/api/v4/leads/pipelines/{record['pipeline_id']}/statuses/{record['id']}"
    return {**record, "_links": link(base, path)}


def pipeline(pipeline_id: int, *, name: str, sort: int, account_id: int, is_main: bool = False) -> dict:
    return {
        "id": pipeline_id,
        "name": name,
        "sort": sort,
        "is_main": is_main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": account_id,
    }


def pipeline_body(record: dict, base: str, statuses: Iterable[dict]) -> dict:
    return {
        **record,
        "_links": link(base, f"/api/v4/leads/pipelines/{record['id']}"),
        "_embedded": {"statuses": [status_body(s, base) for s in statuses]},
    }


def _rights() -> dict:
    """Entity rights shared by users and roles: everything allowed (reference §8)."""
    return {
        "leads": dict(ALL_RIGHTS),
        "contacts": dict(ALL_RIGHTS),
        "companies": dict(ALL_RIGHTS),
        "tasks": {"edit": "A", "delete": "A"},
        "mail_access": False,
        "catalog_access": False,
        "status_rights": [],
    }


def user_body(
    user_id: int,
    *,
    name: str,
    email: str,
    base: str,
    lang: str = "ru",
    is_admin: bool = False,
    role_id: int | None = None,
    roles: list[tuple[int, str]] | None = None,
) -> dict:
    """A user of `GET /api/v4/users`; `roles` (id, name) with `with=role`, else no `_embedded`."""
    body: dict[str, Any] = {
        "id": user_id,
        "name": name,
        "email": email,
        "lang": lang,
        "rights": {
            **_rights(),
            "is_admin": is_admin,
            "is_free": False,
            "is_active": True,
            "group_id": None,
            "role_id": role_id,
        },
        "_links": link(base, f"/api/v4/users/{user_id}"),
    }
    if roles is not None:
        body["_embedded"] = {
            "roles": [{"id": i, "name": n, "_links": link(base, f"/api/v4/roles/{i}")} for i, n in roles],
            "groups": [],
        }
    return body


def role_body(role_id: int, name: str, base: str) -> dict:
    return {"id": role_id, "name": name, "rights": _rights(), "_links": link(base, f"/api/v4/roles/{role_id}")}


def multitext(code: str, values: Iterable[tuple[str, str]]) -> dict:
    """A contact's PHONE or EMAIL field holding `values` as (value, enum_code) (reference §5.3, §6)."""
    field_id, field_name, enums = SYSTEM_FIELDS[code]
    return {
        "field_id": field_id,
        "field_name": field_name,
        "field_code": code,
        "field_type": "multitext",
        "values": [{"value": value, "enum_id": enums[enum], "enum_code": enum} for value, enum in values],
    }


def text_field(field_id: int, name: str, value: str) -> dict:
    """An account's own text field (no field_code, no enums)."""
    return {
        "field_id": field_id,
        "field_name": name,
        "field_code": None,
        "field_type": "text",
        "values": [{"value": value}],
    }


def lead(
    lead_id: int,
    *,
    name: str,
    pipeline_id: int,
    status_id: int,
    account_id: int,
    responsible_user_id: int,
    created_by: int,
    created_at: int,
    updated_at: int | None = None,
    price: int = 0,
    custom_fields_values: list | None = None,
) -> dict:
    """A lead's fields (reference §5.2); a lead in 142 or 143 was closed when last updated."""
    updated_at = created_at if updated_at is None else updated_at
    return {
        "id": lead_id,
        "name": name,
        "price": price,
        "responsible_user_id": responsible_user_id,
        "group_id": 0,
        "status_id": status_id,
        "pipeline_id": pipeline_id,
        "loss_reason_id": None,
        "created_by": created_by,
        "updated_by": created_by,
        "created_at": created_at,
        "updated_at": updated_at,
        "closed_at": updated_at if status_id in (WON_STATUS_ID, LOST_STATUS_ID) else None,
        "closest_task_at": None,
        "is_deleted": False,
        "score": None,
        "labor_cost": None,
        "account_id": account_id,
        "custom_fields_values": custom_fields_values,
    }


def lead_body(
    record: dict, base: str, *, tags: list | None = None, contacts: Iterable[tuple[int, bool]] | None = None
) -> dict:
    """A lead as answered; `contacts` (id, is_main) only with `with=contacts`."""
    embedded: dict[str, Any] = {"tags": tags or [], "companies": []}
    if contacts is not None:
        embedded["contacts"] = [
            {"id": i, "is_main": is_main, "_links": link(base, f"/api/v4/contacts/{i}")} for i, is_main in contacts
        ]
    return {**record, "_links": link(base, f"/api/v4/leads/{record['id']}"), "_embedded": embedded}


def contact(
    contact_id: int,
    *,
    name: str,
    account_id: int,
    responsible_user_id: int,
    created_by: int,
    created_at: int,
    updated_at: int | None = None,
    custom_fields_values: list | None = None,
) -> dict:
    """A contact's fields (reference §6): phones and e-mails only in `custom_fields_values`."""
    words = name.split()
    return {
        "id": contact_id,
        "name": name,
        "first_name": words[0] if words else "",
        "last_name": words[-1] if len(words) > 1 else "",
        "responsible_user_id": responsible_user_id,
        "group_id": 0,
        "created_by": created_by,
        "updated_by": created_by,
        "created_at": created_at,
        "updated_at": created_at if updated_at is None else updated_at,
        "closest_task_at": None,
        "is_deleted": False,
        "is_unsorted": False,
        "custom_fields_values": custom_fields_values,
        "account_id": account_id,
    }


def contact_body(record: dict, base: str, leads: Iterable[int] | None = None) -> dict:
    """A contact as answered; `leads` (ids) only with `with=leads`."""
    embedded: dict[str, Any] = {"tags": [], "companies": []}
    if leads is not None:
        embedded["leads"] = [{"id": i, "_links": link(base, f"/api/v4/leads/{i}")} for i in leads]
    return {**record, "_links": link(base, f"/api/v4/contacts/{record['id']}"), "_embedded": embedded}


def task(
    task_id: int,
    *,
    text: str,
    account_id: int,
    responsible_user_id: int,
    created_by: int,
    created_at: int,
    complete_till: int,
    updated_at: int | None = None,
    entity: tuple[str, int] | None = None,
    task_type_id: int = 1,
    duration: int = 0,
    is_completed: bool = False,
    result: str | None = None,
) -> dict:
    """A task's fields (reference §7) on `entity` (entity_type, entity_id); without a `result`
    text amoCRM answers `result: []`."""
    entity_type, entity_id = entity or (None, None)
    return {
        "id": task_id,
        "created_by": created_by,
        "updated_by": created_by,
        "created_at": created_at,
        "updated_at": created_at if updated_at is None else updated_at,
        "responsible_user_id": responsible_user_id,
        "group_id": 0,
        "entity_id": entity_id,
        "entity_type": entity_type,
        "is_completed": is_completed,
        "task_type_id": task_type_id,
        "text": text,
        "duration": duration,
        "complete_till": complete_till,
        "result": {"text": result} if result is not None else [],
        "account_id": account_id,
    }


def task_body(record: dict, base: str) -> dict:
    return {**record, "_links": link(base, f"/api/v4/tasks/{record['id']}")}
