"""Deletes reach the mirror, and a guest can be forgotten (issue 25), on the sandbox: the app in
this process, moto, and a sandbox in a thread as amoCRM (tests/faults/world.py).

- a lead deleted in amoCRM with no webhook is unlinked by the next incremental run, through the
  events log; a lead deleted and restored stays linked;
- a contact deleted in amoCRM leaves no row and no guest field behind (events log or webhook);
- `guests/erase` leaves no trace of the person's name, phone or e-mail in any table (every
  table's items are scanned) and, with alsoInAmo, none in the sandbox's contact;
- a webhook whose contact has a phone and an e-mail leaves neither in the activity log.
"""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest

from chalicelib import wiring
from chalicelib.models import ALL_MODELS, AmoActivityLog, AmoContact, AmoTask, Lead, SyncState
from chalicelib.services import leads, sync
from sandbox.webhooks import form_encode, legacy_contact
from tests.faults.world import World

GUEST = {"name": "Zofia Quintero-Hale", "phone": "+7 (912) 555-01-77", "email": "Zofia.QH@example.org"}
PHONE_DIGITS = "9125550177"


@pytest.fixture
def amo():
    """The sandbox is amoCRM, over HTTP (overrides the suite-wide `responses` mock)."""
    yield None


@pytest.fixture
def world(_pristine_tables):
    with World(_pristine_tables, queued=False) as built:
        status, answer = built.call("POST", "sync-all?full=true")
        assert status == 200, answer
        yield built


def linked(amo_lead_id: int) -> int | None:
    return Lead.get(leads.lead_id_for(amo_lead_id)).amo_lead_id


def guest_of(amo_lead_id: int) -> tuple:
    lead = Lead.get(leads.lead_id_for(amo_lead_id))
    return (lead.guest_name, lead.guest_phone, lead.guest_email)


def incremental_run() -> dict:
    return sync.scheduled_sync(wiring.amo())


def every_item_as_text() -> dict[str, str]:
    """Every table's items, each table as one JSON text (what a person's data would be found in)."""
    return {
        model.Meta.table_name: json.dumps([item.to_dict() for item in model.scan()], ensure_ascii=False, default=str)
        for model in ALL_MODELS
    }


def traces(text: str) -> list[str]:
    lowered, digits = text.lower(), re.sub(r"\D", "", text)
    found = [value for value in ("zofia", "quintero", "zofia.qh@example.org") if value in lowered]
    return found + (["phone"] if PHONE_DIGITS in digits else [])


def new_guest_lead(world: World) -> tuple[int, int]:
    status, answer = world.call(
        "POST",
        "create-lead",
        {"leadData": {"name": "Booking: loft", "price": 900}, "contact": GUEST},
        {"Idempotency-Key": "guest-1"},
    )
    assert status == 200, answer
    contact_id = Lead.get(leads.lead_id_for(answer["amoLeadId"])).amo_contact_id
    assert contact_id in world.sandbox.contacts
    return answer["amoLeadId"], contact_id


def contact_webhook(world: World, contact_id: int, lead_id: int) -> str:
    """A `contacts[update]` delivery as the sandbox's amoCRM sends it (form-encoded, legacy names)."""
    item = legacy_contact(world.sandbox.contacts[contact_id], [lead_id])
    account = {"id": world.sandbox.config.account_id, "subdomain": world.sandbox.config.subdomain}
    return form_encode({"contacts": {"update": [item]}, "account": account})


# -- deletes no webhook delivered -------------------------------------------------------------------


def test_a_lead_deleted_without_a_webhook_is_unlinked_by_the_next_incremental_run(world):
    gone, back, kept = sorted(world.sandbox.leads)[:3]
    incremental_run()  # the cursor starts here
    world.control("POST", "delete", {"entity": "leads", "id": gone})
    world.control("POST", "delete", {"entity": "leads", "id": back})
    time.sleep(1.1)  # events carry seconds; in one second the delete is kept and amoCRM's GET decides
    world.control("POST", "restore", {"entity": "leads", "id": back})
    world.control("POST", "stats/reset")

    result = incremental_run()

    assert linked(gone) is None  # unlinked; our record stays
    assert Lead.get(leads.lead_id_for(gone)).id == leads.lead_id_for(gone)
    assert linked(back) == back and linked(kept) == kept
    assert result["deletes"]["applied"] == {"leads": {"unlinked": 1}}
    assert SyncState.get("events").last_success_started_at  # the cursor moved
    assert [i.outcome for i in AmoActivityLog.query(f"leads#{gone}")] == ["unlinked"]
    requests = world.control("GET", "stats")["by_path"]
    assert requests["GET /api/v4/events"] == 1
    assert not any(str(back) in path for path in requests)  # cancelled by its restore: not even asked


