"""Webhooks: intake over the route, each event's effect, idempotency, the queue, notifications."""

import json
import time
from urllib.parse import quote, quote_plus

import boto3
import pytest
import requests

from chalicelib import wiring
from chalicelib.models import AmoActivityLog, AmoContact, AmoTask, Lead, Notification
from chalicelib.services import leads, notifications, pipelines, webhooks
from tests import fixtures
from tests import webhook_bodies as wb
from tests.conftest import API_KEY, WEBHOOK_PATH
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, contact, lead, store_tokens, task

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MAIN = "https://main.example.com/hooks/amocrm"
SALES, INITIAL, NEGOTIATION, DECISION = 3177727, 58141807, 58141811, 58141815


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


def deliver(client, pairs, path=WEBHOOK_PATH):
    return client.http.post(path, headers=FORM, body=wb.encode(pairs + wb.account()))


def main_backend_calls(amo):
    return [c for c in amo.calls if c.request.url == MAIN]


def seed_lead(fake, lead_id=17657, status_id=INITIAL, updated_at=1700000000):
    fake.contacts[1] = contact(1)
    fake.leads = [lead(lead_id, status_id=status_id, contact_ids=(1,), updated_at=updated_at)]
    leads.fetch_and_upsert(wiring.amo(), lead_id)


def test_a_status_event_alone_is_applied_from_its_own_fields_without_fetching_the_lead(client, fake, amo):
    # the sandbox always sends a lead's `update` along with its `status`, which does fetch it;
    # the end-to-end notification itself: tests/e2e/test_webhooks.py
    seed_lead(fake)
    response = deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))

    assert response.json_body["processed"] == 1 and response.json_body["errors"] == []
    stored = Lead.get(leads.lead_id_for(17657))
    assert (stored.status, stored.amo_status_id, stored.amo_updated_at) == ("IN_PROGRESS", NEGOTIATION, 1700000500)
    assert len(main_backend_calls(amo)) == 1
    assert not [c for c in amo.calls if c.request.url.startswith(f"{HOST}/api/v4/leads/17657")][1:]


def test_a_status_change_of_a_lead_not_yet_mirrored_notifies_from_the_stage_it_left(client, fake, amo):
    fake.contacts[1] = contact(1)
    fake.leads = [lead(777, status_id=NEGOTIATION, contact_ids=(1,), updated_at=1700000500)]
    deliver(client, wb.lead_status(777, NEGOTIATION, SALES, 1700000500, INITIAL))
    assert Lead.get(leads.lead_id_for(777)).status == "IN_PROGRESS"
    bodies = [json.loads(c.request.body) for c in main_backend_calls(amo)]
    assert [(b["amoLeadId"], b["previousStatus"], b["status"]) for b in bodies] == [(777, "NEW", "IN_PROGRESS")]


def test_an_older_status_event_arriving_late_is_ignored(client, fake, amo):
    seed_lead(fake)
    deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000900, INITIAL))
    deliver(client, wb.lead_status(17657, 142, SALES, 1700000500, INITIAL))  # older, delivered later
    stored = Lead.get(leads.lead_id_for(17657))
    assert (stored.amo_status_id, stored.status) == (NEGOTIATION, "IN_PROGRESS")
    assert len(main_backend_calls(amo)) == 1


def test_add_and_update_fetch_the_fresh_lead_from_amocrm(client, fake):
    fake.contacts[7] = contact(7, name="Anna Smith")
    fake.leads = [lead(900, status_id=NEGOTIATION, contact_ids=(7,), updated_at=1700000700)]
    deliver(client, wb.lead_event("add", 900, updated_at=1700000100))  # webhook fields are stale
    stored = Lead.get(leads.lead_id_for(900))
    assert (stored.amo_status_id, stored.guest_name) == (NEGOTIATION, "Anna Smith")


