"""A stage mapping takes effect at once and says what it did (issue 16): the leads of a newly
mapped stage are re-derived without a sync (inline, or as a background job when there are many),
each change is notified once with `reason: mapping_changed` and the time of the mapping, a sync
afterwards sends nothing more, and stages still unmapped are listed with their leads."""

import json
import time
from datetime import datetime

import boto3
import pytest

from chalicelib import wiring
from chalicelib.models import AmoStage, Lead, Notification, SyncJob
from chalicelib.services import lead_status, leads, pipelines, rederive, sync
from tests import fixtures
from tests.conftest import API_KEY
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, lead, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
MAIN = "https://main.example.com/hooks/amocrm"
SALES, RENTALS = 3177727, 3177731
UNSORTED, INITIAL, NEGOTIATION, DECISION = 58141803, 58141807, 58141811, 58141815


@pytest.fixture
def fake(amo, monkeypatch):
    """Pipelines mirrored with only INITIAL mapped; leads in several stages mirrored."""
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", MAIN)
    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    amo.post(MAIN, json={"ok": True})
    pipelines.sync_pipelines(wiring.amo())
    pipelines.update_stage_mapping(INITIAL, "NEW")
    fake = FakeAmo(amo)
    fake.leads = (
        [lead(100 + i, status_id=DECISION) for i in range(3)]
        + [lead(110, status_id=INITIAL)]
        + [lead(120, status_id=142)]
    )
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    return fake


def statuses(*amo_ids):
    return [Lead.get(leads.lead_id_for(i)).status for i in amo_ids]


def notes():
    return sorted((n.payload for n in Notification.scan()), key=lambda p: p["amoLeadId"])


def iso(timestamp):
    return datetime.utcfromtimestamp(timestamp).isoformat() + "Z"


def test_mapping_a_stage_rederives_its_leads_at_once_and_notifies_each_once_with_the_mapping_time(fake):
    requests_before = len(fake.urls)

    result = pipelines.update_stage_mapping(DECISION, "IN_PROGRESS")

    assert result["leadsChanged"] == 3 and len(fake.urls) == requests_before  # no sync, no amoCRM call
    assert statuses(100, 101, 102, 110) == ["IN_PROGRESS"] * 3 + ["NEW"]
    mapped_at = AmoStage.get(SALES, DECISION).mapped_at
    assert result["data"]["mapped_at"] == mapped_at and abs(mapped_at - time.time()) < 5
    assert [
        (n["amoLeadId"], n["previousStatus"], n["status"], n["reason"], n["occurredAt"], n["stageId"]) for n in notes()
    ] == [(i, "NEW", "IN_PROGRESS", "mapping_changed", iso(mapped_at), DECISION) for i in (100, 101, 102)]
    assert {n.state for n in Notification.scan()} == {"sent"}  # delivered to the Main Backend

    assert pipelines.update_stage_mapping(DECISION, "IN_PROGRESS")["leadsChanged"] == 0  # repeated: nothing
    sync.sync_all(wiring.amo(), full=True)  # a full sync afterwards: nothing more to say
    assert len(notes()) == 3


def test_remapping_notifies_the_new_change_with_its_own_event(fake):
    pipelines.update_stage_mapping(DECISION, "IN_PROGRESS")
    result = pipelines.update_stage_mapping(DECISION, "CLOSED")

    assert result["leadsChanged"] == 3 and statuses(100) == ["CLOSED"]
    mine = [n for n in notes() if n["amoLeadId"] == 100]
    assert [(n["previousStatus"], n["status"]) for n in mine] == [("NEW", "IN_PROGRESS"), ("IN_PROGRESS", "CLOSED")]
    assert len({n["eventId"] for n in mine}) == 2


def test_auto_apply_rederives_the_leads_of_every_stage_it_maps(fake):
    result = pipelines.apply_auto_mapping()

    assert result["applied"] > 0 and result["leadsChanged"] == 3  # "Принимают решение" → IN_PROGRESS
    assert statuses(100, 110, 120) == ["IN_PROGRESS", "NEW", "CLOSED"]
    assert {n["reason"] for n in notes()} == {"mapping_changed"}


