"""Lead sync: SPEC §2 mapping, no N+1, idempotent upserts, status-change notifications,
per-item errors, incremental runs and continuation across a faked timeout."""

import gc
import json
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from chalicelib import wiring
from chalicelib.amo.errors import AmoBlocked
from chalicelib.amo.pages import PageFetcher
from chalicelib.models import AmoContact, Lead, Notification, SyncJob, SyncState
from chalicelib.services import leads, pipelines, sync
from chalicelib.services.errors import Conflict, NoProgress, ReauthorizationRequired
from chalicelib.services.sync import lead_pages, runs
from tests import fixtures
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, contact, lead, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

SALES, RENTALS = 3177727, 3177731
INITIAL, NEGOTIATION, DECISION = 58141807, 58141811, 58141815


@pytest.fixture
def amo_data(amo, monkeypatch):
    """Connected account with the two reference pipelines synced and mapped; a fake amoCRM."""
    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    pipelines.update_stage_mapping(NEGOTIATION, "IN_PROGRESS")
    pipelines.update_stage_mapping(INITIAL, "NEW")
    return FakeAmo(amo)


def stored(amo_lead_id):
    return Lead.get(leads.lead_id_for(amo_lead_id))


def test_first_contact_is_used_when_none_is_main(amo_data):
    amo_data.contacts = {5: contact(5, name="Anna Smith")}
    raw = lead(11, contact_ids=(5,))
    raw["_embedded"]["contacts"][0]["is_main"] = False
    amo_data.leads = [raw]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert stored(11).guest_name == "Anna Smith"


def test_won_and_lost_are_closed_and_unmapped_stages_are_new(amo_data):
    amo_data.leads = [
        lead(20, pipeline_id=RENTALS, status_id=142),
        lead(21, status_id=143),
        lead(22, status_id=DECISION),
    ]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert [stored(i).status for i in (20, 21, 22)] == ["CLOSED", "CLOSED", "NEW"]