def test_delete_unlinks_but_keeps_the_lead(client, fake):
    seed_lead(fake, 17700)
    fake.leads = []  # amoCRM deleted it: its GET answers 204
    deliver(client, wb.lead_delete(17700))
    stored = Lead.get(leads.lead_id_for(17700))
    assert stored.amo_lead_id is None and stored.guest_name == "Олена Коваленко"


def test_contact_update_refreshes_the_guest_fields_of_its_leads(client, fake):
    seed_lead(fake)
    fake.mock.add(
        "GET",
        f"{HOST}/api/v4/contacts/1",
        json=contact(1, name="Олена Шевченко", phone="+380670000000", updated_at=1700000300),
        headers=HAL,
    )
    deliver(client, wb.contact_update(1, "Олена Шевченко", "+380670000000", 17657))
    assert AmoContact.get(1).name == "Олена Шевченко"
    stored = Lead.get(leads.lead_id_for(17657))
    assert (stored.guest_name, stored.guest_phone) == ("Олена Шевченко", "+380670000000")


@pytest.mark.parametrize("key", ["task", "tasks"])
def test_task_events_under_either_key(client, fake, key):
    fake.tasks = [task(4745251)]
    deliver(client, wb.task_event(key, "add", 4745251))
    assert AmoTask.get(4745251).text == "Перезвонить гостю"
    fake.tasks = []  # amoCRM deleted it: its GET answers 204
    deliver(client, wb.task_event(key, "delete", 4745251, updated_at=1700000999))
    assert AmoTask.get(4745251).is_unlinked is True


def test_task_updates_without_a_timestamp_are_each_applied_once_by_amocrms_version(client, fake):
    """Task items are not documented (reference §9.3): without `last_modified` every update of
    one task had the same event id, and all but the first were dropped as duplicates."""
    untimed = [pair for pair in wb.task_event("task", "update", 4745251) if "last_modified" not in pair[0]]
    fake.tasks = [{**task(4745251, updated_at=1700000100), "text": "Перезвонить гостю"}]
    deliver(client, untimed)
    fake.tasks = [{**task(4745251, updated_at=1700000200), "text": "Перезвонить завтра"}]
    deliver(client, untimed)
    assert AmoTask.get(4745251).text == "Перезвонить завтра"
    deliver(client, untimed)  # amoCRM's redelivery: the version we hold, nothing applied again
    outcomes = sorted(entry.outcome for entry in AmoActivityLog.query("tasks#4745251"))
    assert outcomes in (["applied", "applied", "current"], ["applied", "applied", "duplicate"]), outcomes


def test_a_delete_amocrm_does_not_confirm_unlinks_nothing(client, fake):
    seed_lead(fake)
    fake.tasks = [task(4745251)]
    deliver(client, wb.task_event("task", "add", 4745251))
    # forged (or misrouted) deletes: amoCRM still answers both objects
    response = deliver(client, wb.lead_event("delete", 17657) + wb.task_event("task", "delete", 4745251))
    assert response.status_code == 200
    assert Lead.get(leads.lead_id_for(17657)).amo_lead_id == 17657
    assert AmoTask.get(4745251).is_unlinked is not True
    fake.leads = []  # now amoCRM has deleted the lead
    deliver(client, wb.lead_event("delete", 17657))
    assert Lead.get(leads.lead_id_for(17657)).amo_lead_id is None


def test_without_a_configured_secret_webhooks_are_acknowledged_not_applied_except_on_an_explicit_local_run(
    client, fake, monkeypatch
):
    """A 503 would make amoCRM retry and then disable the hook for every event (reference §9.5);
    a delivery nobody can authenticate is answered 200, applied never, and the sync heals."""
    seed_lead(fake)
    monkeypatch.delenv("AMO_WEBHOOK_SECRET")
    pairs = wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL)
    ignored = deliver(client, pairs, path=f"{P}/webhook")
    assert ignored.status_code == 200 and ignored.json_body["processed"] == 0
    assert "AMO_WEBHOOK_SECRET is not set" in ignored.json_body["errors"][0]
    monkeypatch.setenv("ENABLE_DEV_ENDPOINTS", "true")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "amocrm-integration-prod")  # deployed: never
    assert deliver(client, pairs, path=f"{P}/webhook").json_body["processed"] == 0
    assert Lead.get(leads.lead_id_for(17657)).status == "NEW"
    assert [r.event_type for r in AmoActivityLog.scan()].count("webhook.unauthenticated") == 2
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    accepted = deliver(client, pairs, path=f"{P}/webhook")
    assert accepted.status_code == 200 and accepted.json_body["processed"] == 1