def test_an_amocrm_stage_change_keeps_amocrms_reason_and_time(fake):
    pipelines.update_stage_mapping(NEGOTIATION, "IN_PROGRESS")
    fake.leads[3] = lead(110, status_id=NEGOTIATION, updated_at=1700000900)
    sync.sync_leads_from_amo(wiring.amo(), limit=0)

    note = next(n for n in notes() if n["amoLeadId"] == 110)
    assert (note["reason"], note["occurredAt"]) == ("amo_stage_changed", iso(1700000900))


def test_a_lead_deleted_in_amocrm_keeps_its_status(fake):
    leads.unlink(101)
    pipelines.update_stage_mapping(DECISION, "CLOSED")
    assert statuses(100, 102) == ["CLOSED", "CLOSED"]
    assert Lead.get(leads.lead_id_for(101)).status == "NEW"


def test_a_full_sync_that_finds_a_status_from_an_older_mapping_notifies_with_the_mapping_reason_and_now(fake):
    # mapped before mappings took effect at once: no time or version recorded, leads not re-derived
    AmoStage.get(SALES, DECISION).update(actions=[AmoStage.mapped_status.set("IN_PROGRESS")])
    before = int(time.time())

    sync.sync_all(wiring.amo(), full=True)

    assert statuses(100, 101, 102) == ["IN_PROGRESS"] * 3
    found = notes()
    assert {n["reason"] for n in found} == {"mapping_changed"} and len(found) == 3
    assert all(iso(before) <= n["occurredAt"] <= iso(int(time.time())) for n in found)  # never amoCRM's 2023 stamp
    sync.sync_all(wiring.amo(), full=True)
    assert len(notes()) == 3


def test_a_sync_that_read_the_mapping_before_it_changed_cannot_put_the_old_status_back(fake, monkeypatch):
    pipelines.update_stage_mapping(DECISION, "IN_PROGRESS")
    fake.leads = [lead(100, status_id=DECISION, price=7000, updated_at=1700000800)]
    real_map = pipelines.status_map

    def map_then_remap():  # the sync reads the stage mappings, then an operator changes one
        found = real_map()
        if not hasattr(map_then_remap, "done"):
            map_then_remap.done = pipelines.update_stage_mapping(DECISION, "CLOSED")
        return found

    monkeypatch.setattr(pipelines, "status_map", map_then_remap)

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    stored = Lead.get(leads.lead_id_for(100))
    assert result["errors"] == [] and (stored.status, stored.price) == ("CLOSED", 7000)
    assert [(n["previousStatus"], n["status"]) for n in notes() if n["amoLeadId"] == 100] == [
        ("NEW", "IN_PROGRESS"),
        ("IN_PROGRESS", "CLOSED"),
    ]


def test_a_change_already_recorded_is_not_recorded_twice(fake):
    stored = Lead.get(leads.lead_id_for(110))
    stored.status, previous = "IN_PROGRESS", stored.status
    change = lead_status.mapping_changed(stored, previous, lead_status.StageMapping("IN_PROGRESS", 7, 1700000000))
    AmoStage.get(SALES, INITIAL).update(actions=[AmoStage.mapped_status.set("IN_PROGRESS")])  # what it derives from
    note = lead_status.notifications.outbox_item(
        stored, previous_status=previous, occurred_at=change.occurred_at, reason=change.reason, event_id=change.event_id
    )
    note.save()

    written = lead_status.write(
        stored, condition=Lead.status == previous, change=change, mapping=lead_status.StageMapping("IN_PROGRESS")
    )

    assert written and Lead.get(stored.id).status == "IN_PROGRESS"
    assert [n.event_id for n in Notification.scan()] == [change.event_id]


# -- many leads: a background job on the sync queue ---------------------------------------------


@pytest.fixture
def sync_queue(monkeypatch):
    url = boto3.client("sqs").create_queue(QueueName="amocrm-sync")["QueueUrl"]
    monkeypatch.setenv("SYNC_QUEUE_URL", url)
    return url


def queued(url):
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        boto3.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def sqs_event(body):
    return {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:amocrm-sync",
                "awsRegion": "us-east-1",
            }
        ]
    }


