"""amoCRM counts every non-2xx answer towards disabling the hook (reference §9.5, §13): no part of
a body fails the whole delivery, every authentic delivery is 2xx, and the secret can be rotated
without a single 401 to amoCRM."""

import json

import boto3
import pytest

from chalicelib import metrics, wiring
from chalicelib.amo.webhook_body import MAX_BODY_BYTES
from chalicelib.models import AmoActivityLog, Lead
from chalicelib.services import leads, pipelines
from tests import fixtures
from tests import webhook_bodies as wb
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, store_tokens
from tests.services.test_webhooks import INITIAL, NEGOTIATION, SALES, deliver, seed_lead

pytestmark = pytest.mark.usefixtures("aws")

P = "/integrations/amo-crm"


@pytest.fixture
def fake(amo):
    """amoCRM with the fixture pipelines, two stages mapped (no Main Backend configured)."""
    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    pipelines.update_stage_mapping(INITIAL, "NEW")
    pipelines.update_stage_mapping(NEGOTIATION, "IN_PROGRESS")
    return FakeAmo(amo)


@pytest.fixture
def webhook_queue(monkeypatch):
    url = boto3.client("sqs").create_queue(QueueName="amocrm-webhooks")["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", url)
    return url


def queued(url):
    found = []
    while batch := boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(m["Body"]) for m in batch]
    return found


@pytest.fixture
def counted(monkeypatch):
    names = []
    monkeypatch.setattr(metrics, "count", lambda name, amount=1, **dimensions: names.append(name))
    return names


def test_a_nine_level_contacts_key_leaves_an_unrelated_status_event_applied(client, fake):
    """Regression: one key deeper than 8 levels made the whole body malformed, so the lead's
    stage change in the same delivery was never applied."""
    seed_lead(fake)
    pairs = wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL) + [
        ("contacts[update][0][id]", "1"),
        ("contacts[update][0][custom_fields][0][values][0][value][extra]", "x"),
    ]
    response = deliver(client, pairs)
    assert response.status_code == 200
    assert Lead.get(leads.lead_id_for(17657)).status == "IN_PROGRESS"


def test_a_body_over_one_megabyte_is_2xx_and_every_item_is_queued(client, fake, webhook_queue, counted):
    """Regression: a body over 1 MB answered 413, which amoCRM retries and counts towards
    disabling the hook; now every `entity[action][n][id]` (and stage) is queued."""
    pairs = []
    for n in range(120):
        pairs += wb.lead_item(f"leads[update][{n}]", 30000 + n, INITIAL, SALES, 1700000000 + n)
        pairs.append((f"leads[update][{n}][custom_fields][1][values][0][value]", "x" * 9000))
    pairs += wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL)
    body = wb.encode(pairs + wb.account())
    assert len(body) > MAX_BODY_BYTES

    response = client.http.post(
        f"{P}/webhook?secret=test-webhook-secret",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=body,
    )

    assert response.status_code == 200 and response.json_body["processed"] == 121
    messages = queued(webhook_queue)
    assert sorted(int(m["item"]["id"]) for m in messages if m["action"] == "update") == list(range(30000, 30120))
    status = next(m for m in messages if m["action"] == "status")
    assert status["item"]["status_id"] == str(NEGOTIATION) and status["item"]["pipeline_id"] == str(SALES)
    assert "WebhookBodyTrimmed" in counted


def test_the_previous_secret_is_accepted_during_a_rotation_and_counted(client, fake, monkeypatch, counted):
    seed_lead(fake)
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "new-secret")
    monkeypatch.setenv("AMO_WEBHOOK_SECRET_PREVIOUS", "test-webhook-secret")
    pairs = wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL)

    old_url = deliver(client, pairs, path=f"{P}/webhook?secret=test-webhook-secret")
    new_url = deliver(client, pairs, path=f"{P}/webhook?secret=new-secret")
    stranger = deliver(client, pairs, path=f"{P}/webhook?secret=guess")

    assert (old_url.status_code, new_url.status_code, stranger.status_code) == (200, 200, 401)
    assert Lead.get(leads.lead_id_for(17657)).status == "IN_PROGRESS"
    assert counted.count("WebhookPreviousSecret") == 1 and counted.count("WebhookUnauthorized") == 1


def test_after_the_rotation_the_previous_secret_is_refused(client, fake, monkeypatch):
    seed_lead(fake)
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "new-secret")
    pairs = wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL)
    response = deliver(client, pairs, f"{P}/webhook?secret=test-webhook-secret")
    assert response.status_code == 401


def test_a_secret_that_cannot_be_read_is_503_so_amocrm_retries(client, fake, monkeypatch):
    """Secrets Manager unreachable is passing: a retry is what is wanted (not the 200 of an
    unconfigured secret)."""
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "secretsmanager:amocrm-integration/prod/webhook#AMO_WEBHOOK_SECRET")
    response = deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL))
    assert response.status_code == 503
    assert not [r for r in AmoActivityLog.scan() if r.event_type == "webhook.unauthenticated"]


def test_without_a_secret_a_delivery_is_counted_for_the_alarm_and_its_body_not_kept(client, fake, monkeypatch, counted):
    monkeypatch.delenv("AMO_WEBHOOK_SECRET")
    response = deliver(client, wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL), f"{P}/webhook")
    assert response.status_code == 200 and "WebhookSecretMissing" in counted
    (record,) = [r for r in AmoActivityLog.scan() if r.event_type == "webhook.unauthenticated"]
    assert "17657" not in json.dumps(record.payload)


def test_a_large_delivery_s_batches_are_sent_at_once_and_only_a_refused_batch_comes_back(webhook_queue):
    """A 100-event delivery is ten SendMessageBatch round trips; sent one after another they were
    most of the warm answer's time (BENCHMARKS.md). Three batches here must be in flight together
    (the barrier breaks after 5 s otherwise), and a refused one returns its own bodies only."""
    import threading

    from botocore.exceptions import EndpointConnectionError

    from chalicelib.services import queues

    bodies = [json.dumps({"n": n}) for n in range(25)]
    together = threading.Barrier(3, timeout=5)

    def in_flight_together(model, params, **kwargs):
        if model.name == "SendMessageBatch":
            together.wait()
            if json.loads(params["Entries"][0]["MessageBody"])["n"] == 10:
                raise EndpointConnectionError(endpoint_url=webhook_queue)

    queues.sqs().meta.events.register("before-parameter-build.sqs.SendMessageBatch", in_flight_together)

    refused = queues.send_webhook_events(bodies)

    assert refused == bodies[10:20]
    assert sorted(message["n"] for message in queued(webhook_queue)) == [*range(10), *range(20, 25)]