@pytest.mark.parametrize("query", ["", "?secret=", "?secret=wrong", "?secret=test-webhook-secre"])
def test_a_missing_or_wrong_secret_is_401(client, fake, query):
    seed_lead(fake)
    response = deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL), f"{P}/webhook{query}")
    assert response.status_code == 401
    assert Lead.get(leads.lead_id_for(17657)).status == "NEW"


def test_the_activity_of_an_entity_is_visible_newest_first(client, fake):
    seed_lead(fake)
    deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))
    deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))
    body = client.http.get(f"{P}/activity?entity=leads&id=17657", headers={"X-API-Key": API_KEY}).json_body
    assert [i["outcome"] for i in body["data"]] == ["duplicate", "applied"]
    assert body["data"][0]["event_type"] == "leads.status"
    bad = client.http.get(f"{P}/activity?entity=deals", headers={"X-API-Key": API_KEY})
    assert bad.status_code == 400


def test_other_events_are_logged_and_ignored_without_error(client, fake, amo):
    response = deliver(client, wb.lead_note(17657))
    assert response.json_body["errors"] == []
    assert [i.outcome for i in AmoActivityLog.scan()] == ["ignored"]
    assert not [c for c in amo.calls if "/api/v4/leads/17657" in c.request.url]


def test_several_entities_and_items_in_one_body(client, fake):
    seed_lead(fake)
    fake.leads.append(lead(17658, updated_at=1700000001))
    pairs = (
        wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL)
        + wb.lead_event("update", 17658, index=0)
        + wb.lead_note(17657)
    )
    response = deliver(client, pairs)
    assert response.json_body["processed"] == 3
    assert Lead.get(leads.lead_id_for(17658)).amo_lead_id == 17658


def test_a_foreign_account_is_recorded_and_ignored(client, fake, amo):
    seed_lead(fake)
    pairs = wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL) + wb.account(424242)
    response = client.http.post(WEBHOOK_PATH, headers=FORM, body=wb.encode(pairs))
    assert response.status_code == 200 and response.json_body["processed"] == 0
    assert "424242" in response.json_body["errors"][0]
    assert Lead.get(leads.lead_id_for(17657)).status == "NEW"
    assert [i.outcome for i in AmoActivityLog.scan()] == ["ignored"]


@pytest.mark.parametrize("subdomain,applied", [(wb.SUBDOMAIN, True), (wb.SUBDOMAIN.upper(), True), ("other", False)])
def test_an_older_hook_naming_its_account_only_by_subdomain_is_matched_by_it(client, fake, amo, subdomain, applied):
    """Hooks of 2018 carry `account[subdomain]` and no `account[id]` (reference §9.1)."""
    seed_lead(fake)
    pairs = wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL) + [("account[subdomain]", subdomain)]
    response = client.http.post(WEBHOOK_PATH, headers=FORM, body=wb.encode(pairs))
    assert response.status_code == 200 and response.json_body["processed"] == int(applied)
    assert Lead.get(leads.lead_id_for(17657)).status == ("IN_PROGRESS" if applied else "NEW")