def test_many_leads_are_rederived_by_a_background_job_followed_at_sync_jobs(fake, sync_queue, client, monkeypatch):
    fake.leads = [lead(500 + i, status_id=DECISION) for i in range(12)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    monkeypatch.setattr(rederive, "INLINE_LIMIT", 10)
    monkeypatch.setattr(rederive, "CHUNK", 4)

    response = client.http.put(
        f"{P}/stages/{DECISION}/mapping", headers=HEADERS, body=json.dumps({"mappedStatus": "IN_PROGRESS"})
    )

    answer = response.json_body
    assert response.status_code == 200 and answer["status"] == "continuing" and "leadsChanged" not in answer
    assert statuses(500) == ["NEW"]  # not yet
    assert queued(sync_queue) == [{"rederive": answer["jobId"]}]
    job = client.http.get(f"{P}/sync-jobs/{answer['jobId']}", headers=HEADERS).json_body
    assert (job["entity"], job["status"], job["leadsChanged"]) == ("mapping", "running", 0)

    # the first invocation runs low on time after one chunk and hands over; the next one finishes
    clock = iter([100.0, 5.0])
    first = rederive.resume(answer["jobId"], time_left=lambda: next(clock, 5.0))
    assert first["status"] == "continuing" and queued(sync_queue) == [{"rederive": answer["jobId"]}]
    monkeypatch.setattr("chalicelib.web.time_left_for_event", lambda context: lambda: 900.0)
    assert client.lambda_.invoke("continue-sync", sqs_event({"rederive": answer["jobId"]})).payload == {
        "batchItemFailures": []
    }

    job = client.http.get(f"{P}/sync-jobs/{answer['jobId']}", headers=HEADERS).json_body
    assert (job["status"], job["leadsChanged"]) == ("done", 15)  # the 12 and the fixture's 3
    assert set(statuses(*range(500, 512), 100)) == {"IN_PROGRESS"}
    assert len(notes()) == 15 and {n["reason"] for n in notes()} == {"mapping_changed"}

    SyncJob.get(answer["jobId"]).update(
        actions=[
            SyncJob.status.set("running"),
            SyncJob.params.set({**SyncJob.get(answer["jobId"]).params, "at": 0, "key": None}),
        ]
    )  # SQS delivers the job again
    assert rederive.resume(answer["jobId"], time_left=lambda: 900.0)["leadsChanged"] == 15
    assert len(notes()) == 15  # re-derived again: every lead already has its status, nothing notified twice


def test_without_a_sync_queue_many_leads_are_rederived_inline(fake, monkeypatch):
    monkeypatch.setattr(rederive, "INLINE_LIMIT", 1)
    assert pipelines.update_stage_mapping(DECISION, "CLOSED")["leadsChanged"] == 3


# -- what is still unmapped -------------------------------------------------------------------------


def test_unmapped_stages_are_listed_with_how_many_leads_sit_in_each(fake, client):
    body = client.http.get(f"{P}/mapping/status", headers=HEADERS).json_body

    listed = {(s["pipelineId"], s["stageId"]): s for s in body["data"]}
    assert set(listed) == {
        (SALES, UNSORTED),
        (SALES, NEGOTIATION),
        (SALES, DECISION),
        (RENTALS, 58141903),
        (RENTALS, 58141907),
        (RENTALS, 58141911),
    }  # 142/143 need none
    assert listed[(SALES, DECISION)] == {
        "pipelineId": SALES,
        "pipelineName": "Воронка",
        "stageId": DECISION,
        "stageName": "Принимают решение",
        "leads": 3,
    }
    assert body["count"] == 6 and body["unmappedLeads"] == 3
    assert [s["stageId"] for s in body["data"]][:3] == [UNSORTED, NEGOTIATION, DECISION]  # pipeline, then stage order

    fake.leads.append(lead(130, status_id=NEGOTIATION))  # a new lead entering an unmapped stage: NEW, and counted
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    pipelines.update_stage_mapping(DECISION, "IN_PROGRESS")

    body = client.http.get(f"{P}/mapping/status", headers=HEADERS).json_body
    assert statuses(130) == ["NEW"]
    assert (SALES, DECISION) not in {(s["pipelineId"], s["stageId"]) for s in body["data"]}
    assert next(s["leads"] for s in body["data"] if s["stageId"] == NEGOTIATION) == 1
