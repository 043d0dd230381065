"""A stage mapping takes effect at once: the leads sitting in a stage the operator maps change
status without a sync, the Main Backend hears of each change once, with the mapping as its
reason and time, and a full sync afterwards has nothing more to tell it. Stages still unmapped
are listed with their leads."""

from collections import Counter
from datetime import UTC, datetime

import pytest

WON, LOST = 142, 143


@pytest.fixture(scope="module")
def mirrored(backend):
    """The module's account with pipelines and leads mirrored and no stage mapped yet: every open
    lead is NEW."""
    backend.call("POST", "sync-pipelines")
    status, result = backend.call("POST", "sync-leads?limit=0")
    assert status == 200 and result["errors"] == []
    return backend


def leads_per_stage(backend):
    leads = backend.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]
    return Counter((lead["pipeline_id"], lead["status_id"]) for lead in leads if lead["status_id"] not in (WON, LOST))


def notifications(backend):
    return backend.sandbox("GET", "/_sandbox/main-backend/notifications")[1]["notifications"]


def amocrm_requests(backend):
    return sum(count for path, count in backend.stats()["by_path"].items() if "/api/v4/" in path)


def test_unmapped_stages_are_listed_with_the_leads_in_each(mirrored):
    status, listed = mirrored.call("GET", "mapping/status")

    assert status == 200
    in_sandbox = leads_per_stage(mirrored)
    assert {(s["pipelineId"], s["stageId"]): s["leads"] for s in listed["data"] if s["leads"]} == dict(in_sandbox)
    assert all(s["stageId"] not in (WON, LOST) and s["stageName"] and s["pipelineName"] for s in listed["data"])
    assert listed["unmappedLeads"] == sum(in_sandbox.values()) and listed["count"] == len(listed["data"])


def test_mapping_a_stage_changes_its_leads_at_once_and_the_main_backend_hears_once(mirrored):
    backend = mirrored
    (pipeline_id, stage_id), count = leads_per_stage(backend).most_common(1)[0]
    in_stage = [
        lead["id"]
        for lead in backend.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]
        if (lead["pipeline_id"], lead["status_id"]) == (pipeline_id, stage_id)
    ]
    heard_before, requests_before = len(notifications(backend)), amocrm_requests(backend)

    status, answer = backend.call(
        "PUT", f"stages/{stage_id}/mapping", {"mappedStatus": "IN_PROGRESS", "pipelineId": pipeline_id}
    )

    assert status == 200 and answer["leadsChanged"] == count == len(in_stage)
    assert amocrm_requests(backend) == requests_before  # no sync: nothing asked of amoCRM
    assert {backend.call("GET", f"leads/{lead_id}")[1]["status"] for lead_id in in_stage} == {"IN_PROGRESS"}
    mapped_at = datetime.fromtimestamp(answer["data"]["mapped_at"], UTC).isoformat().replace("+00:00", "Z")
    heard = notifications(backend)[heard_before:]
    assert sorted(n["body"]["amoLeadId"] for n in heard) == sorted(in_stage)  # each lead once
    for note in heard:
        body = note["body"]
        assert (body["reason"], body["occurredAt"]) == ("mapping_changed", mapped_at)
        assert (body["previousStatus"], body["status"], body["stageId"]) == ("NEW", "IN_PROGRESS", stage_id)
        assert note["headers"]["idempotency-key"] == body["eventId"]

    _, again = backend.call(
        "PUT", f"stages/{stage_id}/mapping", {"mappedStatus": "IN_PROGRESS", "pipelineId": pipeline_id}
    )
    status, synced = backend.call("POST", "sync-all?leadsLimit=0&full=true")

    assert again["leadsChanged"] == 0
    assert status == 200 and synced["leads"]["errors"] == []
    assert len(notifications(backend)) == heard_before + count  # nothing further
    _, listed = backend.call("GET", "mapping/status")
    assert (pipeline_id, stage_id) not in {(s["pipelineId"], s["stageId"]) for s in listed["data"]}


def test_auto_apply_maps_the_rest_and_says_how_many_leads_changed(mirrored):
    backend = mirrored
    heard_before = len(notifications(backend))

    status, applied = backend.call("POST", "mapping/auto-apply", {"minConfidence": 0})

    assert status == 200 and applied["errors"] == []
    heard = notifications(backend)[heard_before:]
    assert applied["leadsChanged"] == len(heard) and {n["body"]["reason"] for n in heard} <= {"mapping_changed"}
    _, listed = backend.call("GET", "mapping/status")
    assert listed["count"] == 0 and listed["unmappedLeads"] == 0