@pytest.mark.parametrize(
    "body,content_type",
    [
        ("%%%garbage&&&", "application/x-www-form-urlencoded"),
        ("", "application/x-www-form-urlencoded"),
        ("{not json", "application/json"),
        ("a[b]=1&a[b][c]=2", "application/x-www-form-urlencoded"),
    ],
)
def test_a_garbage_body_is_200_with_the_problem_recorded(client, fake, body, content_type):
    response = client.http.post(WEBHOOK_PATH, headers={"Content-Type": content_type}, body=body)
    assert response.status_code == 200
    assert response.json_body["status"] == "ok" and response.json_body["errors"]
    assert list(AmoActivityLog.scan())


def test_json_with_the_same_structure_is_accepted(client, fake):
    seed_lead(fake)
    body = {
        "leads": {
            "status": [
                {
                    "id": "17657",
                    "status_id": str(NEGOTIATION),
                    "pipeline_id": str(SALES),
                    "old_status_id": str(INITIAL),
                    "updated_at": "1700000500",
                }
            ]
        },
        "account": {"id": str(fixtures.ACCOUNT_ID), "subdomain": fixtures.SUBDOMAIN},
    }
    response = client.http.post(WEBHOOK_PATH, headers={"Content-Type": "application/json"}, body=json.dumps(body))
    assert response.json_body["processed"] == 1
    assert Lead.get(leads.lead_id_for(17657)).status == "IN_PROGRESS"


def test_a_failing_event_is_reported_and_the_others_applied(client, fake):
    seed_lead(fake)
    pairs = wb.lead_event("update", 31337) + wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL)
    fake.mock.add("GET", f"{HOST}/api/v4/leads/31337", status=500)
    response = deliver(client, pairs)
    assert response.status_code == 200
    assert response.json_body["processed"] == 1 and "31337" in response.json_body["errors"][0]
    assert Lead.get(leads.lead_id_for(17657)).status == "IN_PROGRESS"
    assert [i.outcome for i in AmoActivityLog.query("leads#31337")] == ["failed"]


# -- the queued path ----------------------------------------------------------------------------


@pytest.fixture
def webhook_queue(monkeypatch):
    url = boto3.client("sqs").create_queue(QueueName="amocrm-webhooks")["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", url)
    return url


def test_queued_intake_makes_no_amocrm_call_and_at_most_two_aws_calls(client, fake, amo, webhook_queue):
    seed_lead(fake)
    amo_calls_before = len(amo.calls)
    aws_calls = []
    from chalicelib.services import queues

    queues.sqs().meta.events.register("before-call.*.*", lambda model, **kw: aws_calls.append(model.name))
    from chalicelib.models import AmoActivityLog as Log

    Log._get_connection().connection.client.meta.events.register(
        "before-call.*.*", lambda model, **kw: aws_calls.append(model.name)
    )
    from chalicelib.models import AmoToken

    AmoToken._get_connection().connection.client.meta.events.register(
        "before-call.*.*", lambda model, **kw: aws_calls.append(model.name)
    )
    deliver(client, wb.lead_note(17657))  # a warm Lambda has already looked up the connected account
    aws_calls.clear()

    response = deliver(
        client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL) + wb.lead_event("update", 17657, index=0)
    )

    assert response.json_body == {"status": "ok", "processed": 2, "errors": []}
    assert len(amo.calls) == amo_calls_before
    # the delivery is recorded (PutItem) and its events queued (SendMessageBatch): nothing else
    assert sorted(aws_calls) == ["PutItem", "SendMessageBatch"]
    assert Lead.get(leads.lead_id_for(17657)).status == "NEW"  # not applied yet


def refuse(client_of, operation, error):
    """The AWS client answers `operation` with `error` (botocore's own hook, before any send)."""

    def refused(model, **kwargs):
        if model.name == operation:
            raise error

    client_of.meta.events.register("before-call.*.*", refused)
    return lambda: client_of.meta.events.unregister("before-call.*.*", refused)