class ClockBehind:
    """amoCRM's clock an hour behind ours (every timestamp the sandbox stamps)."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def time():
        return time.time() - 3600


def test_a_lead_restored_soon_after_its_delete_is_linked_again_though_amocrms_clock_is_behind(world, monkeypatch):
    """The unlink is versioned by amoCRM's delete time (its trash), not by our clock: ours an
    hour ahead made the restore's `updated_at` look older than the delete, and it was dropped."""
    import sandbox.account

    monkeypatch.setattr(sandbox.account, "time", ClockBehind())
    lead_id = sorted(world.sandbox.leads)[0]
    account = {"id": world.sandbox.config.account_id, "subdomain": world.sandbox.config.subdomain}
    world.control("POST", "delete", {"entity": "leads", "id": lead_id})
    assert world.webhook(form_encode({"leads": {"delete": [{"id": lead_id}]}, "account": account}))[0] == 200
    assert linked(lead_id) is None

    world.control("POST", "restore", {"entity": "leads", "id": lead_id})
    assert world.webhook(form_encode({"leads": {"restore": [{"id": lead_id}]}, "account": account}))[0] == 200
    assert linked(lead_id) == lead_id


def test_with_amocrms_clock_behind_ours_an_incremental_run_still_reads_what_changed_since_the_last(world, monkeypatch):
    """The windows are drawn on amoCRM's clock (its answers' `Date`): drawn on ours, an amoCRM
    an hour behind had every change between two runs fall before the next window."""
    import sandbox.account

    monkeypatch.setattr(sandbox.account, "time", ClockBehind())
    incremental_run()  # the cursor, where amoCRM's clock is
    time.sleep(1.1)  # a change in a later second
    [lead_id] = world.control("POST", "touch", {"entity": "leads", "count": 1})["changed"]
    changed_at = world.sandbox.leads[lead_id]["updated_at"]
    assert Lead.get(leads.lead_id_for(lead_id)).amo_updated_at < changed_at

    incremental_run()

    assert Lead.get(leads.lead_id_for(lead_id)).amo_updated_at == changed_at


def test_sync_all_incremental_reconciles_too_and_a_full_one_does_not_read_events(world):
    gone = sorted(world.sandbox.leads)[0]
    world.control("POST", "delete", {"entity": "leads", "id": gone})
    world.control("POST", "stats/reset")
    status, _ = world.call("POST", "sync-all?full=true")
    assert status == 200 and linked(gone) == gone
    assert "GET /api/v4/events" not in world.control("GET", "stats")["by_path"]
    status, answer = world.call("POST", "sync-all?full=false")
    assert status == 200 and answer["deletes"]["applied"] == {"leads": {"unlinked": 1}}
    assert linked(gone) is None


def test_without_rights_to_the_events_log_status_says_so_and_linked_leads_are_checked_in_the_trash(world):
    gone = sorted(world.sandbox.leads)[1]
    world.control("POST", "config", {"events_api": "forbidden"})
    world.control("POST", "delete", {"entity": "leads", "id": gone})
    world.control("POST", "stats/reset")

    result = incremental_run()

    assert result["deletes"]["status"] == "fallback" and result["deletes"]["unlinked"] == 1
    assert linked(gone) is None
    requests = world.control("GET", "stats")["by_path"]
    assert requests.get("GET /api/v4/events") == 1
    assert requests.get("GET /api/v4/leads", 0) <= 2  # the incremental page and the trash: not the account
    status, answer = world.call("GET", "test")
    assert status == 200 and "403" in answer["deletes"]
    assert incremental_run()["deletes"]["status"] == "skipped"  # checked at most hourly


# -- contacts deleted in amoCRM ---------------------------------------------------------------------


def test_a_contact_deleted_in_amocrm_leaves_no_row_and_no_guest_field(world):
    lead_id, contact_id = new_guest_lead(world)
    assert Lead.get(leads.lead_id_for(lead_id)).guest_email == GUEST["email"]
    incremental_run()
    world.control("POST", "delete", {"entity": "contacts", "id": contact_id})

    incremental_run()

    with pytest.raises(AmoContact.DoesNotExist):
        AmoContact.get(contact_id)
    lead = Lead.get(leads.lead_id_for(lead_id))
    assert (lead.guest_name, lead.guest_phone, lead.guest_email) == (None, None, None)
    assert lead.amo_lead_id == lead_id  # the lead stays linked
    assert {name: found for name, text in every_item_as_text().items() if (found := traces(text))} == {}


