"""Bodies shaped like what amoCRM really sends (reference amocrm-api.md §1–§4)."""

from __future__ import annotations

import time

ACCOUNT_ID = 30896271
SUBDOMAIN = "testaccount"
HOST = f"https://{SUBDOMAIN}.amocrm.ru"
HAL = {"Content-Type": "application/hal+json"}
PROBLEM = {"Content-Type": "application/problem+json"}


def token_body(access: str = "access-1", refresh: str = "refresh-1", expires_in: int = 86400) -> dict:
    return {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": access,
        "refresh_token": refresh,
        "server_time": int(time.time()),
    }


def account_body(account_id: int = ACCOUNT_ID, subdomain: str = SUBDOMAIN) -> dict:
    return {
        "id": account_id,
        "name": "Developers Team",
        "subdomain": subdomain,
        "created_at": 1585840134,
        "created_by": 0,
        "updated_at": 1700000000,
        "updated_by": 0,
        "current_user_id": 8375357,
        "country": "RU",
        "currency": "RUB",
        "currency_symbol": "₽",
        "customers_mode": "disabled",
        "is_unsorted_on": True,
        "mobile_feature_version": 0,
        "is_loss_reason_enabled": True,
        "is_helpbot_enabled": False,
        "is_technical_account": False,
        "contact_name_display_order": 1,
        "_links": {"self": {"href": f"https://{subdomain}.amocrm.ru/api/v4/account"}},
    }


REVOKED = {
    "hint": "Token has been revoked",
    "title": "Некорректный запрос",
    "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
    "status": 401,
    "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
}


def refuse_refresh(amo, host: str = HOST) -> None:
    """GIVEN amoCRM refuses the stored refresh token (revoked or spent): the refresh grant
    answers 401, and so does the domain lookup a refused refresh makes (reference §1.6)."""
    amo.post(f"{host}/oauth2/access_token", status=401, json=REVOKED, headers=PROBLEM)
    amo.get(f"{host}/oauth2/account/current/subdomain", status=401, json=REVOKED, headers=PROBLEM)


UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "https://httpstatus.es/401",
    "status": 401,
    "detail": "Неверный логин или пароль",
}

VALIDATION = {
    "validation-errors": [
        {
            "request_id": "0",
            "errors": [
                {
                    "code": "NotSupportedChoice",
                    "path": "custom_fields_values.0.field_id",
                    "detail": "The value you selected is not a valid choice.",
                }
            ],
        }
    ],
    "title": "Bad Request",
    "type": "https://httpstatus.es/400",
    "status": 400,
    "detail": "Request validation failed",
}

