"""Deterministic seed data: pipelines with their statuses, users, roles, contacts, leads, tasks.

Names, phones and e-mails are realistic Russian, Ukrainian and English ones; phones and
e-mails live only in contacts' `custom_fields_values` (PHONE / EMAIL multitext), as in amoCRM.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sandbox import entities

BASE_TIME = 1_700_000_000  # 2023-11-14; every seeded timestamp is after it
PROPERTY_FIELD_ID = 900001

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


def extra_phones(index: int, lang: str, first: str, rng: random.Random) -> list[tuple[str, str]]:
    """Every third contact has a second phone of the other kind (WORK + MOB): contacts carry
    several values of one multitext field (reference §5.3, §6); writing one drops the others."""
    if index % 3:
        return []
    return [
        (PHONE_PREFIX[lang] + "".join(str(rng.randint(0, 9)) for _ in range(8)), "WORK" if first == "MOB" else "MOB")
    ]


def extra_emails(index: int, contact_id: int, lang: str, rng: random.Random) -> list[tuple[str, str]]:
    """Every fourth contact has a private e-mail besides the work one."""
    if index % 4:
        return []
    return [(f"{rng.choice(LATIN[lang])}.{contact_id}.home@{rng.choice(MAIL_DOMAINS)}", "PRIV")]


def build(size: SeedSize, account_id: int) -> dict:
    """Everything the sandbox stores, as amoCRM v4 objects (without `_links`)."""
    rng = random.Random(size.seed)
    pipelines, stage_ids = {}, {}
    for index in range(max(1, size.pipelines)):
        title, middle, unsorted, won, lost = PIPELINE_STAGES[index % len(PIPELINE_STAGES)]
        pipeline_id = 6_950_551 + index * 1_000
        suffix = f" {index // len(PIPELINE_STAGES) + 1}" if index >= len(PIPELINE_STAGES) else ""
        statuses = entities.pipeline_statuses(
            pipeline_id,
            account_id=account_id,
            unsorted=(58_141_803 + index * 100, unsorted),
            stages=[
                (58_141_807 + index * 100 + position, name, COLOURS[position % len(COLOURS)])
                for position, name in enumerate(middle)
            ],
            won=won,
            lost=lost,
        )
        pipelines[pipeline_id] = {
            **entities.pipeline(
                pipeline_id, name=title + suffix, sort=(index + 1) * 10, account_id=account_id, is_main=index == 0
            ),
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
    more = random.Random(size.seed + 1)  # second phones and e-mails: the main draws stay as they were
    for index in range(size.contacts):
        lang = rng.choice(("ru", "uk", "en"))
        first, last = rng.choice(FIRST_NAMES[lang]), rng.choice(LAST_NAMES[lang])
        contact_id = 12_117_258 + index
        phone = PHONE_PREFIX[lang] + "".join(str(rng.randint(0, 9)) for _ in range(8))
        email = f"{rng.choice(LATIN[lang])}.{contact_id}@{rng.choice(MAIL_DOMAINS)}"
        created = BASE_TIME + index * 60
        responsible = rng.choice(user_ids)
        kind = rng.choice(("MOB", "WORK"))
        contacts[contact_id] = entities.contact(
            contact_id,
            name=f"{first} {last}",
            account_id=account_id,
            responsible_user_id=responsible,
            created_by=user_ids[0],
            created_at=created,
            updated_at=created + 30,
            custom_fields_values=[
                entities.multitext("PHONE", [(phone, kind), *extra_phones(index, lang, kind, more)]),
                entities.multitext("EMAIL", [(email, "WORK"), *extra_emails(index, contact_id, lang, more)]),
            ],
        )
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
        name = f"{rng.choice(LEAD_TITLES)} #{lead_id}"
        price = rng.choice((0, 1500, 3200, 4500, 12000, 25000))
        responsible = rng.choice(user_ids)
        has_property = rng.random() < 0.8
        fields = (
            [entities.text_field(PROPERTY_FIELD_ID, "Объект", f"PROP-{1000 + rng.randint(0, 399)}")]
            if has_property
            else None
        )
        leads[lead_id] = {
            **entities.lead(
                lead_id,
                name=name,
                pipeline_id=pipeline_id,
                status_id=status_id,
                account_id=account_id,
                responsible_user_id=responsible,
                created_by=user_ids[0],
                created_at=created,
                updated_at=created + 45,
                price=price,
                custom_fields_values=fields,
            ),
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
        responsible = rng.choice(user_ids)
        task_type_id, text, duration = rng.choice((1, 2)), rng.choice(TASK_TEXTS), rng.choice((0, 1800, 3600))
        tasks[task_id] = entities.task(
            task_id,
            text=text,
            account_id=account_id,
            responsible_user_id=responsible,
            created_by=user_ids[0],
            created_at=created,
            updated_at=created + 10,
            complete_till=created + 86400,
            entity=("leads" if on_lead else "contacts", entity_id) if entity_id else None,
            task_type_id=task_type_id,
            duration=duration,
            is_completed=completed,
            result="Готово" if completed else None,
        )
    return {
        "pipelines": pipelines,
        "roles": roles,
        "users": users,
        "contacts": contacts,
        "leads": leads,
        "tasks": tasks,
    }