def test_a_contact_delete_webhook_is_confirmed_then_erases_and_its_restore_fetches_it_again(world):
    lead_id, contact_id = new_guest_lead(world)
    account = {"id": world.sandbox.config.account_id, "subdomain": world.sandbox.config.subdomain}
    delete = form_encode({"contacts": {"delete": [{"id": contact_id, "type": "contact"}]}, "account": account})

    assert world.webhook(delete)[0] == 200  # amoCRM still has it: a forged delete changes nothing
    assert AmoContact.get(contact_id).email == GUEST["email"]

    world.control("POST", "delete", {"entity": "contacts", "id": contact_id})
    assert world.webhook(delete)[0] == 200
    with pytest.raises(AmoContact.DoesNotExist):
        AmoContact.get(contact_id)
    assert Lead.get(leads.lead_id_for(lead_id)).guest_phone is None

    world.control("POST", "restore", {"entity": "contacts", "id": contact_id})
    restore = form_encode({"contacts": {"restore": [{"id": contact_id, "type": "contact"}]}, "account": account})
    assert world.webhook(restore)[0] == 200
    assert Lead.get(leads.lead_id_for(lead_id)).guest_email == GUEST["email"]


# -- a guest who asked to be forgotten --------------------------------------------------------------


def test_guests_erase_leaves_no_trace_in_any_table_nor_in_amocrms_contact(world):
    lead_id, contact_id = new_guest_lead(world)
    world.webhook(contact_webhook(world, contact_id, lead_id))
    status, _ = world.call(
        "POST",
        "tasks",
        {
            "text": f"Call {GUEST['name']} on {GUEST['phone']}",
            "complete_till": int(time.time()) + 3600,
            "entity_id": lead_id,
            "entity_type": "leads",
        },
    )
    assert status in (200, 201)
    late = {"text": "Quintero asks for a late check-in", "complete_till": int(time.time()) + 7200}
    assert world.call("POST", "tasks", {**late, "entity_id": lead_id, "entity_type": "leads"})[0] in (200, 201)
    assert traces(json.dumps(every_item_as_text(), ensure_ascii=False))  # the person is there to erase

    status, answer = world.call("POST", "guests/erase", {"email": " ZOFIA.qh@example.ORG ", "alsoInAmo": True})

    assert status == 200, answer
    assert answer["amoContactId"] == contact_id and answer["amoChanged"] is True
    assert answer["erased"]["contacts"] == 1 and answer["erased"]["leads"] == 1 and answer["erased"]["tasks"] == 2
    assert {name: found for name, text in every_item_as_text().items() if (found := traces(text))} == {}
    contact = world.sandbox.contacts[contact_id]
    assert traces(json.dumps(contact, ensure_ascii=False)) == []
    assert not [f for f in contact.get("custom_fields_values") or [] if f.get("field_code") in ("PHONE", "EMAIL")]
    assert Lead.get(leads.lead_id_for(lead_id)).amo_lead_id == lead_id  # the lead stays
    [record] = AmoActivityLog.query(f"guests#{contact_id}")
    assert record.payload["erased"] == answer["erased"] and traces(json.dumps(record.payload)) == []

    again = world.call("POST", "guests/erase", {"amoContactId": contact_id, "alsoInAmo": True})
    assert again[0] == 200 and again[1]["erased"] == {"contacts": 0, "leads": 0, "tasks": 0, "activityLog": 0}


def test_an_email_whose_contact_amocrm_already_deleted_is_still_erased_from_the_tasks_naming_it(world):
    lead_id, contact_id = new_guest_lead(world)
    task = {"text": f"Send the invoice to {GUEST['email']}", "complete_till": int(time.time()) + 3600}
    assert world.call("POST", "tasks", {**task, "entity_id": lead_id, "entity_type": "leads"})[0] in (200, 201)
    world.control("POST", "delete", {"entity": "contacts", "id": contact_id})
    incremental_run()  # the contact's row and the lead's guest fields go; the task's text stays
    assert "zofia.qh@example.org" in every_item_as_text()[AmoTask.Meta.table_name].lower()

    status, answer = world.call("POST", "guests/erase", {"email": GUEST["email"]})

    assert status == 200 and answer["erased"]["tasks"] == 1, answer
    assert "zofia.qh@example.org" not in every_item_as_text()[AmoTask.Meta.table_name].lower()
    assert world.call("POST", "guests/erase", {"email": GUEST["email"]})[0] == 404  # nothing of it is left


