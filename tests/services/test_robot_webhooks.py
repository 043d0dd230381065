"""A digital-pipeline robot's compact stage change (reference §9.4) carries no timestamp: the
lead's version comes from amoCRM, never from our clock, and the event id follows from it."""

import time

import pytest

from chalicelib import wiring
from chalicelib.models import IdempotencyRecord, Lead
from chalicelib.services import leads
from tests import webhook_bodies as wb
from tests.conftest import WEBHOOK_PATH
from tests.fixtures import lead
from tests.services.test_webhooks import FORM, INITIAL, NEGOTIATION, SALES, fake, main_backend_calls, seed_lead

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

__all__ = ["fake"]  # the fixture, shared with test_webhooks.py


def deliver_robot(client, pairs):
    return client.http.post(WEBHOOK_PATH, headers=FORM, body=wb.encode(pairs + wb.robot_account()))


def move_in_amocrm(fake, lead_id, status_id, updated_at):
    fake.leads = [item for item in fake.leads if item["id"] != lead_id] + [
        lead(lead_id, status_id=status_id, contact_ids=(1,), updated_at=updated_at)
    ]


def lead_gets(amo, lead_id):
    return [c for c in amo.calls if c.request.url.startswith(f"https://testaccount.amocrm.ru/api/v4/leads/{lead_id}")]


def test_a_robot_stage_change_stores_amocrms_updated_at_not_our_clock(client, fake, amo):
    seed_lead(fake, updated_at=1700000000)
    move_in_amocrm(fake, 17657, NEGOTIATION, 1700000900)

    response = deliver_robot(client, wb.robot_status(17657, NEGOTIATION, SALES, INITIAL))

    assert response.json_body == {"status": "ok", "processed": 1, "errors": []}
    stored = Lead.get(leads.lead_id_for(17657))
    assert (stored.status, stored.amo_status_id, stored.amo_updated_at) == ("IN_PROGRESS", NEGOTIATION, 1700000900)
    assert stored.amo_updated_at < time.time() - 3600  # amoCRM's version, nowhere near our clock
    assert len(main_backend_calls(amo)) == 1


def test_a_genuine_update_after_a_robot_change_is_not_taken_for_stale(client, fake, amo):
    seed_lead(fake, updated_at=1700000000)
    move_in_amocrm(fake, 17657, NEGOTIATION, 1700000900)
    deliver_robot(client, wb.robot_status(17657, NEGOTIATION, SALES, INITIAL))

    response = client.http.post(
        WEBHOOK_PATH,
        headers=FORM,
        body=wb.encode(wb.lead_status(17657, INITIAL, SALES, 1700001000, NEGOTIATION) + wb.account()),
    )

    assert response.json_body["errors"] == []
    assert Lead.get(leads.lead_id_for(17657)).status == "NEW"
    assert len(main_backend_calls(amo)) == 2


def test_a_retried_robot_delivery_is_applied_once(client, fake, amo):
    seed_lead(fake, updated_at=1700000000)
    move_in_amocrm(fake, 17657, NEGOTIATION, 1700000900)
    body = wb.robot_status(17657, NEGOTIATION, SALES, INITIAL)

    deliver_robot(client, body)
    deliver_robot(client, body)

    assert len(main_backend_calls(amo)) == 1
    marks = [r.key for r in IdempotencyRecord.scan() if r.key.startswith("webhook:leads-status-17657-")]
    assert len(marks) == 1


def test_a_later_move_to_the_same_stage_is_not_mistaken_for_the_first(client, fake, amo):
    seed_lead(fake, updated_at=1700000000)
    body = wb.robot_status(17657, NEGOTIATION, SALES, INITIAL)
    move_in_amocrm(fake, 17657, NEGOTIATION, 1700000900)
    deliver_robot(client, body)
    move_in_amocrm(fake, 17657, INITIAL, 1700001000)  # moved back by a person …
    client.http.post(
        WEBHOOK_PATH,
        headers=FORM,
        body=wb.encode(wb.lead_status(17657, INITIAL, SALES, 1700001000, NEGOTIATION) + wb.account()),
    )
    move_in_amocrm(fake, 17657, NEGOTIATION, 1700001100)  # … and the robot moves it again

    response = deliver_robot(client, body)

    assert response.json_body["errors"] == []
    stored = Lead.get(leads.lead_id_for(17657))
    assert (stored.status, stored.amo_updated_at) == ("IN_PROGRESS", 1700001100)
    assert len(main_backend_calls(amo)) == 3
    marks = [r.key for r in IdempotencyRecord.scan() if r.key.startswith("webhook:leads-status-17657-")]
    assert len(marks) == 3  # two robot moves, one person's move: three ids


def test_a_burst_of_robot_changes_is_fetched_in_one_batch(client, fake, amo):
    for lead_id in (101, 102, 103):
        seed_lead(fake, lead_id=lead_id, updated_at=1700000000)
    fake.leads = [lead(i, status_id=NEGOTIATION, contact_ids=(1,), updated_at=1700000500 + i) for i in (101, 102, 103)]
    amo.calls.reset()

    pairs = [
        p for i, lead_id in enumerate((101, 102, 103)) for p in wb.robot_status(lead_id, NEGOTIATION, SALES, INITIAL, i)
    ]
    response = deliver_robot(client, pairs)

    assert response.json_body["processed"] == 3 and response.json_body["errors"] == []
    listed = [c for c in amo.calls if c.request.url.split("?")[0].endswith("/api/v4/leads")]
    assert len(listed) == 1 and "filter%5Bid%5D%5B%5D=101" in listed[0].request.url
    assert not any(lead_gets(amo, lead_id) for lead_id in (101, 102, 103))
    assert [Lead.get(leads.lead_id_for(i)).amo_updated_at for i in (101, 102, 103)] == [
        1700000601,
        1700000602,
        1700000603,
    ]


def test_a_robot_change_for_a_lead_amocrm_no_longer_has_is_not_found(client, fake, amo):
    seed_lead(fake, updated_at=1700000000)
    fake.leads = []

    response = deliver_robot(client, wb.robot_status(17657, NEGOTIATION, SALES, INITIAL))

    assert response.json_body["errors"] == []
    assert Lead.get(leads.lead_id_for(17657)).amo_updated_at == 1700000000
    assert main_backend_calls(amo) == []


def test_apply_status_without_a_time_asks_amocrm(client, fake, amo):
    seed_lead(fake, updated_at=1700000000)
    move_in_amocrm(fake, 17657, NEGOTIATION, 1700000900)

    assert (
        leads.apply_status(wiring.amo(), amo_lead_id=17657, pipeline_id=SALES, status_id=NEGOTIATION, changed_at=None)
        == "applied"
    )
    assert Lead.get(leads.lead_id_for(17657)).amo_updated_at == 1700000900


def test_a_responsible_change_fetches_the_lead_and_stores_its_new_responsible_user(client, fake, amo):
    seed_lead(fake, updated_at=1700000000)
    changed = lead(17657, status_id=INITIAL, contact_ids=(1,), updated_at=1700000700)
    fake.leads = [{**changed, "responsible_user_id": 9000001}]

    pairs = wb.lead_event("responsible", 17657, INITIAL, SALES, 1700000700)
    response = client.http.post(WEBHOOK_PATH, headers=FORM, body=wb.encode(pairs + wb.account()))

    assert response.json_body["errors"] == []
    stored = Lead.get(leads.lead_id_for(17657))
    assert (stored.responsible_user_id, stored.amo_updated_at) == (9000001, 1700000700)
