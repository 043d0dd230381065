"""Fewer repeated reads (reference §13): a single GET of an object we hold carries our version
as `If-Modified-Since`; amoCRM's 304 means what we hold is current, and nothing is written."""

from email.utils import formatdate

import pytest

from chalicelib import wiring
from chalicelib.amo.errors import AmoNotModified
from chalicelib.models import Lead
from chalicelib.services import leads
from tests import webhook_bodies as wb
from tests.conftest import API_KEY, WEBHOOK_PATH
from tests.fixtures import HOST, contact, store_tokens
from tests.services.test_robot_webhooks import lead_gets, move_in_amocrm
from tests.services.test_webhooks import FORM, INITIAL, NEGOTIATION, SALES, deliver, fake, main_backend_calls, seed_lead

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

__all__ = ["fake"]  # the fixture, shared with test_webhooks.py
HELD = 1700000000


def conditional_headers(amo, lead_id):
    return [c.request.headers.get("If-Modified-Since") for c in lead_gets(amo, lead_id)]


def test_an_update_of_a_lead_amocrm_has_not_changed_since_our_copy_is_current_and_writes_nothing(client, fake, amo):
    seed_lead(fake, updated_at=HELD)  # amoCRM's lead is still at HELD
    before = Lead.get(leads.lead_id_for(17657)).to_dict()
    seeded_gets = len(lead_gets(amo, 17657))

    # a delivery claiming a newer version (a replay, or one amoCRM reverted): worth one conditional GET
    response = deliver(client, wb.lead_event("update", 17657, NEGOTIATION, SALES, updated_at=HELD + 300))

    assert response.json_body == {"status": "ok", "processed": 1, "errors": []}
    assert conditional_headers(amo, 17657)[seeded_gets:] == [formatdate(HELD, usegmt=True)]
    assert Lead.get(leads.lead_id_for(17657)).to_dict() == before
    assert main_backend_calls(amo) == []
    activity = client.http.get("/integrations/amo-crm/activity?entity=leads&id=17657", headers={"X-API-Key": API_KEY})
    assert activity.json_body["data"][0]["outcome"] == "current"


def test_a_lead_changed_since_our_copy_is_answered_in_full_and_applied(client, fake, amo):
    seed_lead(fake, updated_at=HELD)
    move_in_amocrm(fake, 17657, NEGOTIATION, HELD + 300)

    deliver(client, wb.lead_event("update", 17657, NEGOTIATION, SALES, updated_at=HELD + 300))

    assert conditional_headers(amo, 17657)[-1] == formatdate(HELD, usegmt=True)
    stored = Lead.get(leads.lead_id_for(17657))
    assert (stored.status, stored.amo_updated_at) == ("IN_PROGRESS", HELD + 300)


def test_a_lead_we_do_not_hold_is_read_unconditionally(client, fake, amo):
    move_in_amocrm(fake, 17657, INITIAL, HELD)
    fake.contacts[1] = contact(1)

    deliver(client, wb.lead_event("add", 17657, INITIAL, SALES, updated_at=HELD))

    assert conditional_headers(amo, 17657) == [None]
    assert Lead.get(leads.lead_id_for(17657)).amo_updated_at == HELD


def test_a_robot_stage_change_already_held_is_current_without_a_second_read(client, fake, amo):
    seed_lead(fake, status_id=NEGOTIATION, updated_at=HELD)
    seeded_gets = len(lead_gets(amo, 17657))

    body = wb.encode(wb.robot_status(17657, NEGOTIATION, SALES, INITIAL) + wb.robot_account())
    response = client.http.post(WEBHOOK_PATH, headers=FORM, body=body)

    assert response.json_body == {"status": "ok", "processed": 1, "errors": []}
    assert conditional_headers(amo, 17657)[seeded_gets:] == [formatdate(HELD, usegmt=True)]
    assert Lead.get(leads.lead_id_for(17657)).amo_updated_at == HELD
    assert main_backend_calls(amo) == []


def test_the_gateway_sends_the_http_date_and_turns_304_into_not_modified(amo):
    store_tokens()
    amo.get(f"{HOST}/api/v4/tasks/5", status=304)

    with pytest.raises(AmoNotModified):
        wiring.amo().tasks.get(5, modified_since=1700000400)

    assert amo.calls[-1].request.headers["If-Modified-Since"] == "Tue, 14 Nov 2023 22:20:00 GMT"


def test_without_a_version_no_header_is_sent(amo):
    store_tokens()
    amo.get(f"{HOST}/api/v4/tasks/5", status=204)

    assert wiring.amo().tasks.get(5) is None
    assert "If-Modified-Since" not in amo.calls[-1].request.headers