def test_a_queue_that_cannot_be_reached_does_not_lose_the_delivery(client, fake, amo, webhook_queue):
    """Regression (fault matrix): SendMessageBatch throttled or unreachable answered 500 and the
    events waited on amoCRM's redelivery; now they are applied inline and the answer is 200."""
    from botocore.exceptions import EndpointConnectionError

    from chalicelib.services import queues

    seed_lead(fake)
    restore = refuse(queues.sqs(), "SendMessageBatch", EndpointConnectionError(endpoint_url=webhook_queue))
    try:
        response = deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))
    finally:
        restore()

    assert response.status_code == 200 and response.json_body["errors"] == []
    assert Lead.get(leads.lead_id_for(17657)).status == "IN_PROGRESS"  # applied inline


def test_an_activity_log_that_cannot_be_written_does_not_fail_the_delivery(client, fake, amo):
    """Regression (fault matrix): the diagnostic record's PutItem failing answered amoCRM 500."""
    from botocore.exceptions import EndpointConnectionError

    seed_lead(fake)
    log_client = AmoActivityLog._get_connection().connection.client
    restore = refuse(log_client, "PutItem", EndpointConnectionError(endpoint_url="http://dynamodb"))
    try:
        response = deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))
    finally:
        restore()

    assert response.status_code == 200
    assert Lead.get(leads.lead_id_for(17657)).status == "IN_PROGRESS"


def sqs_event(bodies):
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:amocrm-webhooks",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def test_the_consumer_applies_each_message_and_reports_only_the_poison_one(client, fake, amo, webhook_queue):
    seed_lead(fake)
    fake.leads.append(lead(17658, updated_at=1700000001))
    deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL) + wb.lead_event("update", 17658))
    messages = boto3.client("sqs").receive_message(QueueUrl=webhook_queue, MaxNumberOfMessages=10)["Messages"]
    bodies = [m["Body"] for m in messages] + ["{poison"]

    result = client.lambda_.invoke("process-webhooks", sqs_event(bodies)).payload

    assert result == {"batchItemFailures": [{"itemIdentifier": f"m-{len(bodies) - 1}"}]}
    assert Lead.get(leads.lead_id_for(17657)).status == "IN_PROGRESS"
    assert Lead.get(leads.lead_id_for(17658)).amo_lead_id == 17658
    assert len(main_backend_calls(amo)) == 1
    again = client.lambda_.invoke("process-webhooks", sqs_event(bodies[:-1])).payload  # SQS redelivery
    assert again == {"batchItemFailures": []} and len(main_backend_calls(amo)) == 1


def queued_records(queue_url, receives):
    """The queue's messages as the consumer Lambda gets them, at the given receive."""
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    event = sqs_event([m["Body"] for m in messages])
    for record, message in zip(event["Records"], messages, strict=True):
        record["receiptHandle"] = message["ReceiptHandle"]
        record["attributes"]["ApproximateReceiveCount"] = str(receives)
    return event


def test_a_queued_delete_amocrm_still_answers_is_asked_again_before_it_is_believed_forged(
    client, fake, amo, webhook_queue
):
    """amoCRM's GET may lag behind its own delete webhook: the first receives retry the message
    (nothing unlinked meanwhile), and once amoCRM confirms, the delete applies."""
    from chalicelib.services import webhook_events

    seed_lead(fake)
    deliver(client, wb.lead_event("delete", 17657))
    first = queued_records(webhook_queue, receives=1)

    retried = client.lambda_.invoke("process-webhooks", first).payload

    assert retried == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert Lead.get(leads.lead_id_for(17657)).amo_lead_id == 17657
    # offered again in 30 s, not at once
    assert boto3.client("sqs").receive_message(QueueUrl=webhook_queue).get("Messages", []) == []

    def at_receive(receives):
        return {"Records": [{**first["Records"][0], "attributes": {"ApproximateReceiveCount": str(receives)}}]}

    assert client.lambda_.invoke("process-webhooks", at_receive(2)).payload == retried  # still there
    fake.leads = []  # amoCRM has caught up: its GET answers 204
    assert client.lambda_.invoke("process-webhooks", at_receive(3)).payload == {"batchItemFailures": []}
    assert Lead.get(leads.lead_id_for(17657)).amo_lead_id is None

    seed_lead(fake, 17658)  # a forged delete: amoCRM keeps answering the lead
    deliver(client, wb.lead_event("delete", 17658))
    last = queued_records(webhook_queue, receives=webhook_events.DELETE_CHECKS)
    assert client.lambda_.invoke("process-webhooks", last).payload == {"batchItemFailures": []}
    assert Lead.get(leads.lead_id_for(17658)).amo_lead_id == 17658