def test_an_unmapped_stage_keeps_the_existing_status(amo_data):
    amo_data.leads = [lead(23, status_id=NEGOTIATION)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.leads = [lead(23, status_id=DECISION, updated_at=1700000100)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert (stored(23).status, stored(23).amo_status_id) == ("IN_PROGRESS", DECISION)


def test_contacts_are_fetched_in_batches_not_one_per_lead(amo_data, monkeypatch):
    monkeypatch.setenv("AMO_RATE_LIMIT_RPS", "7")  # real pacing, so pages are not requested speculatively
    amo_data.contacts = {c: contact(c, name=f"Гость {c}") for c in range(1000, 1600)}
    amo_data.leads = [lead(100 + i, contact_ids=(1000 + i,)) for i in range(600)]

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert result["synced"] == 600
    assert 3 <= len(amo_data.requests_to("/api/v4/leads")) <= 4  # ceil(600/250), and one ahead (pages.py)
    contact_requests = amo_data.requests_to("/api/v4/contacts")
    assert len(contact_requests) == 3  # ceil(600/250), each with up to 250 ids
    assert all(len(url) < 8000 for url in contact_requests)
    assert any("filter%5Bid%5D%5B%5D=1000&" in url for url in contact_requests)
    assert AmoContact.get(1599).name == "Гость 1599"
    assert stored(699).guest_name == "Гость 1599"


def test_contacts_already_mirrored_are_not_fetched_again(amo_data):
    amo_data.contacts = {1: contact(1)}
    amo_data.leads = [lead(30, contact_ids=(1,))]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.urls.clear()
    amo_data.leads = [lead(30, contact_ids=(1,), updated_at=1700000500), lead(31, contact_ids=(1,))]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert amo_data.requests_to("/api/v4/contacts") == []


def test_limit_caps_the_number_of_leads(amo_data):
    amo_data.leads = [lead(1000 + i) for i in range(300)]
    assert sync.sync_leads_from_amo(wiring.amo(), limit=50)["synced"] == 50
    assert len(list(Lead.scan())) == 50
    assert all("limit=250" in u for u in amo_data.requests_to("/api/v4/leads"))


def test_the_heap_frozen_for_the_sync_is_unfrozen_when_it_ends_even_after_an_error(amo_data, monkeypatch):
    amo_data.leads = [lead(1000 + i) for i in range(3)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert gc.get_freeze_count() == 0

    monkeypatch.setattr(lead_pages, "write_batch", lambda *_: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert gc.get_freeze_count() == 0


def test_an_older_update_never_overwrites_a_newer_record(amo_data):
    amo_data.leads = [lead(50, status_id=NEGOTIATION, updated_at=1700000900)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.leads = [lead(50, status_id=INITIAL, updated_at=1700000100)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert (stored(50).amo_status_id, stored(50).status) == (NEGOTIATION, "IN_PROGRESS")
    assert leads.upsert_one(wiring.amo(), lead(50, status_id=INITIAL, updated_at=1700000100)) is None


def test_a_status_change_seen_by_sync_records_one_notification(amo_data, monkeypatch):
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", "https://main.example.com/hooks/amocrm")
    amo_data.leads = [lead(60, status_id=INITIAL)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    assert list(Notification.scan()) == []  # a new lead is not a change
    amo_data.leads = [lead(60, status_id=NEGOTIATION, updated_at=1700000600)]

    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    sync.sync_leads_from_amo(wiring.amo(), limit=0)

    notes = list(Notification.scan())
    assert len(notes) == 1
    payload = notes[0].payload
    assert (payload["event"], payload["status"], payload["previousStatus"]) == (
        "lead.status_changed",
        "IN_PROGRESS",
        "NEW",
    )
    assert (payload["amoLeadId"], payload["stageId"], payload["pipelineId"]) == (60, NEGOTIATION, SALES)
    assert payload["leadId"] == stored(60).id and notes[0].state == "pending"


def test_malformed_leads_and_unknown_stages_are_reported_and_the_sync_carries_on(amo_data, amo):
    broken = lead(71)
    broken["pipeline_id"] = None
    amo_data.leads = [lead(70), broken, lead(72, status_id=99999), lead(73)]

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert result["synced"] == 2
    assert {e["id"] for e in result["errors"]} == {71, 72}
    assert "99999" in next(e["message"] for e in result["errors"] if e["id"] == 72)
    # the unknown stage made the sync re-read the pipelines once before giving up on that lead
    assert len([c for c in amo.calls if c.request.url.endswith("/api/v4/leads/pipelines")]) == 2


def test_a_revoked_connection_stops_the_sync_with_a_clear_error(amo_data, amo):
    from chalicelib.models import AmoToken

    token = AmoToken.get(AmoToken.SINGLETON_KEY)
    token.update(actions=[AmoToken.expires_at.set(0)])
    fixtures.refuse_refresh(amo)
    amo_data.leads = [lead(80)]
    with pytest.raises(ReauthorizationRequired):
        sync.sync_leads_from_amo(wiring.amo(), limit=0)


def test_a_blocked_account_stops_the_sync(amo_data, amo):
    amo.replace(
        "GET",
        f"{HOST}/api/v4/leads/pipelines",
        status=403,
        body=fixtures.BLOCKED_HTML,
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(AmoBlocked):
        sync.sync_all(wiring.amo())


def test_a_lead_that_kept_changing_holds_the_window_so_the_next_run_reads_it_again(amo_data, monkeypatch):
    """Regression (issue 23): the run recorded its start as the next window although a lead's
    change was not written; a lead changed before that window was never listed again."""
    amo_data.leads = [lead(81, status_id=INITIAL, updated_at=1700000000)]
    sync.sync_all(wiring.amo(), full=True)
    window = SyncState.get("leads").last_success_started_at
    amo_data.leads = [lead(81, status_id=NEGOTIATION, updated_at=int(window) - 1)]

    def contended(*args, **kwargs):
        raise Conflict("lead 81 kept changing while it was written; try again")

    with monkeypatch.context() as patch:
        patch.setattr(lead_pages.leads, "upsert", contended)
        result = sync.sync_all(wiring.amo(), full=False)
    assert "kept changing" in json.dumps(result)
    assert SyncState.get("leads").last_success_started_at == window  # held

    sync.sync_all(wiring.amo(), full=False)  # the next scheduled run heals it
    assert stored(81).status == "IN_PROGRESS"
    assert SyncState.get("leads").last_success_started_at > window


def test_incremental_sync_asks_only_for_changes_since_the_last_run_minus_overlap(amo_data):
    amo_data.leads = [lead(90, updated_at=1700000000)]
    sync.sync_all(wiring.amo(), full=True)
    started = SyncState.get("leads").last_success_started_at
    amo_data.urls.clear()

    sync.sync_all(wiring.amo(), full=False)

    url = amo_data.requests_to("/api/v4/leads")[0]
    assert f"filter%5Bupdated_at%5D%5Bfrom%5D={int(started - runs.OVERLAP_SECONDS)}" in url


def test_a_sync_that_runs_out_of_time_continues_through_the_queue_without_loss_or_duplicates(
    amo_data, monkeypatch, client
):
    queue_url = boto3.client("sqs").create_queue(QueueName="amocrm-sync")["QueueUrl"]
    monkeypatch.setenv("SYNC_QUEUE_URL", queue_url)
    amo_data.contacts = {c: contact(c, name=f"Гость {c}") for c in range(1, 301)}
    amo_data.leads = [lead(5000 + i, contact_ids=(1 + i % 300,)) for i in range(1100)]
    pages_written = []
    real_add_page = lead_pages.LeadPageWriter.add_page
    monkeypatch.setattr(
        lead_pages.LeadPageWriter,
        "add_page",
        lambda self, raw: (pages_written.append(len(raw)), real_add_page(self, raw)),
    )

    # time runs low once two pages are in: the invocation must hand over
    first = sync.sync_leads_from_amo(wiring.amo(), limit=0, time_left=lambda: 100.0 if len(pages_written) < 2 else 5.0)

    assert first["status"] == "continuing" and first["synced"] == 500
    job = SyncJob.get(first["jobId"])
    assert job.next_page == 3
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [{"jobId": first["jobId"], "page": 3}]

    event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": messages[0]["Body"],
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:amocrm-sync",
                "awsRegion": "us-east-1",
            }
        ]
    }
    monkeypatch.setattr(lead_pages.LeadPageWriter, "add_page", real_add_page)
    # chalice's test context allows 3 s; give the continuation a real Lambda's 15 minutes
    monkeypatch.setattr("chalicelib.web.time_left_for_event", lambda context: lambda: 900.0)
    client.lambda_.invoke("continue-sync", event)

    job = SyncJob.get(first["jobId"])
    assert (job.status, job.synced) == ("done", 1100)
    stored_ids = sorted(item.amo_lead_id for item in Lead.scan())
    assert stored_ids == [5000 + i for i in range(1100)]
    assert SyncState.get("leads").last_success_started_at == job.started_at
    assert SyncState.get("leads").listed_items == 1100  # the whole list, across both invocations


def test_a_whole_list_read_again_expects_it_to_end_where_it_ended_last_time(amo_data, monkeypatch):
    """amoCRM's lead list gives no total: a first full sync asks a few pages ahead and, at a
    high latency, some are answered 204. How long the list was is kept (an incremental run
    keeps it), so the next whole read asks no page past that before an answer says one
    follows (tests/amo/test_pages.py)."""
    expected = []
    real_init = PageFetcher.__init__

    def spy(self, *args, **kwargs):
        expected.append(kwargs.get("expected_last_page"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(PageFetcher, "__init__", spy)
    amo_data.leads = [lead(7000 + i) for i in range(600)]  # three pages of 250
    sync.sync_all(wiring.amo(), full=True)
    assert SyncState.get("leads").listed_items == 600
    sync.sync_all(wiring.amo(), full=False)
    assert SyncState.get("leads").listed_items == 600
    expected.clear()
    amo_data.urls.clear()

    sync.sync_all(wiring.amo(), full=True)

    assert expected == [3]
    pages = [parse_qs(urlsplit(url).query)["page"][0] for url in amo_data.requests_to("/api/v4/leads")]
    assert "4" not in pages


def test_a_continuation_without_time_for_one_page_fails_instead_of_requeueing_forever(amo_data, monkeypatch):
    queue_url = boto3.client("sqs").create_queue(QueueName="amocrm-sync")["QueueUrl"]
    monkeypatch.setenv("SYNC_QUEUE_URL", queue_url)
    amo_data.leads = [lead(6000 + i) for i in range(600)]
    first = sync.sync_leads_from_amo(wiring.amo(), limit=0, time_left=lambda: 5.0)  # out of time from the start
    assert first["status"] == "continuing" and first["synced"] == 0
    with pytest.raises(NoProgress, match="no time"):
        sync.resume(wiring.amo(), job_id=first["jobId"], time_left=lambda: 5.0)
    assert sync.resume(wiring.amo(), job_id=first["jobId"], time_left=lambda: 900.0)["status"] == "done"
    assert len(list(Lead.scan())) == 600


def test_a_first_sync_all_fetches_the_pipelines_once_while_its_first_lead_pages_are_on_their_way(amo):
    """sync_all requests pipelines and the first lead pages together, but maps no lead before
    the stages are stored: a lead mapped earlier would find its stage unknown and fetch the
    pipelines a second time."""
    store_tokens()

    leads_asked_meanwhile = []

    def slow_pipelines(request):
        time.sleep(0.3)  # the lead pages arrive first
        leads_asked_meanwhile.append(any("/api/v4/leads?" in call.request.url for call in amo.calls))
        return 200, HAL, json.dumps(fixtures.pipelines_body())

    amo.add_callback("GET", f"{HOST}/api/v4/leads/pipelines", callback=slow_pipelines)
    fake = FakeAmo(amo)
    fake.leads = [lead(7000 + i, status_id=INITIAL) for i in range(300)]

    result = sync.sync_all(wiring.amo(), full=True)

    assert result["leads"]["errors"] == []
    assert result["leads"]["synced"] == 300
    assert leads_asked_meanwhile == [True]
    assert len([c for c in amo.calls if c.request.url.endswith("/api/v4/leads/pipelines")]) == 1
    assert stored(7000).status == "NEW"


def test_a_resync_of_unchanged_leads_builds_no_model_and_writes_nothing(amo_data, monkeypatch):
    amo_data.contacts = {5: contact(5, name="Anna Smith")}
    amo_data.leads = [lead(i, status_id=NEGOTIATION, contact_ids=(5,)) for i in range(30, 40)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    built, written = [], []
    monkeypatch.setattr(Lead, "from_raw_data", classmethod(lambda cls, data: built.append(data)))
    monkeypatch.setattr(Lead, "save", lambda self, *a, **k: written.append(self))

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert (result["synced"], result["errors"], built, written) == (10, [], [], [])


def test_custom_fields_that_differ_only_in_key_order_are_not_a_change(amo_data):
    fields = [{"field_id": 1, "field_name": "Объект", "values": [{"value": "PROP-1"}]}]
    amo_data.leads = [lead(41, custom_fields=fields)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    written_at = stored(41).updated_at
    amo_data.leads = [
        lead(41, custom_fields=[{"values": [{"value": "PROP-1"}], "field_name": "Объект", "field_id": 1}])
    ]

    sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert stored(41).updated_at == written_at


def test_a_changed_lead_among_unchanged_ones_is_written(amo_data):
    amo_data.leads = [lead(i, status_id=NEGOTIATION) for i in range(42, 45)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.leads[1] = lead(43, status_id=NEGOTIATION, price=999, updated_at=1700000900)

    sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert [stored(i).price for i in (42, 43, 44)] == [stored(42).price, 999, stored(44).price]
    assert stored(43).amo_updated_at == 1700000900


def test_an_incremental_run_that_runs_out_of_time_continues_its_keyset_where_it_stopped(amo_data, monkeypatch):
    queue_url = boto3.client("sqs").create_queue(QueueName="amocrm-sync")["QueueUrl"]
    monkeypatch.setenv("SYNC_QUEUE_URL", queue_url)
    old, now = int(time.time()) - 30 * 86400, int(time.time())
    amo_data.leads = [lead(7000 + i, updated_at=old) for i in range(700)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    # every lead changed since: some at the same second, in an order unlike their ids
    amo_data.leads = [lead(7000 + i, updated_at=now - 60 + (i * 7) % 50, price=2000 + i) for i in range(700)]
    pages_written = []
    real_add_page = lead_pages.LeadPageWriter.add_page
    monkeypatch.setattr(
        lead_pages.LeadPageWriter,
        "add_page",
        lambda self, raw: (pages_written.append(len(raw)), real_add_page(self, raw)),
    )
    amo_data.urls.clear()

    first = sync.sync_leads_from_amo(
        wiring.amo(), limit=0, incremental=True, time_left=lambda: 100.0 if len(pages_written) < 2 else 5.0
    )

    assert first["status"] == "continuing"
    job = SyncJob.get(first["jobId"])
    assert job.params["keyset"]["cursor"] > now - 60 and not job.params["keyset"]["done"]
    done = sync.resume(wiring.amo(), job_id=first["jobId"], time_left=lambda: 900.0, page=job.next_page)

    assert done["status"] == "done"
    assert sorted((item.amo_lead_id, item.price) for item in Lead.scan()) == [(7000 + i, 2000 + i) for i in range(700)]
    lists = amo_data.requests_to("/api/v4/leads")
    assert all("order%5Bupdated_at%5D=asc" in url and "page=1" in url for url in lists)  # keyset, never an offset
    assert SyncState.get("leads").last_success_started_at == job.started_at
