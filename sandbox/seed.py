"""Deterministic seed data: pipelines with their statuses, users, roles, contacts, leads, tasks.

Names, phones and e-mails are realistic Russian, Ukrainian and English ones; phones and
e-mails live only in contacts' `custom_fields_values` (PHONE / EMAIL multitext), as in amoCRM.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

BASE_TIME = 1_700_000_000  # 2023-11-14; every seeded timestamp is after it
PROPERTY_FIELD_ID = 900001
PHONE_FIELD_ID = 264911
EMAIL_FIELD_ID = 264913

PIPELINE_STAGES = [
    (
        "Воронка",
        ["Первичный контакт", "Переговоры", "Принимают решение", "Согласование договора"],
        "Неразобранное",
        "Успешно реализовано",
        "Закрыто и не реализовано",
    ),
    (
        "Sales",
        ["Initial contact", "Negotiation", "Decision making", "Contract discussion"],
        "Incoming leads",
        "Closed - won",
        "Closed - lost",
    ),
    (
        "Бронювання",
        ["Первинний контакт", "Переговори", "Ухвалюють рішення", "Узгодження договору"],
        "Нерозібране",
        "Успішно реалізовано",
        "Закрито і не реалізовано",
    ),
]
COLOURS = ["#99ccff", "#ffff99", "#ffcc66", "#ff9966", "#87f2c0", "#f9deff", "#deff81"]

FIRST_NAMES = {
    "ru": ["Иван", "Мария", "Алексей", "Екатерина", "Дмитрий", "Анна", "Сергей", "Ольга"],
    "uk": ["Олександр", "Оксана", "Тарас", "Наталія", "Богдан", "Ірина", "Андрій", "Юлія"],
    "en": ["James", "Emily", "Michael", "Sarah", "David", "Olivia", "Daniel", "Sophie"],
}
LAST_NAMES = {
    "ru": ["Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов", "Новикова"],
    "uk": ["Шевченко", "Коваленко", "Бондаренко", "Ткаченко", "Кравченко", "Олійник", "Мельник", "Поліщук"],
    "en": ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas"],
}
LATIN = {
    "ru": "ivan maria alexey ekaterina dmitry anna sergey olga".split(),
    "uk": "oleksandr oksana taras nataliia bohdan iryna andrii yuliia".split(),
    "en": "james emily michael sarah david olivia daniel sophie".split(),
}
PHONE_PREFIX = {"ru": "+7 9", "uk": "+380 6", "en": "+44 7"}
MAIL_DOMAINS = ["gmail.com", "mail.ru", "ukr.net", "outlook.com", "yandex.ru"]
LEAD_TITLES = [
    "Бронь квартиры",
    "Заявка на апартаменты",
    "Booking request",
    "Оренда квартири",
    "Viewing request",
    "Запрос на посуточную аренду",
]
TASK_TEXTS = [
    "Связаться с клиентом",
    "Перезвонить гостю",
    "Call the guest back",
    "Зателефонувати клієнту",
    "Send the contract",
    "Отправить договор",
]
ROLES = [(1, "Администратор"), (2, "Менеджер"), (3, "Manager")]


@dataclass
class SeedSize:
    pipelines: int = 2
    users: int = 5
    contacts: int = 60
    leads: int = 120
    tasks: int = 40
    seed: int = 42


def _stage(
    status_id: int,
    name: str,
    sort: int,
    pipeline_id: int,
    account_id: int,
    color: str,
    type_: int = 0,
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
        "account_id": account_id,
    }


def build(size: SeedSize, account_id: int) -> dict:
    """Everything the sandbox stores, as amoCRM v4 objects (without `_links`)."""
    rng = random.Random(size.seed)
    pipelines, stage_ids = {}, {}
    for index in range(max(1, size.pipelines)):
        title, middle, unsorted, won, lost = PIPELINE_STAGES[index % len(PIPELINE_STAGES)]
        pipeline_id = 6_950_551 + index * 1_000
        suffix = f" {index // len(PIPELINE_STAGES) + 1}" if index >= len(PIPELINE_STAGES) else ""
        statuses = [
            _stage(58_141_803 + index * 100, unsorted, 10, pipeline_id, account_id, "#c1c1c1", type_=1, editable=False)
        ]
        for position, name in enumerate(middle):
            statuses.append(
                _stage(
                    58_141_807 + index * 100 + position,
                    name,
                    20 + position * 10,
                    pipeline_id,
                    account_id,
                    COLOURS[position % len(COLOURS)],
                )
            )
        statuses.append(_stage(142, won, 10000, pipeline_id, account_id, "#CCFF66", editable=False))
        statuses.append(_stage(143, lost, 11000, pipeline_id, account_id, "#D5D8DB", editable=False))
        pipelines[pipeline_id] = {
            "id": pipeline_id,
            "name": title + suffix,
            "sort": (index + 1) * 10,
            "is_main": index == 0,
            "is_unsorted_on": True,
            "is_archive": False,
            "account_id": account_id,
            "statuses": statuses,
        }
        stage_ids[pipeline_id] = [s["id"] for s in statuses]

    roles = {role_id: {"id": role_id, "name": name} for role_id, name in ROLES}
    users = {}
    for index in range(max(1, size.users)):
        lang = ("ru", "uk", "en")[index % 3]
        user_id = 8_375_357 + index
        role_id = ROLES[index % len(ROLES)][0] if index else None
        users[user_id] = {
            "id": user_id,
            "name": f"{FIRST_NAMES[lang][index % 8]} {LAST_NAMES[lang][index % 8]}",
            "email": f"{LATIN[lang][index % 8]}.{index}@{MAIL_DOMAINS[index % len(MAIL_DOMAINS)]}",
            "lang": "en" if lang == "en" else "ru",
            "role_id": role_id,
            "is_admin": index == 0,
        }
    user_ids = list(users)

    contacts = {}
    for index in range(size.contacts):
        lang = rng.choice(("ru", "uk", "en"))
        first, last = rng.choice(FIRST_NAMES[lang]), rng.choice(LAST_NAMES[lang])
        contact_id = 12_117_258 + index
        phone = PHONE_PREFIX[lang] + "".join(str(rng.randint(0, 9)) for _ in range(8))
        email = f"{rng.choice(LATIN[lang])}.{contact_id}@{rng.choice(MAIL_DOMAINS)}"
        created = BASE_TIME + index * 60
        contacts[contact_id] = {
            "id": contact_id,
            "name": f"{first} {last}",
            "first_name": first,
            "last_name": last,
            "responsible_user_id": rng.choice(user_ids),
            "group_id": 0,
            "created_by": user_ids[0],
            "updated_by": user_ids[0],
            "created_at": created,
            "updated_at": created + 30,
            "closest_task_at": None,
            "is_deleted": False,
            "is_unsorted": False,
            "custom_fields_values": [
                {
                    "field_id": PHONE_FIELD_ID,
                    "field_name": "Телефон",
                    "field_code": "PHONE",
                    "field_type": "multitext",
                    "values": [{"value": phone, "enum_id": 193200, "enum_code": rng.choice(("MOB", "WORK"))}],
                },
                {
                    "field_id": EMAIL_FIELD_ID,
                    "field_name": "Email",
                    "field_code": "EMAIL",
                    "field_type": "multitext",
                    "values": [{"value": email, "enum_id": 193212, "enum_code": "WORK"}],
                },
            ],
            "account_id": account_id,
        }
    contact_ids = list(contacts)

    leads = {}
    for index in range(size.leads):
        pipeline_id = rng.choice(list(pipelines))
        lead_id = 17_657 + index
        created = BASE_TIME + index * 90
        linked = []
        if contact_ids:
            main = contact_ids[index % len(contact_ids)]
            linked.append({"id": main, "is_main": True})
            if rng.random() < 0.2 and len(contact_ids) > 1:
                extra = rng.choice(contact_ids)
                if extra != main:
                    linked.append({"id": extra, "is_main": False})
        status_id = rng.choice(stage_ids[pipeline_id])
        leads[lead_id] = {
            "id": lead_id,
            "name": f"{rng.choice(LEAD_TITLES)} #{lead_id}",
            "price": rng.choice((0, 1500, 3200, 4500, 12000, 25000)),
            "responsible_user_id": rng.choice(user_ids),
            "group_id": 0,
            "status_id": status_id,
            "pipeline_id": pipeline_id,
            "loss_reason_id": None,
            "created_by": user_ids[0],
            "updated_by": user_ids[0],
            "created_at": created,
            "updated_at": created + 45,
            "closed_at": created + 45 if status_id in (142, 143) else None,
            "closest_task_at": None,
            "is_deleted": False,
            "score": None,
            "labor_cost": None,
            "account_id": account_id,
            "custom_fields_values": [
                {
                    "field_id": PROPERTY_FIELD_ID,
                    "field_name": "Объект",
                    "field_code": None,
                    "field_type": "text",
                    "values": [{"value": f"PROP-{1000 + rng.randint(0, 399)}"}],
                },
            ]
            if rng.random() < 0.8
            else None,
            "tags": [],
            "contacts": linked,
        }
    lead_ids = list(leads)

    tasks = {}
    for index in range(size.tasks):
        task_id = 4_745_251 + index
        created = BASE_TIME + index * 120
        on_lead = bool(lead_ids) and (rng.random() < 0.8 or not contact_ids)
        entity_id = rng.choice(lead_ids) if on_lead else (rng.choice(contact_ids) if contact_ids else None)
        completed = rng.random() < 0.3
        tasks[task_id] = {
            "id": task_id,
            "created_by": user_ids[0],
            "updated_by": user_ids[0],
            "created_at": created,
            "updated_at": created + 10,
            "responsible_user_id": rng.choice(user_ids),
            "group_id": 0,
            "entity_id": entity_id,
            "entity_type": ("leads" if on_lead else "contacts") if entity_id else None,
            "is_completed": completed,
            "task_type_id": rng.choice((1, 2)),
            "text": rng.choice(TASK_TEXTS),
            "duration": rng.choice((0, 1800, 3600)),
            "complete_till": created + 86400,
            "result": {"text": "Готово"} if completed else [],
            "account_id": account_id,
        }
    return {
        "pipelines": pipelines,
        "roles": roles,
        "users": users,
        "contacts": contacts,
        "leads": leads,
        "tasks": tasks,
    }
