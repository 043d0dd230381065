"""HTTP edge of leads, contacts and tasks: validation, idempotency, amoCRM write calls."""

import json

import pytest
import requests

from chalicelib import wiring
from chalicelib.models import AmoContact, AmoTask, Lead, Notification
from chalicelib.services import leads, pipelines
from chalicelib.services import tasks as tasks_service
from tests import fixtures
from tests.conftest import API_KEY
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, PROBLEM, contact, lead, store_tokens, task

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}


@pytest.fixture
def fake(amo):
    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    return FakeAmo(amo)


def post(client, path, body, headers=None):
    return client.http.post(f"{P}/{path}", headers={**HEADERS, **(headers or {})}, body=json.dumps(body))


@pytest.mark.parametrize(
    "body,message",
    [
        ({}, "leadData must be a JSON object"),
        ({"leadData": []}, "leadData must be a JSON object"),
        ({"leadData": {"name": 5}}, "leadData.name must be a non-empty string"),
        ({"leadData": {"name": "x", "price": -1}}, "leadData.price must be a non-negative integer"),
        ({"leadData": {"name": "x", "price": 1.5}}, "leadData.price must be a non-negative integer"),
        ({"leadData": {"name": "x", "pipeline_id": "3177727"}}, "leadData.pipeline_id must be a positive integer"),
        ({"leadData": {"name": "x", "status_id": True}}, "leadData.status_id must be a positive integer"),
        ({"leadData": {"name": "x", "responsible_user_id": 0}}, "leadData.responsible_user_id must be a positive"),
        ({"leadData": {"name": "x"}, "contact": "Олена"}, "contact must be a JSON object"),
        ({"leadData": {"name": "x"}, "contact": {"phone": "+380"}}, "contact.name is required"),
        ({"leadData": {"name": "x"}, "contact": {"name": "O", "email": 5}}, "contact.email must be a string"),
    ],
)
def test_create_lead_validation_names_the_field(client, fake, body, message):
    response = post(client, "create-lead", body)
    assert response.status_code == 400
    assert message in response.json_body["Message"]
    assert not any(c.request.method == "POST" for c in fake.mock.calls)


def test_failed_create_releases_the_idempotency_key(client, fake):
    fake.mock.add("POST", f"{HOST}/api/v4/leads", status=400, json=fixtures.VALIDATION, headers=PROBLEM)
    response = post(client, "create-lead", {"leadData": {"name": "x"}}, {"Idempotency-Key": "k1"})
    assert response.status_code == 400 and "custom_fields_values.0.field_id" in response.json_body["Message"]
    fake.mock.replace("POST", f"{HOST}/api/v4/leads", json={"_embedded": {"leads": [{"id": 601}]}}, headers=HAL)
    fake.leads.append(lead(601))
    assert post(client, "create-lead", {"leadData": {"name": "x"}}, {"Idempotency-Key": "k1"}).status_code == 200


def test_update_lead_patches_amocrm_and_refreshes_the_local_lead(client, fake):
    fake.leads.append(lead(700, price=100))

    def patch(request):
        fake.leads[-1] = lead(700, price=json.loads(request.body)["price"], updated_at=1700009999)
        return 200, HAL, json.dumps({"id": 700, "updated_at": 1700009999, "_links": {}})

    fake.mock.add_callback("PATCH", f"{HOST}/api/v4/leads/700", patch)
    response = post(client, "update-lead", {"leadId": 700, "leadData": {"price": 999}})
    assert response.status_code == 200 and response.json_body["amoLeadId"] == 700
    assert Lead.get(leads.lead_id_for(700)).price == 999


