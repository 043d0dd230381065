"""An unpaid amoCRM account (402 "Аккаунт не оплачен", reference §3.5, §13) is a state of its own:
the scheduled sync stops until a probe finds it paid, `GET test` and `status` say so, routes
answer a clear 402, and webhook events wait in the queue instead of dead-lettering."""

import json
import re

import boto3
import pytest

from chalicelib import metrics, wiring
from chalicelib.models import Lead
from chalicelib.services import account_payment, admin, connection, leads, sync
from tests import fixtures
from tests import webhook_bodies as wb
from tests.conftest import API_KEY
from tests.fixtures import HAL, HOST, PROBLEM, lead, store_tokens
from tests.services.test_webhooks import deliver, sqs_event

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

UNPAID = {
    "title": "Payment Required",
    "type": "https://httpstatus.es/402",
    "status": 402,
    "detail": "Аккаунт не оплачен",
}


class Account:
    """amoCRM's API for one account that is, or is not, paid: while `unpaid`, every API path
    answers 402 problem+json; otherwise empty lists (204), the pipelines, the account, lead 17657."""

    def __init__(self, mock):
        self.unpaid = True
        self.paths: list[str] = []
        for method in ("GET", "POST", "PATCH"):
            mock.add_callback(method, re.compile(rf"{re.escape(HOST)}/api/v4/.*"), self.answer)

    def answer(self, request):
        path = request.path_url.split("?")[0]
        self.paths.append(f"{request.method} {path}")
        if self.unpaid:
            return 402, PROBLEM, json.dumps(UNPAID)
        if path == "/api/v4/leads/pipelines":
            return 200, HAL, json.dumps(fixtures.pipelines_body())
        if path == "/api/v4/account":
            return 200, HAL, json.dumps(fixtures.account_body())
        if path == "/api/v4/leads/17657":
            return 200, HAL, json.dumps(lead(17657, updated_at=1700000600))
        return 204, {}, ""


@pytest.fixture
def account(amo):
    store_tokens()
    return Account(amo)


@pytest.fixture
def counted():
    metrics.flush(emit=False)

    def totals() -> dict[str, float]:
        found: dict[str, float] = {}
        for document in metrics.flush(emit=False):
            for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found[metric["Name"]] = found.get(metric["Name"], 0) + sum(document[metric["Name"]])
        return found

    return totals


def test_the_scheduled_sync_stops_on_402_and_probes_once_per_run_until_the_account_is_paid(account, counted):
    """Regression: a 402 was a generic error, so every scheduled run re-tried the whole sync."""
    assert sync.scheduled_sync(wiring.amo()) == {"skipped": True, "reason": "account not paid"}
    assert account_payment.unpaid_since() is not None and counted()["AmoAccountUnpaid"] >= 1

    account.paths.clear()
    assert sync.scheduled_sync(wiring.amo()) == {"skipped": True, "reason": "account not paid"}
    assert account.paths == ["GET /api/v4/leads"]  # one narrow probe, nothing else
    assert counted()["AmoAccountUnpaid"] == 1  # keeps the alarm on while unpaid

    account.unpaid = False
    result = sync.scheduled_sync(wiring.amo())
    assert account_payment.unpaid_since() is None
    assert {"pipelines", "leads", "contacts", "tasks"} <= set(result)


def test_get_test_and_status_say_the_account_is_not_paid_and_clear_once_it_is(account):
    shown = connection.get_connection_status(wiring.amo())
    assert shown["connected"] is False and shown["accountUnpaid"] is True
    assert "not paid" in shown["error"] and "paused" in shown["payment"]
    assert admin.status(wiring.amo)["connection"]["accountUnpaid"] is True

    account.unpaid = False
    shown = connection.get_connection_status(wiring.amo())
    assert shown["connected"] is True and "accountUnpaid" not in shown
    assert account_payment.unpaid_since() is None


def test_a_route_answers_402_that_says_the_account_is_not_paid_not_a_502(client, account):
    response = client.http.post(
        "/integrations/amo-crm/contacts",
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        body=json.dumps({"name": "Анна Петрова", "phone": "+79990001122"}),
    )
    assert response.status_code == 402
    assert "not paid" in response.json_body["Message"] and "Traceback" not in response.body.decode()
    assert account_payment.unpaid_since() is not None


@pytest.fixture
def webhook_queue(monkeypatch):
    url = boto3.client("sqs").create_queue(QueueName="amocrm-webhooks")["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", url)
    return url


def waiting(queue_url) -> tuple[int, int]:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesDelayed"])


def test_webhook_events_are_held_in_the_queue_while_unpaid_never_dead_lettered(client, account, webhook_queue):
    """Regression: a 402 failed the message on every receive, so it dead-lettered."""
    deliver(client, wb.lead_event("update", 17657))
    (message,) = boto3.client("sqs").receive_message(QueueUrl=webhook_queue)["Messages"]

    first = client.lambda_.invoke("process-webhooks", sqs_event([message["Body"]])).payload

    assert first == {"batchItemFailures": []}  # not a failure: no receive counts towards the DLQ
    assert waiting(webhook_queue) == (0, 1)  # queued again, offered in 15 minutes
    assert account_payment.unpaid_since() is not None
    account.paths.clear()
    again = client.lambda_.invoke("process-webhooks", sqs_event([message["Body"]])).payload
    assert again == {"batchItemFailures": []} and account.paths == []  # held without asking amoCRM

    account.unpaid = False
    assert sync.scheduled_sync(wiring.amo())["leads"]["errors"] == []  # its probe finds it paid
    applied = client.lambda_.invoke("process-webhooks", sqs_event([message["Body"]])).payload
    assert applied == {"batchItemFailures": []}
    assert Lead.get(leads.lead_id_for(17657)).amo_lead_id == 17657