# -- notifications ------------------------------------------------------------------------------


def test_main_backend_down_then_up_delivers_every_notification_once(client, fake, amo):
    amo.replace("POST", MAIN, body=requests.ConnectionError("down"))
    fake.contacts[1] = contact(1)
    fake.leads = [lead(i, status_id=INITIAL, contact_ids=(1,)) for i in (1, 2, 3)]
    for i in (1, 2, 3):
        leads.fetch_and_upsert(wiring.amo(), i)
    for i in (1, 2, 3):
        deliver(client, wb.lead_status(i, NEGOTIATION, SALES, 1700000500, INITIAL))
    assert {n.state for n in Notification.scan()} == {"pending"}
    assert notifications.deliver_pending() == {"pending": 3, "delivered": 0}

    amo.replace("POST", MAIN, json={"ok": True})
    assert notifications.deliver_pending() == {"pending": 3, "delivered": 3}
    assert notifications.deliver_pending() == {"pending": 0, "delivered": 0}

    delivered = [
        json.loads(c.request.body)["amoLeadId"]
        for c in main_backend_calls(amo)
        if getattr(c.response, "status_code", None) == 200
    ]
    assert sorted(delivered) == [1, 2, 3]
    assert {n.state for n in Notification.scan()} == {"sent"}


def test_queued_notifications_back_off_then_die_and_can_be_redriven(client, fake, amo, monkeypatch):
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="amocrm-notifications-dlq")["QueueUrl"]
    queue = sqs.create_queue(QueueName="amocrm-notifications")["QueueUrl"]
    monkeypatch.setenv("NOTIFY_QUEUE_URL", queue)
    monkeypatch.setenv("NOTIFY_DLQ_URL", dlq)
    amo.replace("POST", MAIN, status=503)
    seed_lead(fake)
    deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))
    message = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    event = sqs_event([message["Body"]])
    event["Records"][0]["receiptHandle"] = message["ReceiptHandle"]

    first = client.lambda_.invoke("deliver-notifications", event).payload
    assert first == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(notifications.MAX_ATTEMPTS)
    client.lambda_.invoke("deliver-notifications", event)
    assert [n.state for n in Notification.scan()] == ["dead"]
    assert notifications.dead_letters()["deadNotifications"] == 1

    amo.replace("POST", MAIN, json={"ok": True})
    assert notifications.redrive()["redriven"] == 1
    redriven = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    client.lambda_.invoke("deliver-notifications", sqs_event([redriven[-1]["Body"]]))
    assert [n.state for n in Notification.scan()] == ["sent"]


def test_without_a_main_backend_url_notifications_are_skipped(client, fake, amo, monkeypatch):
    monkeypatch.delenv("MAIN_BACKEND_WEBHOOK_URL")
    seed_lead(fake)
    deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))
    assert [n.state for n in Notification.scan()] == ["skipped"]
    assert main_backend_calls(amo) == []


# -- registration -------------------------------------------------------------------------------


