"""Webhooks: registration points the sandbox at the service; a stage change in the sandbox
reaches the (stand-in) Main Backend exactly once, however often it is delivered."""

from urllib.parse import urlsplit

import pytest

from scripts.local_stack import API_PREFIX
from tests import webhook_bodies as wb
from tests.e2e.backends import WEBHOOK_SECRET

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WON, LOST = 142, 143


def open_leads(backend):
    leads = backend.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]
    return [lead for lead in leads if lead["status_id"] not in (WON, LOST)]


def notifications_about(backend, amo_lead_id):
    received = backend.sandbox("GET", "/_sandbox/main-backend/notifications")[1]["notifications"]
    return [n for n in received if n["body"]["amoLeadId"] == amo_lead_id]


def redeliver(backend, delivery):
    """POST a delivery's body to its destination again, as amoCRM does when it retries."""
    destination = urlsplit(delivery["destination"])
    path = destination.path.split(API_PREFIX, 1)[1] + f"?{destination.query}"
    return backend.call("POST", path, delivery["body"], key=False, headers=FORM)


def test_registration_is_idempotent_and_never_shows_the_secret(backend):
    backend.call("DELETE", "webhook/register")
    subscriptions = backend.stats()["by_path"].get("POST /api/v4/webhooks", 0)

    status, first = backend.call("POST", "webhook/register")
    again_status, again = backend.call("POST", "webhook/register")

    assert status == again_status == 200
    assert first["message"] == "webhook registered" and again["message"] == "webhook already registered"
    assert first["destination"].endswith(f"{API_PREFIX}/webhook?secret=***")
    assert WEBHOOK_SECRET not in str(first) + str(again)
    assert backend.stats()["by_path"]["POST /api/v4/webhooks"] == subscriptions + 1


def test_a_stage_change_in_amocrm_reaches_the_main_backend_once(mirrored):
    backend = mirrored
    target = open_leads(backend)[0]
    _, before = backend.call("GET", f"leads/{target['id']}")

    _, fired = backend.sandbox(
        "POST",
        "/_sandbox/trigger-webhook",
        {"entity": "leads", "action": "status", "id": target["id"], "status_id": WON},
    )

    delivery = fired["deliveries"][-1]
    assert delivery["status"] == 200
    assert "leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142" in delivery["body"]
    mine = notifications_about(backend, target["id"])
    assert len(mine) == 1
    note = mine[0]
    assert note["body"]["event"] == "lead.status_changed"
    assert (note["body"]["status"], note["body"]["previousStatus"]) == ("CLOSED", before["status"])
    assert (note["body"]["pipelineId"], note["body"]["stageId"]) == (target["pipeline_id"], WON)
    assert note["body"]["leadId"] == before["id"]
    assert note["headers"]["idempotency-key"] == note["body"]["eventId"]
    assert note["headers"]["x-api-key"] == backend.api_key
    _, lead = backend.call("GET", f"leads/{target['id']}")
    assert (lead["status"], lead["amo_status_id"]) == ("CLOSED", WON)


def test_a_repeated_delivery_is_applied_once_and_notifies_once(mirrored):
    backend = mirrored
    target = open_leads(backend)[-1]
    _, fired = backend.sandbox(
        "POST",
        "/_sandbox/trigger-webhook",
        {"entity": "leads", "action": "status", "id": target["id"], "status_id": LOST},
    )

    delivery = fired["deliveries"][-1]  # amoCRM sends the lead's `update` along with its `status`

    status, answer = redeliver(backend, delivery)

    assert status == 200 and answer == {"status": "ok", "processed": delivery["events"], "errors": []}
    assert len(notifications_about(backend, target["id"])) == 1
    _, activity = backend.call("GET", f"activity?entity=leads&id={target['id']}")  # newest first
    assert [item["outcome"] for item in activity["data"][: delivery["events"]]] == ["duplicate"] * delivery["events"]
    assert [item["outcome"] for item in activity["data"] if item["event_type"] == "leads.status"] == [
        "duplicate",
        "applied",
    ]


@pytest.mark.parametrize("query", ["", "?secret=wrong", "?secret="], ids=["none", "wrong", "empty"])
def test_a_webhook_without_the_right_secret_is_refused_and_changes_nothing(mirrored, query):
    backend = mirrored
    target = open_leads(backend)[1]
    _, before = backend.call("GET", f"leads/{target['id']}")
    body = wb.encode(
        wb.lead_status(target["id"], WON, target["pipeline_id"], target["updated_at"] + 60, target["status_id"])
        + wb.account()
    )

    status, _ = backend.call("POST", f"webhook{query}", body, key=False, headers=FORM)

    assert status == 401
    assert backend.call("GET", f"leads/{target['id']}")[1] == before
    assert backend.call("GET", f"activity?entity=leads&id={target['id']}")[1]["count"] == 0
    assert notifications_about(backend, target["id"]) == []
