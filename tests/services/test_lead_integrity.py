"""Nothing lost, nothing doubled, writes never go backwards (issue 13, items 1, 4, 5, 6):
- a lead's status change and its outbox record land together or not at all, on every path;
- a sync never overwrites what a webhook wrote between the sync's read and its write;
- one item DynamoDB refuses never fails a whole sync;
- an amoCRM time far in the future cannot freeze a lead, a price out of range cannot reach DynamoDB."""

import json
import time

import pytest
from botocore.exceptions import ClientError
from pynamodb.connection.base import Connection
from pynamodb.exceptions import PynamoDBException

from chalicelib import settings, wiring
from chalicelib.models import AmoContact, Lead, Notification
from chalicelib.services import contacts, leads, mirror, pipelines, sync
from tests import fixtures
from tests import webhook_bodies as wb
from tests.conftest import API_KEY, WEBHOOK_PATH
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, contact, lead, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MAIN = "https://main.example.com/hooks/amocrm"
SALES, INITIAL, NEGOTIATION, WON = 3177727, 58141807, 58141811, 142
YEAR_2100 = 4102444800


@pytest.fixture
def fake(amo, monkeypatch):
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", MAIN)
    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    pipelines.update_stage_mapping(INITIAL, "NEW")
    pipelines.update_stage_mapping(NEGOTIATION, "IN_PROGRESS")
    amo.post(MAIN, json={"ok": True})
    return FakeAmo(amo)


