"""At most one sync at a time: a second one is refused with the running job's id, the schedule
skips, a continuation carries the lease and gives it back when done, a dead holder expires."""

import time

import boto3
import pytest

from chalicelib import wiring
from chalicelib.amo.errors import AmoError
from chalicelib.models import SyncState
from chalicelib.services import pipelines, sync
from chalicelib.services.sync import lease
from tests import fixtures
from tests.conftest import API_KEY
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, lead, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"


@pytest.fixture
def fake(amo):
    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    fake = FakeAmo(amo)
    fake.leads = [lead(100 + i) for i in range(30)]
    return fake


def test_a_second_sync_all_while_one_runs_is_409_with_the_running_job(client, fake):
    running = lease.take()
    response = client.http.post(f"{P}/sync-all", headers={"X-API-Key": API_KEY})
    assert response.status_code == 409
    assert response.json_body["jobId"] == running.owner and "already running" in response.json_body["Message"]
    lease.release(running.owner)
    assert client.http.post(f"{P}/sync-all", headers={"X-API-Key": API_KEY}).status_code == 200


def test_the_schedule_skips_while_a_sync_runs(fake):
    running = lease.take()
    assert sync.scheduled_sync(wiring.amo()) == {"skipped": True, "runningJobId": running.owner}
    assert fake.requests_to("/api/v4/leads") == []


def test_a_finished_sync_gives_the_lease_back(fake):
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    sync.sync_leads_from_amo(wiring.amo(), limit=0)  # not refused: the first one released it
    assert lease.running_job() is None


def test_a_failing_sync_gives_the_lease_back_too(fake, amo):
    fake.leads = []
    amo.replace("GET", f"{HOST}/api/v4/leads/pipelines", status=400, json=fixtures.VALIDATION)
    with pytest.raises(AmoError):
        sync.sync_all(wiring.amo())
    assert lease.running_job() is None


def test_a_continuation_carries_the_lease_until_its_job_is_done(fake, monkeypatch):
    monkeypatch.setenv("SYNC_QUEUE_URL", boto3.client("sqs").create_queue(QueueName="amocrm-sync")["QueueUrl"])
    fake.leads = [lead(1000 + i) for i in range(600)]
    first = sync.sync_leads_from_amo(wiring.amo(), limit=0, time_left=lambda: 5.0)
    assert first["status"] == "continuing"
    assert lease.running_job() == first["jobId"]
    with pytest.raises(lease.SyncRunning):
        sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert sync.resume(wiring.amo(), job_id=first["jobId"], time_left=lambda: 900.0)["status"] == "done"
    assert lease.running_job() is None


def test_the_lease_of_a_holder_that_died_expires(fake):
    dead = lease.take()
    SyncState(entity=SyncState.RUNNING_KEY).update(
        actions=[SyncState.lease_until.set(time.time() - 1)], condition=SyncState.owner == dead.owner
    )
    assert sync.sync_leads_from_amo(wiring.amo(), limit=0)["synced"] == 30


def _record_start_up(monkeypatch, events: list[str]) -> None:
    """Records, in order, when the lease write starts and ends, when the token is read, when the
    budget is asked to claim ahead, and when an amoCRM request leaves."""
    from chalicelib.amo.budget import RateLimiter
    from chalicelib.amo.client import AmoClient
    from chalicelib.services.token_store import TokenStore

    take, read, attempt = lease.take, TokenStore.access_token, AmoClient._attempt

    def slow_take(owner=None):
        events.append("lease write starts")
        time.sleep(0.3)  # a slow table: the work beside it must not wait for it
        try:
            return take(owner)
        finally:
            events.append("lease written")

    def reading(store):
        events.append("token read")
        return read(store)

    def sending(client, *args, **kwargs):
        events.append("amoCRM request")
        return attempt(client, *args, **kwargs)

    monkeypatch.setattr(lease, "take", slow_take)
    monkeypatch.setattr(TokenStore, "access_token", reading)
    monkeypatch.setattr(AmoClient, "_attempt", sending)
    claim = lambda limiter, lane="interactive": events.append("claim ahead")  # noqa: E731
    monkeypatch.setattr(RateLimiter, "claim_ahead", claim, raising=False)


@pytest.mark.parametrize("entry", ["sync_all", "sync_entity"])
def test_a_sync_reads_its_token_and_claims_slots_while_its_lease_is_written_and_sends_only_once_it_holds_it(
    fake, monkeypatch, entry
):
    events: list[str] = []
    _record_start_up(monkeypatch, events)

    if entry == "sync_all":
        sync.sync_all(wiring.amo())
    else:
        sync.sync_entity(wiring.amo(), entity="leads", limit=0)

    written = events.index("lease written")
    assert {"token read", "claim ahead"} <= set(events[:written])  # beside the write, not after it
    assert "amoCRM request" in events and "amoCRM request" not in events[:written]


def test_a_sync_refused_the_lease_sends_nothing_to_amocrm(fake, monkeypatch):
    events: list[str] = []
    running = lease.take()
    _record_start_up(monkeypatch, events)

    with pytest.raises(lease.SyncRunning):
        sync.sync_all(wiring.amo())

    assert "amoCRM request" not in events
    assert lease.running_job() == running.owner
