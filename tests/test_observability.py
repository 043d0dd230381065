"""Structured logs and metrics: every line of one webhook's journey (route, queue consumer, Main
Backend notification) carries one correlation id; queue consumers and schedules log the id they
were given, worker threads keep it, an unhandled error is one JSON line, and the metrics come
out as CloudWatch embedded metric format."""

import json
import logging
import threading

import boto3
import pytest

from chalicelib import logs, metrics
from chalicelib.amo.pages import Page, PageFetcher
from tests import webhook_bodies as wb
from tests.conftest import WEBHOOK_PATH
from tests.services.test_webhooks import INITIAL, NEGOTIATION, SALES, main_backend_calls, seed_lead
from tests.services.test_webhooks import fake as fake  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

log = logging.getLogger("tests.observability")


@pytest.fixture(autouse=True)
def json_logs_on_stdout():
    """As app.py configures them (another test, the CLI's, may have sent them elsewhere)."""
    logs.configure(logging.INFO)


def lines(capsys) -> list[dict]:
    """Every JSON log line written to stdout so far (EMF documents included)."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def log_lines(capsys) -> list[dict]:
    return [line for line in lines(capsys) if "_aws" not in line]


def lambda_record(message: dict, number: int) -> dict:
    """An SQS message as Lambda hands it to the function (attribute keys in camel case)."""
    attributes = {
        name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": f"m-{number}",
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def received(queue_url: str) -> list[dict]:
    return (
        boto3.client("sqs")
        .receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


@pytest.fixture
def queues(monkeypatch):
    sqs = boto3.client("sqs")
    urls = {name: sqs.create_queue(QueueName=f"amocrm-{name}")["QueueUrl"] for name in ("webhooks", "notifications")}
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", urls["webhooks"])
    monkeypatch.setenv("NOTIFY_QUEUE_URL", urls["notifications"])
    return urls


def test_every_line_of_one_webhooks_journey_carries_the_callers_request_id(client, fake, amo, queues, capsys):  # noqa: F811
    # GIVEN a lead whose stage change amoCRM reports, with the caller's X-Request-Id
    seed_lead(fake)
    capsys.readouterr()
    response = client.http.post(
        WEBHOOK_PATH,
        body=wb.encode(wb.lead_status(17657, NEGOTIATION, SALES, 1700000500, INITIAL) + wb.account()),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Request-Id": "journey-1"},
    )
    assert response.json_body["processed"] == 1

    # WHEN the webhook consumer and then the notification consumer run on what was queued
    webhook_messages = received(queues["webhooks"])
    assert webhook_messages[0]["MessageAttributes"]["correlation_id"]["StringValue"] == "journey-1"
    client.lambda_.invoke(
        "process-webhooks", {"Records": [lambda_record(m, i) for i, m in enumerate(webhook_messages)]}
    )
    notify_messages = received(queues["notifications"])
    result = client.lambda_.invoke(
        "deliver-notifications", {"Records": [lambda_record(m, i) for i, m in enumerate(notify_messages)]}
    )

    # THEN the Main Backend got it, and every log line from the route to the delivery has the id
    assert result.payload == {"batchItemFailures": []} and len(main_backend_calls(amo)) == 1
    journey = log_lines(capsys)
    assert any("delivered" in str(line["message"]) for line in journey)
    assert journey and {line["correlation_id"] for line in journey} == {"journey-1"}


def test_a_queue_consumer_logs_each_records_own_id_and_a_batch_without_one_gets_the_lambda_request_id(client, capsys):
    records = [
        {
            "messageId": f"m-{i}",
            "receiptHandle": f"r-{i}",
            "body": "{poison",
            "attributes": {},
            "messageAttributes": {"correlation_id": {"stringValue": cid, "dataType": "String"}} if cid else {},
        }
        for i, cid in enumerate(["first-id", "second-id", None])
    ]
    capsys.readouterr()

    client.lambda_.invoke("process-webhooks", {"Records": records})

    failures = {
        line["message"].split()[2]: line["correlation_id"]
        for line in log_lines(capsys)
        if "failed" in str(line["message"])
    }
    assert failures["m-0"] == "first-id" and failures["m-1"] == "second-id"
    assert failures["m-2"] not in ("first-id", "second-id", logs.NO_ID)


def test_a_schedule_logs_under_its_event_id_and_an_unhandled_error_is_one_json_line(client, capsys):
    # GIVEN a connection amoCRM no longer accepts, so the scheduled sync fails (not connected at
    # all is a state the schedule skips quietly: tests/services/test_not_connected.py)
    from tests.fixtures import store_tokens

    token = store_tokens()
    token.update(actions=[type(token).needs_reauth.set(True)])
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    event["id"] = "schedule-event-7"
    capsys.readouterr()

    with pytest.raises(Exception, match="re-authorization"):
        client.lambda_.invoke("incremental-sync", event)

    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["correlation_id"] == "schedule-event-7"
    assert errors[0]["exception_name"] == "ReauthorizationRequired"
    assert "Traceback" in errors[0]["exception"] and errors[0]["cold_start"] in (True, False)


def test_a_route_error_is_logged_by_chalice_as_one_json_line_with_the_request_id(client, monkeypatch, capsys):
    from chalicelib.services import connection

    monkeypatch.setattr(connection, "get_connection_status", lambda amo: 1 / 0)
    capsys.readouterr()
    response = client.http.get(
        "/integrations/amo-crm/test", headers={"X-API-Key": "main-backend-key", "X-Request-Id": "req-500"}
    )
    assert response.status_code == 500
    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert [(e["correlation_id"], e["exception_name"]) for e in errors] == [("req-500", "ZeroDivisionError")]


def test_page_fetcher_threads_and_the_sync_pool_keep_the_correlation_id(capsys):
    def fetch(number: int) -> Page:
        log.info("fetching page %d on %s", number, threading.current_thread().name)
        return Page(number, [{"id": number}], has_next=number < 3)

    with logs.bound("sync-job-9"):
        pages = list(PageFetcher(fetch, max_window=3, latency=lambda: 1.0).pages())
        with logs.ThreadPool(max_workers=2) as pool:
            pool.submit(log.info, "written on the pool").result()

    assert [p.number for p in pages] == [1, 2, 3]
    threaded = log_lines(capsys)
    assert any(line["message"] == "written on the pool" for line in threaded)
    assert sum("amo-page-" in line["message"] for line in threaded) >= 3  # speculative pages too
    assert {line["correlation_id"] for line in threaded} == {"sync-job-9"}


def test_metrics_are_written_as_embedded_metric_format_only_when_deployed(client, monkeypatch, capsys):
    metrics.flush(emit=False)
    metrics.count("AmoRequests")
    metrics.count("AmoRequests", 2)
    metrics.count("WebhookEvents", Outcome="applied")
    metrics.measure("SyncLag", 42.0, "Seconds")
    documents = metrics.flush(emit=True)

    by_name = {m["Name"]: (d, m["Unit"]) for d in documents for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    plain, unit = by_name["AmoRequests"]
    assert (plain["AmoRequests"], unit, plain["SyncLag"]) == ([3.0], "Count", [42.0])
    assert plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert by_name["WebhookEvents"][0]["Outcome"] == "applied"
    assert [line for line in lines(capsys) if "_aws" in line] == documents

    metrics.count("AmoRequests")  # a local invocation: recorded, then dropped
    client.lambda_.invoke(
        "notification-sweeper",
        client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]),
    )
    assert metrics.flush(emit=False) == [] and not [line for line in lines(capsys) if "_aws" in line]


# -- where the metrics are counted ----------------------------------------------------------------


def totals(documents: list[dict]) -> dict[str, float]:
    found: dict[str, float] = {}
    for document in documents:
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            found[metric["Name"]] = found.get(metric["Name"], 0) + sum(document[metric["Name"]])
    return found


def test_the_amocrm_transport_counts_requests_429s_retries_and_blocks(amo):
    from chalicelib.amo.client import AmoClient
    from chalicelib.amo.errors import AmoBlocked
    from tests.amo.test_client import FixedToken, NoLimit
    from tests.fixtures import HAL, HOST, account_body

    gateway = AmoClient(HOST, tokens=FixedToken(), limiter=NoLimit(), sleep=lambda s: None, rand=lambda: 0.5)
    amo.get(f"{HOST}/api/v4/account", status=429, body="")
    amo.get(f"{HOST}/api/v4/account", json=account_body(), headers=HAL)
    amo.get(f"{HOST}/api/v4/users", status=403, body="<html>blocked</html>", content_type="text/html")
    metrics.flush(emit=False)

    gateway.get("/api/v4/account")
    with pytest.raises(AmoBlocked):
        gateway.get("/api/v4/users")

    assert totals(metrics.flush(emit=False)) == {
        "AmoRequests": 3,
        "AmoRateLimited": 1,
        "AmoRetries": 1,
        "AmoBlocked": 1,
    }


def test_a_refused_refresh_token_counts_a_failure_and_needs_reauthorization(amo):
    from chalicelib import wiring
    from chalicelib.services.errors import ReauthorizationRequired
    from tests import fixtures

    fixtures.store_tokens("access-1", "refresh-spent", expires_in=-10)
    fixtures.refuse_refresh(amo)
    metrics.flush(emit=False)
    for _ in range(2):
        with pytest.raises(ReauthorizationRequired):
            wiring.token_store().get_access_token()
    # the refused refresh only: the token names no shared API host to look a rename up on
    assert totals(metrics.flush(emit=False)) == {"AmoRequests": 1, "TokenRefreshFailures": 1, "NeedsReauthorization": 2}


def test_sync_lag_is_the_age_of_the_oldest_complete_run_and_unknown_before_every_entity_ran():
    from chalicelib.models import SyncState
    from chalicelib.services.sync import state

    for entity, started in (("leads", 1000.0), ("contacts", 1600.0)):
        SyncState(entity=entity, last_success_started_at=started).save()
    metrics.flush(emit=False)
    assert state.report_lag(now=5000.0) is None
    SyncState(entity="tasks", last_success_started_at=4000.0).save()
    assert state.report_lag(now=5000.0) == 4000.0
    assert totals(metrics.flush(emit=False)) == {"SyncLag": 4000.0}


def test_the_days_a_long_lived_token_has_left_are_reported(monkeypatch):
    import base64

    from chalicelib.services import token_expiry

    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1_000_000 + 10 * 86400}).encode()).decode().rstrip("=")
    monkeypatch.setenv("AMO_LONG_LIVED_TOKEN", f"eyJhbGciOiJIUzI1NiJ9.{claims}.signature")
    metrics.flush(emit=False)
    assert token_expiry.report(now=1_000_000) == 10.0
    assert totals(metrics.flush(emit=False)) == {"LongLivedTokenDaysLeft": 10.0, "LongLivedTokenExpiringSoon": 1}
    monkeypatch.setenv("AMO_LONG_LIVED_TOKEN", "not-a-jwt")
    assert token_expiry.report() is None


def test_a_cold_start_is_counted_once_per_container_by_function(monkeypatch):
    from chalicelib import invocation

    flushed: list[list[dict]] = []
    flush = metrics.flush
    monkeypatch.setattr(metrics, "flush", lambda emit: flushed.append(flush(emit=False)))
    monkeypatch.setitem(invocation._state, "cold", True)

    class Context:
        function_name = "amocrm-integration-prod-refresh-token"
        aws_request_id = "r-1"

    class Event:
        context = Context()

    for _ in range(2):
        invocation.around(Event(), lambda event: None)

    first, second = flushed
    assert [(d["ColdStart"], d["function_name"]) for d in first] == [([1.0], "amocrm-integration-prod-refresh-token")]
    assert second == []


def test_levels_are_written_as_lambda_names_them_so_its_level_filter_keeps_them(capsys, caplog):
    log.warning("a warning")
    log.critical("a fatal one")
    written = {line["message"]: line["level"] for line in log_lines(capsys)}
    assert (written["a warning"], written["a fatal one"]) == ("WARN", "FATAL")
    assert [r.levelname for r in caplog.records[-2:]] == ["WARNING", "CRITICAL"]  # other handlers see Python's