def test_register_subscribes_once_with_the_secret_and_never_returns_it(client, fake, amo, monkeypatch):
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "s3cr3t")
    amo.get(f"{HOST}/api/v4/webhooks", status=204)
    amo.post(f"{HOST}/api/v4/webhooks", json={"id": 1, "destination": "x"}, headers=HAL)
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json", "Host": "api.example.com"}

    response = client.http.post(
        f"{P}/webhook/register",
        headers=headers,
        body=json.dumps({"url": "https://api.example.com/api/integrations/amo-crm/webhook"}),
    )

    assert response.status_code == 200
    assert response.json_body["destination"] == "https://api.example.com/api/integrations/amo-crm/webhook?secret=***"
    assert "s3cr3t" not in response.body.decode()
    sent = json.loads(
        [c for c in amo.calls if c.request.method == "POST" and "webhooks" in c.request.url][0].request.body
    )
    assert sent["destination"].endswith("?secret=s3cr3t") and sent["settings"] == webhooks.SUBSCRIBED_EVENTS


def register(client, body: dict, host: str = "api.example.com"):
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json", "Host": host}
    return client.http.post(f"{P}/webhook/register", headers=headers, body=json.dumps(body))


def subscriptions_posted(amo) -> list[dict]:
    return [json.loads(c.request.body) for c in amo.calls if c.request.method == "POST" and "webhooks" in c.request.url]


def test_a_destination_on_another_host_is_refused_unless_asked_for_explicitly(client, fake, amo):
    amo.get(f"{HOST}/api/v4/webhooks", status=204)
    amo.post(f"{HOST}/api/v4/webhooks", json={"id": 1, "destination": "x"}, headers=HAL)
    foreign = {"url": "https://collector.example.net/hook"}

    refused = register(client, foreign)
    not_quite = register(client, {**foreign, "allowForeignDestination": "true"})
    assert refused.status_code == 400 and "allowForeignDestination" in refused.json_body["Message"]
    assert not_quite.status_code == 400  # a string is not a yes
    assert subscriptions_posted(amo) == []

    allowed = register(client, {**foreign, "allowForeignDestination": True})
    assert allowed.status_code == 200
    assert subscriptions_posted(amo)[0]["destination"].startswith("https://collector.example.net/hook?secret=")


def test_without_a_url_the_service_registers_its_own_route(client, fake, amo):
    amo.get(f"{HOST}/api/v4/webhooks", status=204)
    amo.post(f"{HOST}/api/v4/webhooks", json={"id": 1, "destination": "x"}, headers=HAL)
    assert register(client, {}).status_code == 200
    destination = subscriptions_posted(amo)[0]["destination"]
    assert destination.startswith("http://api.example.com/integrations/amo-crm/webhook?secret=")


@pytest.mark.parametrize("secret", ["a+b/c=d&e@f", "p@ss word/+=", "секрет&="])
def test_a_secret_with_url_special_characters_is_masked_in_every_form(client, fake, amo, monkeypatch, secret):
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", secret)
    amo.get(f"{HOST}/api/v4/webhooks", status=204)
    amo.post(f"{HOST}/api/v4/webhooks", json={"id": 1, "destination": "x"}, headers=HAL)
    response = register(client, {"url": "https://api.example.com/api/integrations/amo-crm/webhook"})
    assert response.status_code == 200
    body = response.body.decode()
    for form in {secret, quote(secret), quote_plus(secret), quote(secret, safe="")}:
        assert form not in body
    assert response.json_body["destination"].endswith("?secret=***")


def test_unregister_deletes_by_destination(fake, amo):
    amo.delete(f"{HOST}/api/v4/webhooks", status=204)
    assert webhooks.unregister(wiring.amo(), "https://api.example.com/hook")["message"] == "webhook unregistered"
    assert json.loads(amo.calls[-1].request.body) == {
        "destination": "https://api.example.com/hook?secret=test-webhook-secret"
    }


def test_an_entity_amocrm_answers_404_for_is_not_found_like_a_204(client, fake):
    fake.answers_404[424242] = {"title": "Not Found", "type": "https://httpstatus.es/404", "detail": "Lead not found"}
    response = deliver(client, wb.lead_event("update", 424242))
    assert response.json_body == {"status": "ok", "processed": 1, "errors": []}
    assert [i.outcome for i in AmoActivityLog.query("leads#424242")] == ["not_found"]


