"""Webhook bodies exactly as amoCRM sends them: form-encoded PHP bracket keys, legacy field
names, string values, an `account[...]` block (reference §9.1–§9.3, captures CAP-STATUS,
CAP-2018, CAP-ADD, CAP-TASK, CAP-NOTE)."""

from __future__ import annotations

from urllib.parse import quote

from tests.fixtures import ACCOUNT_ID, SUBDOMAIN


def encode(pairs: list[tuple[str, object]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in pairs)


def account(account_id: int = ACCOUNT_ID) -> list[tuple[str, object]]:
    return [
        ("account[subdomain]", SUBDOMAIN),
        ("account[id]", account_id),
        ("account[_links][self]", f"https://{SUBDOMAIN}.amocrm.ru"),
    ]


def lead_item(
    prefix: str, lead_id: int, status_id: int, pipeline_id: int, updated_at: int, old_status_id: int | None = None
) -> list[tuple[str, object]]:
    pairs = [
        (f"{prefix}[id]", lead_id),
        (f"{prefix}[name]", "Бронь квартиры"),
        (f"{prefix}[status_id]", status_id),
        (f"{prefix}[price]", 4500),
        (f"{prefix}[responsible_user_id]", 8375357),
        (f"{prefix}[last_modified]", updated_at),
        (f"{prefix}[modified_user_id]", 8375357),
        (f"{prefix}[created_user_id]", 8375357),
        (f"{prefix}[date_create]", 1690000000),
        (f"{prefix}[pipeline_id]", pipeline_id),
        (f"{prefix}[account_id]", ACCOUNT_ID),
        (f"{prefix}[custom_fields][0][id]", 900001),
        (f"{prefix}[custom_fields][0][name]", "Объект"),
        (f"{prefix}[custom_fields][0][values][0][value]", "PROP-1042"),
        (f"{prefix}[created_at]", 1690000000),
        (f"{prefix}[updated_at]", updated_at),
    ]
    if old_status_id is not None:
        pairs.insert(3, (f"{prefix}[old_status_id]", old_status_id))
    return pairs


def lead_status(
    lead_id: int, status_id: int, pipeline_id: int, updated_at: int, old_status_id: int, index: int = 0
) -> list[tuple[str, object]]:
    return lead_item(f"leads[status][{index}]", lead_id, status_id, pipeline_id, updated_at, old_status_id)


def lead_event(
    action: str,
    lead_id: int,
    status_id: int = 58141807,
    pipeline_id: int = 3177727,
    updated_at: int = 1700000000,
    index: int = 0,
) -> list[tuple[str, object]]:
    return lead_item(f"leads[{action}][{index}]", lead_id, status_id, pipeline_id, updated_at)


def lead_delete(lead_id: int) -> list[tuple[str, object]]:
    return [
        ("leads[delete][0][id]", lead_id),
        ("leads[delete][0][status_id]", 58141807),
        ("leads[delete][0][pipeline_id]", 3177727),
    ]


def contact_update(contact_id: int, name: str, phone: str, linked_lead: int, updated_at: int = 1700000300):
    p = "contacts[update][0]"
    return [
        (f"{p}[id]", contact_id),
        (f"{p}[name]", name),
        (f"{p}[responsible_user_id]", 8375357),
        (f"{p}[date_create]", 1690000000),
        (f"{p}[last_modified]", updated_at),
        (f"{p}[modified_user_id]", 8375357),
        (f"{p}[company_name]", ""),
        (f"{p}[linked_company_id]", ""),
        (f"{p}[custom_fields][0][id]", 264911),
        (f"{p}[custom_fields][0][name]", "Телефон"),
        (f"{p}[custom_fields][0][code]", "PHONE"),
        (f"{p}[custom_fields][0][values][0][value]", phone),
        (f"{p}[custom_fields][0][values][0][enum]", 193200),
        (f"{p}[linked_leads_id][{linked_lead}][ID]", linked_lead),
        (f"{p}[type]", "contact"),
    ]


def task_event(key: str, action: str, task_id: int, updated_at: int = 1700000400):
    p = f"{key}[{action}][0]"
    return [
        (f"{p}[id]", task_id),
        (f"{p}[element_id]", 17657),
        (f"{p}[element_type]", 2),
        (f"{p}[text]", "Перезвонить гостю"),
        (f"{p}[status]", 0),
        (f"{p}[complete_till]", 1700086400),
        (f"{p}[responsible_user_id]", 8375357),
        (f"{p}[date_create]", 1690000000),
        (f"{p}[last_modified]", updated_at),
        (f"{p}[account_id]", ACCOUNT_ID),
    ]


def lead_note(lead_id: int):
    p = "leads[note][0][note]"
    return [
        (f"{p}[id]", 555),
        (f"{p}[element_id]", lead_id),
        (f"{p}[element_type]", 2),
        (f"{p}[note_type]", 4),
        (f"{p}[text]", "Гость просит перезвонить"),
        (f"{p}[date_create]", "2023-11-14 22:13:20"),
        (f"{p}[timestamp_x]", "2023-11-14 22:13:20"),
    ]


def robot_status(lead_id: int, status_id: int, pipeline_id: int, old_status_id: int, index: int = 0):
    """A digital-pipeline "Send webhook" robot's stage change (reference §9.4, CAP-NOTE): five
    fields and the account, no timestamp at all."""
    prefix = f"leads[status][{index}]"
    return [
        (f"{prefix}[id]", lead_id),
        (f"{prefix}[status_id]", status_id),
        (f"{prefix}[pipeline_id]", pipeline_id),
        (f"{prefix}[old_status_id]", old_status_id),
        (f"{prefix}[old_pipeline_id]", pipeline_id),
    ]


def robot_account(account_id: int = ACCOUNT_ID) -> list[tuple[str, object]]:
    return [("account[id]", account_id), ("account[subdomain]", SUBDOMAIN)]
