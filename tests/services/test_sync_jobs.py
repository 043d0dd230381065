"""Continuations delivered more than once, invocations that die, messages that dead-letter
(issue 13, item 17): one chain per job, each page run once, nothing "running" forever."""

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib import wiring
from chalicelib.models import Lead, SyncJob, SyncState
from chalicelib.services import sync
from chalicelib.services.sync import jobs, lease
from tests.fixtures import lead
from tests.services.test_leads_sync import amo_data as amo_data  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


@pytest.fixture
def handed_over(amo_data, monkeypatch):  # noqa: F811
    """A leads sync of 600 leads that ran out of time before its first page: job at page 1."""
    queue_url = boto3.client("sqs").create_queue(QueueName="amocrm-sync")["QueueUrl"]
    monkeypatch.setenv("SYNC_QUEUE_URL", queue_url)
    amo_data.leads = [lead(7000 + i) for i in range(600)]
    first = sync.sync_leads_from_amo(wiring.amo(), limit=0, time_left=lambda: 5.0)
    message = json.loads(boto3.client("sqs").receive_message(QueueUrl=queue_url)["Messages"][0]["Body"])
    assert message == {"jobId": first["jobId"], "page": 1}
    return first["jobId"], amo_data


def lead_page_requests(amo_data):
    return [c for c in amo_data.mock.calls if "/api/v4/leads?" in c.request.url]


def test_a_copy_of_a_message_another_invocation_is_running_does_nothing(handed_over):
    job_id, amo_data = handed_over
    running = jobs.claim(job_id, 1, lambda: 900.0)  # the first delivery, still at work
    assert isinstance(running, jobs.Claim)
    before = len(lead_page_requests(amo_data))

    copy = sync.resume_message(wiring.amo(), {"jobId": job_id, "page": 1}, lambda: 900.0)

    assert copy["status"] == "claimed"
    assert len(lead_page_requests(amo_data)) == before  # no amoCRM call: the chain did not fork
    assert SyncJob.get(job_id).claim_token == running.token


def test_a_late_copy_of_an_old_message_is_stale(handed_over):
    job_id, _ = handed_over
    assert sync.resume_message(wiring.amo(), {"jobId": job_id, "page": 1}, lambda: 900.0)["status"] == "done"
    assert len(list(Lead.scan())) == 600
    assert sync.resume_message(wiring.amo(), {"jobId": job_id, "page": 1}, lambda: 900.0)["status"] == "done"
    job = SyncJob.get(job_id)
    job.update(actions=[SyncJob.status.set("running"), SyncJob.next_page.set(3)])  # as if it had moved on
    assert sync.resume_message(wiring.amo(), {"jobId": job_id, "page": 1}, lambda: 900.0)["status"] == "stale"


def test_the_redelivery_after_an_invocation_died_takes_over(handed_over):
    job_id, _ = handed_over
    died = jobs.claim(job_id, 1, lambda: 900.0)
    assert isinstance(died, jobs.Claim)
    # the invocation died; its claim ran out (SQS redelivers only after the visibility timeout)
    SyncJob.get(job_id).update(actions=[SyncJob.claimed_until.set(died.job.claimed_until - 2000)])

    assert sync.resume(wiring.amo(), job_id=job_id, time_left=lambda: 900.0, page=1)["status"] == "done"
    assert (SyncJob.get(job_id).status, SyncJob.get(job_id).synced) == ("done", 600)


def test_an_invocation_that_lost_its_claim_saves_nothing(handed_over):
    job_id, _ = handed_over
    slow = jobs.claim(job_id, 1, lambda: 900.0)
    assert isinstance(slow, jobs.Claim)
    SyncJob.get(job_id).update(actions=[SyncJob.claimed_until.set(0)])
    took_over = jobs.claim(job_id, 1, lambda: 900.0)
    assert isinstance(took_over, jobs.Claim)

    with pytest.raises(jobs.ClaimLost):
        jobs.hand_over(slow.job, next_page=2, synced=250, errors=[], claim=slow)
    assert SyncJob.get(job_id).next_page == 1 and SyncJob.get(job_id).claim_token == took_over.token


def test_a_job_whose_message_dead_lettered_is_failed_when_looked_at(handed_over):
    job_id, _ = handed_over
    long_ago = datetime.now(UTC) - jobs.STALLED_AFTER - timedelta(minutes=1)
    SyncJob.get(job_id).update(actions=[SyncJob.updated_at.set(long_ago)])

    report = sync.get_job(job_id)

    assert report["status"] == "failed"
    assert "continuation was lost" in report["errors"][-1]["error"]
    assert sync.resume(wiring.amo(), job_id=job_id, time_left=lambda: 900.0, page=1)["status"] == "failed"