def test_update_of_an_unknown_lead_is_404(client, fake):
    fake.mock.add(
        "PATCH",
        f"{HOST}/api/v4/leads/404404",
        status=404,
        headers=PROBLEM,
        json={"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "Lead not found"},
    )
    response = post(client, "update-lead", {"leadId": 404404, "leadData": {"price": 1}})
    assert response.status_code == 404


def test_update_answered_by_a_404_that_names_no_lead_is_a_bad_gateway(client, fake):
    fake.mock.add(
        "PATCH",
        f"{HOST}/api/v4/leads/404405",
        status=404,
        headers=PROBLEM,
        json={"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "Unknown path"},
    )
    response = post(client, "update-lead", {"leadId": 404405, "leadData": {"price": 1}})
    assert response.status_code == 502 and "naming no entity" in response.json_body["Message"]


def test_update_lead_needs_an_integer_lead_id(client, fake):
    response = post(client, "update-lead", {"leadId": "700", "leadData": {"price": 1}})
    assert response.status_code == 400 and "leadId must be an integer" in response.json_body["Message"]


def test_sync_lead_upserts_from_an_amocrm_object(client, fake):
    response = post(client, "sync-lead", {"lead": lead(801, status_id=142)})
    assert response.status_code == 200 and response.json_body["leadId"] == leads.lead_id_for(801)
    assert Lead.get(leads.lead_id_for(801)).status == "CLOSED"
    bad = post(client, "sync-lead", {"lead": {"id": "x"}})
    assert bad.status_code == 400 and "integer id" in bad.json_body["Message"]


def test_get_lead_by_amocrm_id(client, fake):
    post(client, "sync-lead", {"lead": lead(802)})
    assert client.http.get(f"{P}/leads/802", headers=HEADERS).json_body["amo_lead_id"] == 802
    assert client.http.get(f"{P}/leads/803", headers=HEADERS).status_code == 404


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "limit=1.5"])
def test_sync_limit_must_be_a_non_negative_integer(client, query):
    response = client.http.post(f"{P}/sync-leads?{query}", headers=HEADERS)
    assert response.status_code == 400 and "limit" in response.json_body["Message"]


def test_add_note_to_a_lead(client, fake):
    fake.mock.add(
        "POST",
        f"{HOST}/api/v4/leads/900/notes",
        headers=HAL,
        json={"_links": {}, "_embedded": {"notes": [{"id": 42, "entity_id": 900, "request_id": "0"}]}},
    )
    response = post(client, "leads/900/notes", {"text": "Гость просит перезвонить"})
    assert response.status_code == 200 and response.json_body["noteId"] == 42
    sent = json.loads(fake.mock.calls[-1].request.body)
    assert sent == [{"note_type": "common", "params": {"text": "Гость просит перезвонить"}}]


def test_complete_task_patches_amocrm_then_stores(client, fake):
    fake.tasks = [task(4745251)]

    def patch(request):
        sent = json.loads(request.body)
        assert sent == {"is_completed": True, "result": {"text": "Дозвонились"}}
        fake.tasks[0] = {**task(4745251, is_completed=True, updated_at=1700000500), "result": sent["result"]}
        return 200, HAL, json.dumps({"id": 4745251, "updated_at": 1700000500, "_links": {}})

    fake.mock.add_callback("PATCH", f"{HOST}/api/v4/tasks/4745251", patch)
    response = client.http.patch(
        f"{P}/tasks/4745251/complete", headers=HEADERS, body=json.dumps({"result_text": "Дозвонились"})
    )
    assert response.status_code == 200 and response.json_body["status"] == "completed"
    assert AmoTask.get(4745251).result_text == "Дозвонились"
    again = client.http.patch(f"{P}/tasks/4745251/complete", headers=HEADERS)
    assert again.status_code == 200 and again.json_body["message"] == "task was already completed"
    assert len([c for c in fake.mock.calls if c.request.method == "PATCH"]) == 1


def test_a_task_a_manager_completed_meanwhile_keeps_their_result(client, fake):
    """The mirror still says open (the webhook has not arrived): amoCRM is read, nothing is written."""
    fake.tasks = [task(4745251)]
    tasks_service.refresh(wiring.amo(), 4745251)
    fake.tasks[0] = {**task(4745251, is_completed=True, updated_at=1700000900), "result": {"text": "Заселився"}}
    response = client.http.patch(f"{P}/tasks/4745251/complete", headers=HEADERS, body=json.dumps({"result_text": "x"}))
    assert response.status_code == 200 and response.json_body["message"] == "task was already completed"
    assert not [c for c in fake.mock.calls if c.request.method == "PATCH"]
    assert AmoTask.get(4745251).result_text == "Заселився"


