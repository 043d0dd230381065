"""The events log and the trash (reference §10.1, §13): deletes and restores made in the sandbox
(with or without their webhook) are listed by `GET /api/v4/events` with its filters, and deleted
leads and contacts by `with=only_deleted`."""

import time

import pytest

from sandbox.events import MAX_EVENTS_LIMIT


@pytest.fixture(autouse=True)
def unlimited(control):
    """These tests ask more than 7 times a second; the rate limit is not what they check."""
    control("/config", {"rate_limit": 1000})


def events(api, **params):
    response = api("GET", "/api/v4/events", params=params)
    return response.json()["_embedded"]["events"] if response.status_code == 200 else response.status_code


def test_an_empty_log_answers_204(api):
    response = api("GET", "/api/v4/events")
    assert response.status_code == 204 and response.content == b""


def test_delete_without_a_webhook_still_writes_the_event(sandbox, api, control, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["delete_lead"]})
    lead_id = sorted(sandbox.leads)[0]
    deleted = control("/delete", {"entity": "leads", "id": lead_id})
    assert deleted.status_code == 200 and deleted.json()["webhook"] is False
    control("/flush-webhooks")
    assert receiver.bodies == []
    [event] = events(api)
    assert event["type"] == "lead_deleted" and event["entity_type"] == "lead" and event["entity_id"] == lead_id
    assert isinstance(event["id"], str) and event["value_after"] == [] and event["value_before"] == []
    assert event["_embedded"]["entity"]["_links"]["self"]["href"].endswith(f"/api/v4/leads/{lead_id}")
    assert api("GET", f"/api/v4/events/{event['id']}").json()["id"] == event["id"]
    assert api("GET", f"/api/v4/leads/{lead_id}").status_code == 204


def test_delete_with_webhook_true_sends_it(sandbox, api, control, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["delete_contact"]})
    contact_id = sorted(sandbox.contacts)[0]
    control("/delete", {"entity": "contacts", "id": contact_id, "webhook": True})
    control("/flush-webhooks")
    assert dict(receiver.pairs())["contacts[delete][0][id]"] == str(contact_id)
    assert events(api)[0]["type"] == "contact_deleted"


def test_trigger_webhook_deletes_and_restores_record_events_newest_first(sandbox, api, control):
    lead_id, contact_id, task_id = sorted(sandbox.leads)[1], sorted(sandbox.contacts)[1], sorted(sandbox.tasks)[0]
    control("/trigger-webhook", {"entity": "leads", "action": "delete", "id": lead_id})
    control("/trigger-webhook", {"entity": "leads", "action": "restore", "id": lead_id})
    control("/trigger-webhook", {"entity": "contacts", "action": "delete", "id": contact_id})
    control("/trigger-webhook", {"entity": "contacts", "action": "restore", "id": contact_id})
    control("/trigger-webhook", {"entity": "tasks", "action": "delete", "id": task_id})
    assert [(e["type"], e["entity_id"]) for e in events(api)] == [
        ("task_deleted", task_id),
        ("contact_restored", contact_id),
        ("contact_deleted", contact_id),
        ("lead_restored", lead_id),
        ("lead_deleted", lead_id),
    ]
    assert api("GET", f"/api/v4/contacts/{contact_id}").status_code == 200


def test_the_filters(sandbox, api, control):
    leads = sorted(sandbox.leads)[:3]
    for lead_id in leads:
        control("/delete", {"entity": "leads", "id": lead_id})
    control("/restore", {"entity": "leads", "id": leads[0]})
    control("/delete", {"entity": "contacts", "id": sorted(sandbox.contacts)[0]})
    assert len(events(api, **{"filter[type][]": ["lead_deleted", "lead_restored"]})) == 4
    assert [e["entity_id"] for e in events(api, **{"filter[type]": "lead_restored"})] == [leads[0]]
    assert len(events(api, **{"filter[entity]": "contact"})) == 1
    only = events(api, **{"filter[entity]": "lead", "filter[entity_id][]": [leads[1], leads[2]]})
    assert sorted(e["entity_id"] for e in only) == leads[1:]
    now = int(time.time())
    assert len(events(api, **{"filter[created_at][from]": now - 60, "filter[created_at][to]": now + 60})) == 5
    assert events(api, **{"filter[created_at][from]": now + 60, "filter[created_at][to]": now + 120}) == 204
    assert events(api, **{"filter[created_at]": now + 60}) == 204
    [first] = events(api, **{"filter[type]": "lead_restored"})
    assert [e["id"] for e in events(api, **{"filter[id]": first["id"]})] == [first["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"filter[entity_id][]": ["1"]},
        {"filter[entity]": ["lead", "contact"], "filter[entity_id][]": ["1"]},
        {"filter[entity]": "lead", "filter[entity_id][]": [str(i) for i in range(11)]},
    ],
)
def test_entity_id_needs_exactly_one_entity_and_at_most_10_ids(api, params):
    response = api("GET", "/api/v4/events", params=params)
    assert response.status_code == 400 and "validation-errors" in response.json()