def test_a_job_that_is_merely_waiting_for_its_redelivery_is_not_failed(handed_over):
    job_id, _ = handed_over
    a_while_ago = datetime.now(UTC) - timedelta(hours=2)  # one visibility timeout: SQS will redeliver
    SyncJob.get(job_id).update(actions=[SyncJob.updated_at.set(a_while_ago)])
    assert sync.get_job(job_id)["status"] == "running"


def test_a_multi_entity_run_that_hands_over_defers_the_rest_to_one_chain(amo_data, monkeypatch):  # noqa: F811
    queue_url = boto3.client("sqs").create_queue(QueueName="amocrm-sync")["QueueUrl"]
    monkeypatch.setenv("SYNC_QUEUE_URL", queue_url)
    amo_data.leads = [lead(7000 + i) for i in range(600)]

    result = sync.sync_all(wiring.amo(), time_left=lambda: 5.0, related=True)

    assert result["leads"]["status"] == "continuing"
    assert result["contacts"]["status"] == result["tasks"]["status"] == "deferred"
    assert [job.entity for job in SyncJob.scan()] == ["leads"]  # one chain under the one lease
    assert lease.running_job() == result["leads"]["jobId"]


def test_a_continuation_whose_lease_another_sync_took_waits_and_gives_its_claim_back(handed_over, monkeypatch):
    job_id, _ = handed_over
    SyncState.get(SyncState.RUNNING_KEY).update(actions=[SyncState.lease_until.set(0)])  # lapsed meanwhile
    other = lease.take()  # the schedule's next run took it

    with pytest.raises(lease.SyncRunning):
        sync.resume(wiring.amo(), job_id=job_id, time_left=lambda: 900.0, page=1)

    assert SyncJob.get(job_id).claim_token is None and SyncJob.get(job_id).next_page == 1
    lease.release(other.owner)
    assert sync.resume(wiring.amo(), job_id=job_id, time_left=lambda: 900.0, page=1)["status"] == "done"


def test_a_continuation_whose_lease_lapsed_takes_it_back_and_names_its_job(handed_over, monkeypatch):
    job_id, _ = handed_over
    SyncState.get(SyncState.RUNNING_KEY).update(actions=[SyncState.lease_until.set(0)])
    monkeypatch.setattr(lease, "release", lambda owner: None)  # look at the lease mid-way
    assert sync.resume(wiring.amo(), job_id=job_id, time_left=lambda: 900.0, page=1)["status"] == "done"
    assert lease.running_job() == job_id


def test_a_continuation_that_cannot_be_queued_fails_its_job_at_once(handed_over, monkeypatch):
    job_id, _ = handed_over
    claim = jobs.claim(job_id, 1, lambda: 900.0)
    assert isinstance(claim, jobs.Claim)

    def refused(message):
        raise RuntimeError("SQS is unavailable")

    monkeypatch.setattr(jobs.queues, "send_sync_request", refused)
    with pytest.raises(RuntimeError):
        jobs.hand_over(claim.job, next_page=2, synced=250, errors=[], claim=claim)
    job = SyncJob.get(job_id)
    assert job.status == "failed" and "could not be queued" in job.errors[-1]["error"]


def test_a_job_keeps_a_bounded_list_of_errors(handed_over):
    job_id, _ = handed_over
    for page in (1, 2, 3):
        claim = jobs.claim(job_id, page, lambda: 900.0)
        assert isinstance(claim, jobs.Claim)
        errors = [{"id": page * 1000 + i, "error": "x" * 100} for i in range(150)]
        jobs._save(claim.job, next_page=page + 1, synced=0, errors=errors, status="running", claim=claim)
    assert len(SyncJob.get(job_id).errors) == jobs.MAX_ERRORS


def test_a_claim_whose_answer_was_lost_is_recognised_as_our_own(handed_over, monkeypatch):
    """Regression (issue 23): the SDK's retry of a claim that had landed lost its condition
    against the claim itself; the invocation answered "claimed" and the job sat `running`."""
    job_id, _ = handed_over
    real_update = SyncJob.update

    def applied_then_answer_lost(self, *args, **kwargs):
        real_update(self, *args, **kwargs)
        return real_update(self, *args, **kwargs)  # the retry: its condition no longer holds

    with monkeypatch.context() as patch:
        patch.setattr(SyncJob, "update", applied_then_answer_lost)
        claimed = jobs.claim(job_id, 1, lambda: 900.0)

    assert isinstance(claimed, jobs.Claim)
    assert SyncJob.get(job_id).claim_token == claimed.token