def test_a_404_that_names_no_entity_is_an_error_to_retry_not_a_missing_lead(client, fake):
    """An unknown path's 404 (reference §3.5) says nothing about the lead: the event fails and
    is retried, nothing is recorded as not found."""
    fake.answers_404[424243] = {"title": "Not Found", "type": "https://httpstatus.es/404", "detail": "Unknown path"}
    response = deliver(client, wb.lead_event("update", 424243))
    assert response.json_body["processed"] == 0 and len(response.json_body["errors"]) == 1
    assert "not_found" not in [i.outcome for i in AmoActivityLog.query("leads#424243")]


def test_hand_set_tokens_learn_their_account_so_webhooks_are_accepted(client, amo, monkeypatch):
    monkeypatch.setenv("ENABLE_DEV_ENDPOINTS", "true")
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    client.http.post(
        f"{P}/set-tokens",
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        body=json.dumps({"access_token": "a", "refresh_token": "r"}),
    )
    from chalicelib.services import token_store

    assert token_store.load_token().account_id == fixtures.ACCOUNT_ID
    assert deliver(client, wb.lead_note(1)).json_body["processed"] == 1


def test_hand_set_tokens_of_an_unknown_account_still_let_webhooks_in(client, amo, monkeypatch):
    monkeypatch.setenv("ENABLE_DEV_ENDPOINTS", "true")
    amo.get(
        f"{HOST}/api/v4/account",
        status=403,
        headers={"Content-Type": "application/problem+json"},
        json={"title": "Forbidden", "type": "https://httpstatus.es/403", "status": 403, "detail": "Denied"},
    )
    client.http.post(
        f"{P}/set-tokens",
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        body=json.dumps({"access_token": "a", "refresh_token": "r"}),
    )
    assert deliver(client, wb.lead_note(1)).json_body["processed"] == 1


def test_a_delete_after_a_restore_is_applied_not_taken_for_the_first_delete(client, fake):
    """Regression (issue 23): a delete carries no time, so the second delete of a restored lead
    had the first one's event id and was answered as a duplicate: the lead stayed linked."""
    seed_lead(fake, 17710)
    fake.leads = []
    deliver(client, wb.lead_delete(17710))
    # restored in amoCRM (which stamps it anew), and linked again by its next read
    fake.leads = [lead(17710, status_id=INITIAL, contact_ids=(1,), updated_at=int(time.time()) + 60)]
    leads.fetch_and_upsert(wiring.amo(), 17710)
    assert Lead.get(leads.lead_id_for(17710)).amo_lead_id == 17710

    fake.leads = []
    deliver(client, wb.lead_delete(17710))

    assert Lead.get(leads.lead_id_for(17710)).amo_lead_id is None


def test_a_prefetch_that_fails_leaves_each_queued_event_to_be_applied_on_its_own(
    client, fake, amo, webhook_queue, monkeypatch
):
    """Regression (issue 23): the batch prefetch ran outside the per-record runner, so one
    throttled BatchGetItem failed every message of the batch."""
    from pynamodb.exceptions import GetError

    from chalicelib.services import webhook_events

    seed_lead(fake)
    fake.leads.append(lead(17658, updated_at=1700000001))
    deliver(client, wb.lead_event("update", 17657) + wb.lead_event("update", 17658))
    messages = boto3.client("sqs").receive_message(QueueUrl=webhook_queue, MaxNumberOfMessages=10)["Messages"]

    def throttled(entity, ids):
        raise GetError("Failed to batch get items", Exception("ProvisionedThroughputExceededException"))

    monkeypatch.setattr(webhook_events, "_stored_versions", throttled)
    result = client.lambda_.invoke("process-webhooks", sqs_event([m["Body"] for m in messages])).payload

    assert result == {"batchItemFailures": []}
    assert Lead.get(leads.lead_id_for(17658)).amo_lead_id == 17658