def test_a_task_reopened_in_amocrm_is_completed_again(client, fake):
    fake.tasks = [task(4745251, is_completed=True)]
    tasks_service.refresh(wiring.amo(), 4745251)
    fake.tasks[0] = task(4745251, is_completed=False, updated_at=1700000900)
    fake.mock.add(
        "PATCH",
        f"{HOST}/api/v4/tasks/4745251",
        json={"id": 4745251, "updated_at": 1700001000, "_links": {}},
        headers=HAL,
    )
    response = client.http.patch(f"{P}/tasks/4745251/complete", headers=HEADERS)
    assert response.status_code == 200
    assert [json.loads(c.request.body) for c in fake.mock.calls if c.request.method == "PATCH"] == [
        {"is_completed": True}
    ]


def test_complete_unknown_task_is_404(client, fake):
    assert client.http.patch(f"{P}/tasks/1/complete", headers=HEADERS).status_code == 404


@pytest.mark.parametrize(
    "query,message",
    [
        ("is_completed=yes", "is_completed must be true or false"),
        ("entity_type=deals", "entity_type must be one of leads, contacts, companies"),
        ("entity_id=5", "entity_id needs entity_type"),
    ],
)
def test_task_filters_are_validated(client, query, message):
    response = client.http.get(f"{P}/tasks?{query}", headers=HEADERS)
    assert response.status_code == 400 and message in response.json_body["Message"]


def test_tasks_filtered_by_entity_and_completion(client, fake):
    fake.tasks = [
        task(1, entity_id=17657),
        task(2, entity_id=17657, is_completed=True),
        task(3, entity_id=99),
        task(4, entity_id=5, entity_type="contacts"),
    ]
    assert client.http.post(f"{P}/sync-tasks?limit=0", headers=HEADERS).json_body["synced"] == 4
    body = client.http.get(f"{P}/tasks?entity_type=leads&entity_id=17657&is_completed=false", headers=HEADERS).json_body
    assert [t["id"] for t in body["data"]] == [1]
    assert client.http.get(f"{P}/tasks?entity_type=contacts", headers=HEADERS).json_body["count"] == 1


def test_create_task_validation(client):
    response = post(client, "tasks", {"text": "Позвонить"})
    assert response.status_code == 400 and "complete_till is required" in response.json_body["Message"]


def test_contacts_create_and_list(client, fake):
    def create(request):
        sent = json.loads(request.body)[0]
        fake.contacts[321] = contact(321, name=sent["name"], phone="+7 999 1234567")
        return 200, HAL, json.dumps({"_links": {}, "_embedded": {"contacts": [{"id": 321, "request_id": "0"}]}})

    fake.mock.add_callback("POST", f"{HOST}/api/v4/contacts", create)
    response = post(client, "contacts", {"name": "Иван Петров", "phone": "+7 999 1234567"})
    assert response.status_code == 200 and response.json_body == {"amoContactId": 321}
    assert AmoContact.get(321).phone == "+7 999 1234567"
    listed = client.http.get(f"{P}/contacts?limit=1", headers=HEADERS).json_body
    assert listed["count"] == 1 and listed["data"][0]["id"] == 321


def test_updating_a_contact_refreshes_the_guest_fields_of_its_leads(client, fake):
    fake.contacts = {5: contact(5, name="Old Name", phone="+1")}
    fake.leads = [lead(950, contact_ids=(5,))]
    client.http.post(f"{P}/sync-leads?limit=0", headers=HEADERS)
    fake.mock.add("PATCH", f"{HOST}/api/v4/contacts/5", json={"id": 5, "updated_at": 1700000900}, headers=HAL)
    fake.contacts[5] = contact(5, name="New Name", phone="+2", updated_at=1700000900)

    response = client.http.patch(f"{P}/contacts/5", headers=HEADERS, body=json.dumps({"name": "New Name"}))

    assert response.status_code == 200
    assert Lead.get(leads.lead_id_for(950)).guest_name == "New Name"
    assert Lead.get(leads.lead_id_for(950)).guest_phone == "+2"


BAD_MAIN = "http://notify:pa55word@main.example.com/hooks/amocrm?token=t0ken-s3cret"