@pytest.fixture
def outbox_fails(monkeypatch):
    """Every DynamoDB request that writes to the notifications table is throttled while `failing`
    is set (what DynamoDB answers when the retries of the SDK are spent)."""
    state = {"failing": True}
    real = Connection._make_api_call

    def touches_outbox(kwargs):
        table = settings.table_prefix() + "notifications"
        items = [kwargs] + [next(iter(t.values())) for t in kwargs.get("TransactItems", [])]
        return any(i.get("TableName") == table for i in items) or table in kwargs.get("RequestItems", {})

    def call(self, operation, kwargs):
        if state["failing"] and operation != "GetItem" and touches_outbox(kwargs):
            raise ClientError(
                {
                    "Error": {
                        "Code": "ProvisionedThroughputExceededException",
                        "Message": "Rate of requests exceeds the allowed throughput",
                    }
                },
                operation,
            )
        return real(self, operation, kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", call)
    return state


def stored(amo_lead_id):
    return Lead.get(leads.lead_id_for(amo_lead_id))


def notified(amo_lead_id):
    return [n.payload for n in Notification.scan() if n.payload["amoLeadId"] == amo_lead_id]


def seed(fake, lead_id=60, status_id=INITIAL, updated_at=1700000000):
    fake.contacts[1] = contact(1)
    fake.leads = [lead(lead_id, status_id=status_id, contact_ids=(1,), updated_at=updated_at)]
    leads.fetch_and_upsert(wiring.amo(), lead_id)


# -- 1. the lead write and its outbox record are one atomic step --------------------------------


def test_a_status_webhook_whose_outbox_write_failed_notifies_once_when_redelivered(client, fake, outbox_fails):
    seed(fake)
    body = wb.encode(wb.lead_status(60, NEGOTIATION, SALES, 1700000500, INITIAL) + wb.account())

    first = client.http.post(WEBHOOK_PATH, headers=FORM, body=body)
    assert first.status_code == 200 and first.json_body["errors"]  # failed, recorded, retried by amoCRM
    outbox_fails["failing"] = False
    again = client.http.post(WEBHOOK_PATH, headers=FORM, body=body)

    assert again.json_body["errors"] == []
    assert stored(60).status == "IN_PROGRESS"
    assert [(n["previousStatus"], n["status"]) for n in notified(60)] == [("NEW", "IN_PROGRESS")]


def test_a_synced_status_change_whose_outbox_write_failed_is_notified_by_the_next_sync(fake, outbox_fails):
    fake.leads = [lead(61, status_id=INITIAL)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    fake.leads = [lead(61, status_id=NEGOTIATION, updated_at=1700000600)]

    with pytest.raises(PynamoDBException):
        sync.sync_leads_from_amo(wiring.amo(), limit=0)
    outbox_fails["failing"] = False
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert stored(61).status == "IN_PROGRESS"
    assert [(n["previousStatus"], n["status"]) for n in notified(61)] == [("NEW", "IN_PROGRESS")]


def test_a_single_lead_upsert_whose_outbox_write_failed_notifies_once_when_retried(fake, outbox_fails):
    seed(fake, 62)
    changed = lead(62, status_id=NEGOTIATION, contact_ids=(1,), updated_at=1700000700)

    with pytest.raises(PynamoDBException):
        leads.sync_lead(wiring.amo(), changed)
    outbox_fails["failing"] = False
    leads.sync_lead(wiring.amo(), changed)

    assert [(n["previousStatus"], n["status"]) for n in notified(62)] == [("NEW", "IN_PROGRESS")]


# -- 4. a sync never replaces a newer version ----------------------------------------------------


@pytest.fixture
def webhook_between_read_and_write(monkeypatch):
    """Runs `act` once, right after the next read of stored items of `model` (a sync's read)."""
    real = mirror.batch_get_items  # mirror.batch_get reads through it too

    def arm(model, act):
        def batch_get_items(read_model, keys):
            found = real(read_model, keys)
            if read_model is model and act:
                act.pop()()
            return found

        act = [act]
        monkeypatch.setattr(mirror, "batch_get_items", batch_get_items)

    return arm


def test_a_status_webhook_landing_between_a_syncs_read_and_write_is_not_overwritten(
    fake, webhook_between_read_and_write
):
    seed(fake, 63)
    fake.leads = [lead(63, status_id=NEGOTIATION, contact_ids=(1,), updated_at=1700000200)]
    webhook_between_read_and_write(
        Lead,
        lambda: leads.apply_status(
            wiring.amo(),
            amo_lead_id=63,
            pipeline_id=SALES,
            status_id=WON,
            changed_at=1700000300,
            old_pipeline_id=SALES,
            old_status_id=INITIAL,
        ),
    )

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert result["errors"] == []
    assert (stored(63).amo_status_id, stored(63).status, stored(63).amo_updated_at) == (WON, "CLOSED", 1700000300)
    assert [(n["previousStatus"], n["status"], n["stageId"]) for n in notified(63)] == [("NEW", "CLOSED", WON)]


def test_a_contact_changed_between_a_syncs_read_and_write_keeps_its_newer_version(fake, webhook_between_read_and_write):
    contacts.store([contact(5, name="Олена Коваленко", updated_at=1700000000)])
    webhook_between_read_and_write(
        AmoContact, lambda: contacts.apply(contact(5, name="Олена Шевченко", updated_at=1700000300))
    )

    contacts.sync_page([contact(5, name="Олена Бондар", updated_at=1700000200)])

    assert (AmoContact.get(5).name, AmoContact.get(5).amo_updated_at) == ("Олена Шевченко", 1700000300)


def test_a_contact_change_whose_lead_write_failed_reaches_its_leads_when_redelivered(fake, monkeypatch):
    """Regression (issue 23): the contact was written before its leads, so the redelivery found
    it current and the leads kept the old phone for good."""
    seed(fake, 64)
    contacts.store([contact(1, name="Олена Коваленко", phone="+380501112233", updated_at=1700000000)])
    changed = contact(1, name="Олена Коваленко", phone="+380509998877", updated_at=1700000300)
    real_update = Lead.update

    def throttled(self, *args, **kwargs):
        raise PynamoDBException("ProvisionedThroughputExceededException")

    monkeypatch.setattr(Lead, "update", throttled)
    with pytest.raises(PynamoDBException):
        contacts.apply(changed)
    monkeypatch.setattr(Lead, "update", real_update)

    assert AmoContact.get(1).amo_updated_at == 1700000000  # not current yet: the redelivery applies it
    contacts.apply(changed)
    assert (stored(64).guest_phone, AmoContact.get(1).phone) == ("+380509998877", "+380509998877")


def test_the_contacts_sync_brings_a_changed_contact_to_its_leads(fake):
    seed(fake, 65)
    contacts.store([contact(1, name="Олена Коваленко", updated_at=1700000000)])
    contacts.sync_page([contact(1, name="Олена Бондар", updated_at=1700000400)])
    assert stored(65).guest_name == "Олена Бондар"


def test_a_stale_contacts_page_leaves_the_leads_with_the_newer_contact(fake, webhook_between_read_and_write):
    seed(fake, 66)
    contacts.store([contact(1, name="Олена Коваленко", updated_at=1700000000)])
    webhook_between_read_and_write(
        AmoContact, lambda: contacts.apply(contact(1, name="Олена Шевченко", updated_at=1700000300))
    )
    contacts.sync_page([contact(1, name="Олена Бондар", updated_at=1700000200)])
    assert (stored(66).guest_name, AmoContact.get(1).name) == ("Олена Шевченко", "Олена Шевченко")


# -- 5. one item DynamoDB refuses is an error, not a failed sync ---------------------------------


def huge_field(field_id, size=450_000):
    return {
        "field_id": field_id,
        "field_name": "Заметки",
        "field_code": None,
        "field_type": "textarea",
        "values": [{"value": "я" * size}],
    }


def test_a_lead_with_custom_fields_too_big_for_dynamodb_is_stored_truncated_with_a_marker(fake):
    small = {
        "field_id": 900001,
        "field_name": "Объект",
        "field_code": None,
        "field_type": "text",
        "values": [{"value": "PROP-7"}],
    }
    fake.leads = [lead(2000 + i) for i in range(30)]
    fake.leads[7] = lead(2007, custom_fields=[small, huge_field(900002), small | {"field_id": 900003}])

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert result == {"synced": 30, "errors": []}
    kept = stored(2007).custom_fields
    assert [f["field_id"] for f in kept[:-1]] == [900001, 900003]
    assert kept[-1]["truncated"] is True and kept[-1]["omitted_field_ids"] == [900002]
    assert len(json.dumps(kept)) <= leads.MAX_CUSTOM_FIELDS_BYTES


def test_a_contact_dynamodb_refuses_is_reported_and_the_others_are_stored(fake):
    fake.contacts = {c: contact(c) for c in range(300, 330)}
    fake.contacts[311] = contact(311, name="Очень " + "длинное имя " * 40_000)

    result = sync.sync_contacts(wiring.amo(), limit=0)

    assert result["synced"] == 29
    assert [e["id"] for e in result["errors"]] == [311] and "refused" in result["errors"][0]["message"]
    assert sorted(c.id for c in AmoContact.scan()) == [c for c in range(300, 330) if c != 311]


def test_a_changed_lead_dynamodb_refuses_is_reported_and_the_others_are_written(fake, monkeypatch):
    fake.leads = [lead(2100 + i) for i in range(5)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    fake.leads = [lead(2100 + i, price=2000, updated_at=1700000500) for i in range(5)]
    monkeypatch.setattr(leads, "MAX_CUSTOM_FIELDS_BYTES", 10**7, raising=False)  # as if the bound were wrong
    fake.leads[2]["custom_fields_values"] = [huge_field(900002, 500_000)]

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert result["synced"] == 4 and [e["id"] for e in result["errors"]] == [2102]
    assert [stored(2100 + i).price for i in range(5)] == [2000, 2000, 1000, 2000, 2000]


# -- 6. what comes from outside is bounded ------------------------------------------------------


def test_sync_lead_refuses_an_updated_at_far_in_the_future(client, fake):
    seed(fake, 64)
    forged = lead(64, status_id=NEGOTIATION, contact_ids=(1,), updated_at=YEAR_2100)

    response = client.http.post(
        f"{P}/sync-lead",
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        body=json.dumps({"lead": forged}),
    )

    assert response.status_code == 400 and "updated_at" in response.json_body["Message"]
    assert (stored(64).amo_status_id, stored(64).amo_updated_at) == (INITIAL, 1700000000)


def test_a_status_webhook_dated_in_the_future_is_checked_with_amocrm_and_freezes_nothing(client, fake):
    seed(fake, 65)
    fake.leads = [lead(65, status_id=NEGOTIATION, contact_ids=(1,), updated_at=1700000500)]  # amoCRM's truth

    client.http.post(
        WEBHOOK_PATH,
        headers=FORM,
        body=wb.encode(wb.lead_status(65, NEGOTIATION, SALES, YEAR_2100, INITIAL) + wb.account()),
    )
    assert (stored(65).status, stored(65).amo_updated_at) == ("IN_PROGRESS", 1700000500)
    later = int(time.time())
    client.http.post(
        WEBHOOK_PATH, headers=FORM, body=wb.encode(wb.lead_status(65, WON, SALES, later, NEGOTIATION) + wb.account())
    )

    assert (stored(65).status, stored(65).amo_updated_at) == ("CLOSED", later)


def test_a_price_that_is_not_a_finite_number_below_2_53_is_an_error_not_a_failed_sync(fake):
    fake.leads = [
        lead(2200, price=float("nan")),
        lead(2201, price=10**40),
        lead(2202, price=float("inf")),
        lead(2203, price=1500),
    ]

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert result["synced"] == 1 and sorted(e["id"] for e in result["errors"]) == [2200, 2201, 2202]
    assert [item.amo_lead_id for item in Lead.scan()] == [2203]


def test_a_sync_that_listed_a_lead_before_its_delete_does_not_link_it_again(fake):
    """Regression (issue 23): unlink() bumped no version, so a sync page read before the delete
    wrote the link back."""
    seed(fake, 67)
    listed_before_the_delete = lead(67, status_id=INITIAL, contact_ids=(1,), updated_at=1700000000)
    leads.unlink(67)

    from chalicelib.amo.leads import read_lead
    from chalicelib.services.sync import lead_pages

    lead_pages.write_batch([read_lead(listed_before_the_delete)], {}, {})
    assert stored(67).amo_lead_id is None

    restored = lead(67, status_id=INITIAL, contact_ids=(1,), updated_at=int(time.time()) + 60)
    lead_pages.write_batch([read_lead(restored)], {}, {})
    assert stored(67).amo_lead_id == 67


def test_a_status_change_recorded_before_its_answer_was_lost_is_dispatched_by_the_retry(fake, amo):
    """Regression (issue 23): the retry found the notification recorded and wrote the lead
    again, but never dispatched the notification: it waited for the hourly sweeper."""
    from chalicelib.services import lead_status, notifications

    seed(fake, 68)
    before = Lead.get(leads.lead_id_for(68))
    changed = Lead.get(leads.lead_id_for(68))
    changed.status, changed.amo_status_id = "IN_PROGRESS", NEGOTIATION
    change = lead_status.stage_changed(changed, "NEW", 1700000500)
    notifications.outbox_item(
        changed, previous_status="NEW", occurred_at=1700000500, reason=change.reason, event_id=change.event_id
    ).save()  # the first attempt's transaction landed (with its note); its answer was lost

    mapping = pipelines.mapping_of(SALES, NEGOTIATION)
    assert lead_status.write(changed, condition=Lead.status == before.status, change=change, mapping=mapping) is True

    assert Notification.get(change.event_id).state == "sent"
    assert [c for c in amo.calls if c.request.url == MAIN]