def test_guests_erase_also_in_amo_clears_the_lead_fields_and_task_texts_that_would_bring_them_back(world):
    """Without it, the next sync copied the phone back from the lead's field and the task's text."""
    phone_field = {"field_id": 770001, "field_name": "Guest phone", "values": [{"value": GUEST["phone"]}]}
    booked = {"name": "Booking: loft", "price": 900, "custom_fields_values": [phone_field]}
    status, answer = world.call("POST", "create-lead", {"leadData": booked, "contact": GUEST})
    assert status == 200, answer
    lead_id = answer["amoLeadId"]
    task = {"text": f"Call {GUEST['phone']}", "complete_till": int(time.time()) + 3600}
    task_id = world.call("POST", "tasks", {**task, "entity_id": lead_id, "entity_type": "leads"})[1]["amoTaskId"]
    world.call("POST", "sync-all?full=true")
    assert traces(json.dumps(world.sandbox.leads[lead_id], ensure_ascii=False)) == ["phone"]

    status, answer = world.call("POST", "guests/erase", {"phone": GUEST["phone"], "alsoInAmo": True})

    assert status == 200 and answer["amoChanged"] is True and "amoRefused" not in answer, answer
    assert traces(json.dumps(world.sandbox.leads[lead_id], ensure_ascii=False)) == []
    assert traces(world.sandbox.tasks[task_id]["text"]) == []
    world.call("POST", "sync-all?full=true")  # what amoCRM holds now brings nothing of the person back
    assert {name: found for name, text in every_item_as_text().items() if (found := traces(text))} == {}


def test_guests_erase_answers_404_for_nobody_and_409_listing_the_contacts_an_email_matches(world):
    assert world.call("POST", "guests/erase", {"phone": "+1 000 000 0000"})[0] == 404
    assert world.call("POST", "guests/erase", {})[0] == 400
    assert world.call("POST", "guests/erase", {"email": "", "phone": " "})[0] == 400
    assert world.call("POST", "guests/erase", {"amoContactId": "seven"})[0] == 400
    status, answer = world.call("POST", "guests/erase", {"amoContactId": 1, "email": "a@example.org"})
    assert status == 400 and "only one of" in str(answer)
    first = world.call("POST", "contacts", {"name": "Twin One", "email": "twin@example.org"})[1]["amoContactId"]
    second = world.call("POST", "contacts", {"name": "Twin Two", "email": "TWIN@example.org"})[1]["amoContactId"]
    status, answer = world.call("POST", "guests/erase", {"email": "twin@example.org"})
    assert status == 409 and answer["amoContactIds"] == sorted([first, second])
    assert AmoContact.get(first).name == "Twin One"  # nothing erased


# -- the activity log keeps no personal data ----------------------------------------------------------


def test_a_webhook_whose_contact_has_a_phone_and_an_email_leaves_neither_in_the_activity_log(world):
    lead_id, contact_id = new_guest_lead(world)
    body = contact_webhook(world, contact_id, lead_id)
    assert GUEST["email"] in world.sandbox.contacts[contact_id]["custom_fields_values"][1]["values"][0]["value"]

    assert world.webhook(body)[0] == 200

    entries = list(AmoActivityLog.scan())
    assert [e.outcome for e in entries if e.entity_key == f"contacts#{contact_id}"]  # it was recorded
    assert traces(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, default=str)) == []


def test_a_queued_webhook_event_carries_no_personal_data_into_the_queue(_pristine_tables):
    with World(_pristine_tables, queued=True) as world:
        contact_id = world.call("POST", "contacts", GUEST)[1]["amoContactId"]
        lead_id = sorted(world.sandbox.leads)[0]
        assert world.webhook(contact_webhook(world, contact_id, lead_id))[0] == 200
        sqs = boto3.client("sqs", region_name="us-east-1")
        messages = sqs.receive_message(QueueUrl=world.queues["webhooks"], MaxNumberOfMessages=10, VisibilityTimeout=0)
        bodies = [m["Body"] for m in messages["Messages"]]
        assert bodies and all(str(contact_id) in body for body in bodies)
        assert traces(json.dumps(bodies)) == []
        assert world.drain("webhooks", "process-webhooks")  # and it still applies
        assert AmoContact.get(contact_id).email == GUEST["email"]


def test_a_contact_restored_after_its_erasure_fills_its_leads_again_on_the_next_run(world):
    lead_id, contact_id = new_guest_lead(world)
    incremental_run()
    world.control("POST", "delete", {"entity": "contacts", "id": contact_id})
    incremental_run()
    assert guest_of(lead_id) == (None, None, None)
    time.sleep(1.1)  # the restore is a later event than the delete
    world.control("POST", "restore", {"entity": "contacts", "id": contact_id})

    result = incremental_run()

    assert result["deletes"]["applied"] == {"contacts": {"restored": 1}}
    assert guest_of(lead_id) == (GUEST["name"], GUEST["phone"], GUEST["email"])
    assert AmoContact.get(contact_id).email == GUEST["email"]