def test_an_http_main_backend_url_in_a_deployed_stage_holds_deliveries_never_status_writes(
    client, fake, monkeypatch, caplog
):
    """Regression (issue 23): deployed with a plain-http MAIN_BACKEND_WEBHOOK_URL, every status
    write answered 503 and echoed the URL, credentials and all, in the body and the logs."""
    post(client, "sync-lead", {"lead": lead(801)})  # known, NEW
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "amocrm-integration-prod")
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", BAD_MAIN)

    response = post(client, "sync-lead", {"lead": lead(801, status_id=142, updated_at=1700000500)})

    assert response.status_code == 200, response.body
    assert Lead.get(leads.lead_id_for(801)).status == "CLOSED"
    (note,) = Notification.scan()
    assert note.state == "pending" and note.attempts in (None, 0)  # held, recorded, not lost
    assert "https" in note.last_error and "***" in note.last_error
    shown = response.body.decode() + caplog.text + note.last_error
    assert "pa55word" not in shown and "t0ken-s3cret" not in shown
    assert not [c for c in fake.mock.calls if "main.example.com" in c.request.url]


def test_a_lead_amocrm_merged_answers_merged_and_counts_it(client, fake, monkeypatch):
    counted = []
    monkeypatch.setattr("chalicelib.metrics.count", lambda name, *a, **k: counted.append(name))
    fake.leads.append(lead(812, contact_ids=(44,)))
    fake.contacts[44] = contact(44)
    merged = [{"id": 812, "contact_id": 44, "company_id": None, "request_id": ["0"], "merged": True}]
    fake.mock.add("POST", f"{HOST}/api/v4/leads/complex", json=merged, headers=HAL)

    response = post(client, "create-lead", {"leadData": {"name": "x"}, "contact": {"name": "Олена", "phone": "+1"}})

    assert response.status_code == 200
    assert response.json_body == {
        "amoLeadId": 812,
        "leadId": leads.lead_id_for(812),
        "merged": True,
        "amoContactId": 44,
    }
    assert counted.count("LeadMerged") == 1


CREATES = {  # route, body, amoCRM's list key and path, what is stored once it exists
    "contacts": ({"name": "Олена", "phone": "+380501112233"}, "contacts", "/api/v4/contacts"),
    "tasks": ({"text": "Перезвонить", "complete_till": 1900000000}, "tasks", "/api/v4/tasks"),
    "leads/900/notes": ({"text": "Гость просит перезвонить"}, "notes", "/api/v4/leads/900/notes"),
}


def created_by_amocrm(fake, route, new_id, lose_answer=False):
    """amoCRM's POST: the entity exists (and reads back) whether or not its answer arrives."""
    _, key, path = CREATES[route]
    posts = []

    def create(request):
        posts.append(request.body)
        fake.contacts[new_id] = contact(new_id)
        fake.tasks.append(task(new_id))
        if lose_answer:
            raise requests.exceptions.ReadTimeout("the answer was lost")
        return 200, HAL, json.dumps({"_links": {}, "_embedded": {key: [{"id": new_id, "request_id": "0"}]}})

    fake.mock.add_callback("POST", f"{HOST}{path}", create)
    return posts


@pytest.mark.parametrize("route", CREATES)
def test_a_create_retried_with_its_idempotency_key_gets_the_first_answer_and_makes_one_entity(client, fake, route):
    posts = created_by_amocrm(fake, route, 5005)
    first = post(client, route, CREATES[route][0], {"Idempotency-Key": "once"})
    again = post(client, route, CREATES[route][0], {"Idempotency-Key": "once"})
    assert first.status_code == again.status_code == 200 and again.json_body == first.json_body
    assert 5005 in first.json_body.values() and len(posts) == 1
    assert post(client, route, CREATES[route][0], {"Idempotency-Key": "two"}).status_code == 200
    assert len(posts) == 2  # another key is another entity


@pytest.mark.parametrize("route", CREATES)
def test_a_create_whose_answer_was_lost_is_never_sent_again_under_its_key(client, fake, route):
    posts = created_by_amocrm(fake, route, 5006, lose_answer=True)
    first = post(client, route, CREATES[route][0], {"Idempotency-Key": "lost"})
    assert first.status_code == 502 and "Idempotency-Key" in first.json_body["Message"]
    again = post(client, route, CREATES[route][0], {"Idempotency-Key": "lost"})
    assert again.status_code == 409 and "do not retry with a new key" in again.json_body["Message"]
    assert len(posts) == 1