def test_limit_at_most_100_and_above_it_served_as_50(sandbox, api, control):
    for lead_id in sorted(sandbox.leads)[:30]:
        control("/delete", {"entity": "leads", "id": lead_id})
    for lead_id in sorted(sandbox.leads)[:30]:
        control("/restore", {"entity": "leads", "id": lead_id})
    for lead_id in sorted(sandbox.leads)[:30]:
        control("/delete", {"entity": "leads", "id": lead_id})
    for contact_id in sorted(sandbox.contacts)[:12]:
        control("/delete", {"entity": "contacts", "id": contact_id})
    assert MAX_EVENTS_LIMIT == 100
    assert len(events(api, limit=100)) == 100
    assert len(events(api, limit=250)) == 50  # Kommo's pages say 250; asking it gives 50 (§12)
    second = api("GET", "/api/v4/events", params={"limit": 100, "page": 2}).json()
    assert len(second["_embedded"]["events"]) == 2 and "limit=100" in second["_links"]["self"]["href"]


def test_with_only_deleted_lists_the_trash(sandbox, api, control):
    lead_id, contact_id = sorted(sandbox.leads)[4], sorted(sandbox.contacts)[4]
    assert api("GET", "/api/v4/leads", params={"with": "only_deleted"}).status_code == 204
    control("/delete", {"entity": "leads", "id": lead_id})
    control("/delete", {"entity": "contacts", "id": contact_id})
    [trashed] = api("GET", "/api/v4/leads", params={"with": "only_deleted"}).json()["_embedded"]["leads"]
    assert set(trashed) == {"id", "updated_at", "updated_by", "is_deleted"} and trashed["is_deleted"] is True
    assert trashed["id"] == lead_id
    assert api("GET", f"/api/v4/leads/{lead_id}", params={"with": "only_deleted"}).status_code == 200
    live = sorted(sandbox.leads)[5]
    assert api("GET", f"/api/v4/leads/{live}", params={"with": "only_deleted"}).status_code == 204
    contacts = api("GET", "/api/v4/contacts", params={"with": "only_deleted"}).json()["_embedded"]["contacts"]
    assert [c["id"] for c in contacts] == [contact_id]
    assert lead_id not in [lead["id"] for lead in api("GET", "/api/v4/leads").json()["_embedded"]["leads"]]


def test_tasks_added_and_completed_are_recorded(api):
    created = api("POST", "/api/v4/tasks", json=[{"text": "t", "complete_till": int(time.time()) + 60}]).json()
    task_id = created["_embedded"]["tasks"][0]["id"]
    api("PATCH", f"/api/v4/tasks/{task_id}", json={"is_completed": True, "result": {"text": "ok"}})
    assert [e["type"] for e in events(api, **{"filter[entity]": "task"})] == ["task_completed", "task_added"]


def test_control_delete_checks_its_body(sandbox, control):
    assert control("/delete", {"entity": "companies", "id": 1}).status_code == 400
    assert control("/delete", {"entity": "leads"}).status_code == 400
    assert control("/delete", {"entity": "leads", "id": 1}).status_code == 404
    assert control("/delete", {"entity": "leads", "id": sorted(sandbox.leads)[0], "webhook": "yes"}).status_code == 400
    assert control("/restore", {"entity": "tasks", "id": sorted(sandbox.tasks)[0]}).status_code == 400


def test_an_unpaid_account_answers_402_to_the_events_log(api, control):
    control("/config", {"unpaid": True})
    assert api("GET", "/api/v4/events").status_code == 402


def test_a_token_without_rights_to_the_events_log_gets_a_403(sandbox, api, control):
    control("/delete", {"entity": "leads", "id": sorted(sandbox.leads)[0]})
    assert control("/config", {"events_api": "forbidden"}).status_code == 200
    refused = api("GET", "/api/v4/events")
    assert refused.status_code == 403 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert control("/config", {"events_api": "maybe"}).status_code == 400
    control("/config", {"events_api": "ok"})
    assert len(events(api)) == 1