BLOCKED_HTML = (
    "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
    "<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def lead(lead_id: int, pipeline_id: int = 6950551, status_id: int = 58141807) -> dict:
    return {
        "id": lead_id,
        "name": f"Сделка #{lead_id}",
        "price": 25000,
        "responsible_user_id": 8375357,
        "group_id": 0,
        "status_id": status_id,
        "pipeline_id": pipeline_id,
        "loss_reason_id": None,
        "created_by": 8375357,
        "updated_by": 8375357,
        "created_at": 1587741226,
        "updated_at": 1588241643,
        "closed_at": None,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": None,
        "score": None,
        "account_id": ACCOUNT_ID,
        "labor_cost": None,
        "_links": {"self": {"href": f"{HOST}/api/v4/leads/{lead_id}"}},
        "_embedded": {"tags": [], "companies": []},
    }


def leads_page(ids: list[int], page: int, has_next: bool, limit: int = 250) -> dict:
    links = {"self": {"href": f"{HOST}/api/v4/leads?page={page}&limit={limit}"}}
    if has_next:
        links["next"] = {"href": f"{HOST}/api/v4/leads?page={page + 1}&limit={limit}"}
    if page > 1:
        links["prev"] = {"href": f"{HOST}/api/v4/leads?page={page - 1}&limit={limit}"}
    return {"_page": page, "_links": links, "_embedded": {"leads": [lead(i) for i in ids]}}


def store_tokens(
    access: str = "access-1", refresh: str = "refresh-1", expires_in: int = 86400, account_id: int | None = ACCOUNT_ID
):
    """GIVEN helper: a connected account whose access token expires in `expires_in` seconds."""
    from chalicelib.models import AmoToken

    token = AmoToken(
        access_token=access,
        refresh_token=refresh,
        expires_at=int(time.time()) + expires_in,
        account_id=account_id,
        subdomain=SUBDOMAIN,
        domain=f"{SUBDOMAIN}.amocrm.ru",
    )
    token.touch()
    token.save()
    return token


def stored_token():
    from chalicelib.models import AmoToken

    return AmoToken.get(AmoToken.SINGLETON_KEY, consistent_read=True)


def status(
    status_id: int,
    name: str,
    sort: int,
    pipeline_id: int,
    type_: int = 0,
    color: str = "#fffeb2",
    editable: bool = True,
) -> dict:
    return {
        "id": status_id,
        "name": name,
        "sort": sort,
        "is_editable": editable,
        "pipeline_id": pipeline_id,
        "color": color,
        "type": type_,
        "account_id": ACCOUNT_ID,
        "_links": {"self": {"href": f"{HOST}/api/v4/leads/pipelines/{pipeline_id}/statuses/{status_id}"}},
    }


def pipeline(pipeline_id: int, name: str, sort: int, statuses: list[dict], is_main: bool = False) -> dict:
    return {
        "id": pipeline_id,
        "name": name,
        "sort": sort,
        "is_main": is_main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": ACCOUNT_ID,
        "_links": {"self": {"href": f"{HOST}/api/v4/leads/pipelines/{pipeline_id}"}},
        "_embedded": {"statuses": statuses},
    }


def pipelines_body(won_name: str = "Успешно реализовано") -> dict:
    """Two pipelines that share statuses 142 and 143, each with its own unsorted status."""
    sales = pipeline(
        3177727,
        "Воронка",
        1,
        [
            status(58141803, "Неразобранное", 10, 3177727, type_=1, color="#c1c1c1", editable=False),
            status(58141807, "Первичный контакт", 20, 3177727, color="#99ccff"),
            status(58141811, "Переговоры", 30, 3177727, color="#ffff99"),
            status(58141815, "Принимают решение", 40, 3177727, color="#ffcc66"),
            status(142, won_name, 10000, 3177727, color="#CCFF66", editable=False),
            status(143, "Закрыто и не реализовано", 11000, 3177727, color="#D5D8DB", editable=False),
        ],
        is_main=True,
    )
    rentals = pipeline(
        3177731,
        "Rentals",
        2,
        [
            status(58141903, "Incoming leads", 10, 3177731, type_=1, color="#c1c1c1", editable=False),
            status(58141907, "Initial contact", 20, 3177731),
            status(58141911, "Viewing scheduled", 30, 3177731),
            status(142, "Closed - won", 10000, 3177731, color="#CCFF66", editable=False),
            status(143, "Closed - lost", 11000, 3177731, color="#D5D8DB", editable=False),
        ],
    )
    return {
        "_total_items": 2,
        "_links": {"self": {"href": f"{HOST}/api/v4/leads/pipelines"}},
        "_embedded": {"pipelines": [sales, rentals]},
    }


def user(user_id: int, name: str, role: tuple[int, str] | None = None, is_admin: bool = False) -> dict:
    return {
        "id": user_id,
        "name": name,
        "email": f"user{user_id}@example.com",
        "lang": "ru",
        "rights": {
            "leads": {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
            "tasks": {"edit": "A", "delete": "A"},
            "mail_access": False,
            "catalog_access": False,
            "status_rights": [],
            "is_admin": is_admin,
            "is_free": False,
            "is_active": True,
            "group_id": None,
            "role_id": role[0] if role else None,
        },
        "_links": {"self": {"href": f"{HOST}/api/v4/users/{user_id}/"}},
        "_embedded": {"roles": [{"id": role[0], "name": role[1]}] if role else [], "groups": []},
    }
