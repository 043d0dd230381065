"""Bodies shaped like what amoCRM really sends (reference amocrm-api.md §1–§8), built with the
sandbox's builders (sandbox/entities.py) so that tests and sandbox answer alike; the values here
are the tests' own (one account, its pipelines, a few people)."""

from __future__ import annotations

import base64
import json
import time

from sandbox import entities

ACCOUNT_ID = 30896271
SUBDOMAIN = "testaccount"
HOST = f"https://{SUBDOMAIN}.amocrm.ru"
HAL = {"Content-Type": "application/hal+json"}
PROBLEM = {"Content-Type": "application/problem+json"}


USER_ID = 8375357  # the account's owner: responsible for, and author of, every entity here


API_DOMAIN = "api-b.amocrm.ru"  # the shared API host amoCRM names in its tokens (reference §1.6)


def jwt(claims: dict) -> str:
    """A token as amoCRM issues it: a JWT (header.claims.signature), RS256, unverified here."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def access_jwt(api_domain: str | None = API_DOMAIN, exp: float | None = None, account_id: int = ACCOUNT_ID) -> str:
    """An access token carrying `api_domain` (tokens issued after 2024-08-21 do, §1.6)."""
    claims: dict = {"account_id": account_id, "exp": int(exp or time.time() + 86400)}
    if api_domain:
        claims["api_domain"] = api_domain
    return jwt(claims)


def token_body(access: str = "access-1", refresh: str = "refresh-1", expires_in: int = 86400) -> dict:
    return entities.token(access, refresh_token=refresh, expires_in=expires_in, server_time=int(time.time()))


def account_body(account_id: int = ACCOUNT_ID, subdomain: str = SUBDOMAIN) -> dict:
    return entities.account(
        account_id,
        name="Developers Team",
        subdomain=subdomain,
        base=f"https://{subdomain}.amocrm.ru",
        current_user_id=USER_ID,
        created_at=1585840134,
        updated_at=1700000000,
    )


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


def lead(
    lead_id: int,
    *,
    pipeline_id: int = 3177727,
    status_id: int = 58141807,
    contact_ids: tuple[int, ...] | None = (),
    updated_at: int = 1700000000,
    price: int = 1000,
    custom_fields: list | None = None,
) -> dict:
    """A lead as `GET /api/v4/leads?with=contacts` answers it, the first contact the main one;
    `contact_ids=None`: as answered without `with=contacts`."""
    record = entities.lead(
        lead_id,
        name=f"Бронь #{lead_id}",
        pipeline_id=pipeline_id,
        status_id=status_id,
        account_id=ACCOUNT_ID,
        responsible_user_id=USER_ID,
        created_by=USER_ID,
        created_at=1690000000,
        updated_at=updated_at,
        price=price,
        custom_fields_values=custom_fields,
    )
    linked = None if contact_ids is None else [(c, i == 0) for i, c in enumerate(contact_ids)]
    return entities.lead_body(record, HOST, contacts=linked)


def contact(
    contact_id: int,
    *,
    name: str = "Олена Коваленко",
    phone: str | None = "+380501112233",
    email: str | None = "olena@example.ua",
    updated_at: int = 1700000000,
) -> dict:
    """A contact with a mobile phone and a work e-mail (either left out when None)."""
    fields = [
        *([entities.multitext("PHONE", [(phone, "MOB")])] if phone else []),
        *([entities.multitext("EMAIL", [(email, "WORK")])] if email else []),
    ]
    record = entities.contact(
        contact_id,
        name=name,
        account_id=ACCOUNT_ID,
        responsible_user_id=USER_ID,
        created_by=0,
        created_at=1690000000,
        updated_at=updated_at,
        custom_fields_values=fields or None,
    )
    return entities.contact_body(record, HOST)


def task(
    task_id: int,
    *,
    entity_id: int = 17657,
    entity_type: str = "leads",
    is_completed: bool = False,
    updated_at: int = 1700000000,
) -> dict:
    record = entities.task(
        task_id,
        text="Перезвонить гостю",
        account_id=ACCOUNT_ID,
        responsible_user_id=USER_ID,
        created_by=USER_ID,
        created_at=1690000000,
        updated_at=updated_at,
        complete_till=1700086400,
        entity=(entity_type, entity_id),
        is_completed=is_completed,
        result="Готово" if is_completed else None,
    )
    return entities.task_body(record, HOST)


def leads_page(ids: list[int], page: int, has_next: bool, limit: int = 250) -> dict:
    leads = [lead(i, contact_ids=None) for i in ids]
    return entities.page("leads", leads, url=f"{HOST}/api/v4/leads", number=page, limit=limit, has_next=has_next)


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


def pipelines_body(won_name: str = "Успешно реализовано") -> dict:
    """Two pipelines that share statuses 142 and 143, each with its own unsorted status."""
    sales = entities.pipeline(3177727, name="Воронка", sort=1, account_id=ACCOUNT_ID, is_main=True)
    sales_statuses = entities.pipeline_statuses(
        3177727,
        account_id=ACCOUNT_ID,
        unsorted=(58141803, "Неразобранное"),
        stages=[
            (58141807, "Первичный контакт", "#99ccff"),
            (58141811, "Переговоры", "#ffff99"),
            (58141815, "Принимают решение", "#ffcc66"),
        ],
        won=won_name,
        lost="Закрыто и не реализовано",
    )
    rentals = entities.pipeline(3177731, name="Rentals", sort=2, account_id=ACCOUNT_ID)
    rentals_statuses = entities.pipeline_statuses(
        3177731,
        account_id=ACCOUNT_ID,
        unsorted=(58141903, "Incoming leads"),
        stages=[(58141907, "Initial contact", "#fffeb2"), (58141911, "Viewing scheduled", "#fffeb2")],
        won="Closed - won",
        lost="Closed - lost",
    )
    pipelines = [
        entities.pipeline_body(sales, HOST, sales_statuses),
        entities.pipeline_body(rentals, HOST, rentals_statuses),
    ]
    return entities.collection("pipelines", pipelines, f"{HOST}/api/v4/leads/pipelines")


def user(user_id: int, name: str, role: tuple[int, str] | None = None, is_admin: bool = False) -> dict:
    """A user as `GET /api/v4/users?with=role` answers it."""
    return entities.user_body(
        user_id,
        name=name,
        email=f"user{user_id}@example.com",
        base=HOST,
        is_admin=is_admin,
        role_id=role[0] if role else None,
        roles=[role] if role else [],
    )
