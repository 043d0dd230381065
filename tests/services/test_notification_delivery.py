"""Delivering a notification to the Main Backend: no redirects, the outbound key, an HMAC
signature the Main Backend can check, https when deployed, and one bad message failing alone."""

import hashlib
import hmac
import json
import time

import boto3
import pytest

from chalicelib import settings
from chalicelib.models import Notification
from chalicelib.services import notifications, queue_batch

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

MAIN = "https://main.example.com/hooks/amocrm"


@pytest.fixture
def pending(monkeypatch):
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", MAIN)
    payload = {
        "event": "lead.status_changed",
        "eventId": "lead-status-1",
        "leadId": "l-1",
        "amoLeadId": 1,
        "status": "CLOSED",
        "previousStatus": "NEW",
        "pipelineId": 2,
        "stageId": 142,
        "occurredAt": "2026-11-29T10:00:00Z",
        "guest": "Олена",
    }
    Notification(event_id="lead-status-1", payload=payload, state="pending").save()
    return payload


def test_a_redirect_is_not_followed_and_the_key_never_reaches_its_target(amo, pending):
    amo.post(MAIN, status=307, headers={"Location": "https://elsewhere.example.net/steal"})
    amo.post("https://elsewhere.example.net/steal", status=200)

    assert notifications.deliver("lead-status-1") is False

    assert [c.request.url for c in amo.calls] == [MAIN]
    note = Notification.get("lead-status-1")
    assert note.state == "pending" and "redirect" in note.last_error


def test_the_outbound_key_is_sent_when_it_is_set_instead_of_the_inbound_one(amo, pending, monkeypatch):
    monkeypatch.setenv("MAIN_BACKEND_OUTBOUND_API_KEY", "outbound-key")
    amo.post(MAIN, status=200)
    assert notifications.deliver("lead-status-1") is True
    assert amo.calls[0].request.headers["X-API-Key"] == "outbound-key"
    assert amo.calls[0].request.headers["Idempotency-Key"] == "lead-status-1"


def test_without_an_outbound_key_today_s_key_is_sent(amo, pending):
    amo.post(MAIN, status=200)
    notifications.deliver("lead-status-1")
    assert amo.calls[0].request.headers["X-API-Key"] == settings.main_backend_api_key()


def test_a_signed_notification_verifies_over_the_exact_body_and_carries_its_time(amo, pending, monkeypatch):
    monkeypatch.setenv("MAIN_BACKEND_SIGNING_SECRET", "s3cr3t")
    amo.post(MAIN, status=200)

    notifications.deliver("lead-status-1")

    request = amo.calls[0].request
    assert main_backend_verifies(request.headers, request.body, b"s3cr3t")
    fields = dict(part.split("=", 1) for part in request.headers["X-Signature"].split(","))
    assert abs(int(fields["t"]) - time.time()) < 5
    assert json.loads(request.body) == pending


def main_backend_verifies(headers, body: bytes, secret: bytes) -> bool:
    """What docs/api.md tells the Main Backend to do with `X-Signature`."""
    fields = dict(part.split("=", 1) for part in headers["X-Signature"].split(","))
    signed = fields["t"].encode() + b"." + headers["Idempotency-Key"].encode() + b"." + body
    return hmac.compare_digest(fields.get("v2", ""), hmac.new(secret, signed, hashlib.sha256).hexdigest())


def test_a_signed_notification_replayed_under_another_idempotency_key_does_not_verify(amo, pending, monkeypatch):
    """Regression (issue 23): the key was not signed, so a replay within the 5 minutes the
    timestamp allows, under a fresh Idempotency-Key, verified and passed the duplicate check."""
    monkeypatch.setenv("MAIN_BACKEND_SIGNING_SECRET", "s3cr3t")
    amo.post(MAIN, status=200)
    notifications.deliver("lead-status-1")
    request = amo.calls[0].request

    replayed = {**request.headers, "Idempotency-Key": "lead-status-forged"}

    assert main_backend_verifies(request.headers, request.body, b"s3cr3t")
    assert not main_backend_verifies(replayed, request.body, b"s3cr3t")


def test_unsigned_when_no_signing_secret_is_set(amo, pending):
    amo.post(MAIN, status=200)
    notifications.deliver("lead-status-1")
    assert "X-Signature" not in amo.calls[0].request.headers


@pytest.mark.parametrize(
    "url, deployed, ok",
    [
        ("http://main.example.com/hook", True, False),
        ("https://main.example.com/hook", True, True),
        ("http://127.0.0.1:9000/hook", True, True),
        ("http://main.example.com/hook", False, True),
    ],
)
def test_deployed_notifications_go_over_https_only(monkeypatch, url, deployed, ok):
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", url)
    if deployed:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "amocrm-integration-prod")
    if ok:
        assert settings.main_backend_webhook_url() == url
    else:
        with pytest.raises(settings.ConfigError, match="https"):
            settings.main_backend_webhook_url()


@pytest.mark.parametrize(
    "url, ok",
    [("http://example.amocrm.ru", False), ("https://example.amocrm.ru", True), ("http://127.0.0.1:8790", True)],
)
def test_amocrm_is_reached_over_https_except_a_local_sandbox(monkeypatch, url, ok):
    monkeypatch.setenv("AMO_BASE_URL", url)
    if ok:
        assert settings.amo_base_url() == url
    else:
        with pytest.raises(settings.ConfigError, match="https"):
            settings.amo_base_url()


def test_one_malformed_message_fails_alone_and_its_neighbours_are_delivered_or_backed_off(amo, pending, monkeypatch):
    queue = boto3.client("sqs").create_queue(QueueName="amocrm-notifications")["QueueUrl"]
    monkeypatch.setenv("NOTIFY_QUEUE_URL", queue)
    Notification(event_id="lead-status-2", payload={**pending, "eventId": "lead-status-2"}, state="pending").save()
    amo.post(MAIN, status=200)
    amo.post(MAIN, status=503)
    sent = boto3.client("sqs").send_message(QueueUrl=queue, MessageBody="{}")
    receipt = boto3.client("sqs").receive_message(QueueUrl=queue)["Messages"][0]["ReceiptHandle"]
    records = [
        {"messageId": "a", "body": json.dumps({"eventId": "lead-status-1"}), "receiptHandle": receipt},
        {"messageId": "b", "body": "not json", "receiptHandle": receipt},
        {"messageId": "c", "body": json.dumps({"eventId": "lead-status-2"}), "receiptHandle": receipt},
    ]

    result = queue_batch.run(records, notifications.handle_message, "notification")

    assert result == {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}
    assert Notification.get("lead-status-1").state == "sent"
    assert Notification.get("lead-status-2").last_error == "Main Backend answered 503"
    assert sent["MessageId"]


def test_only_a_pending_notification_is_marked_dead(pending):
    """The sweeper may deliver a notification between the queue's last failure and its death:
    what was sent stays sent, and an id with no notification creates none."""
    Notification(event_id="lead-status-sent", payload=pending, state="sent").save()

    for event_id in ("lead-status-1", "lead-status-sent", "lead-status-missing"):
        notifications.mark_dead(event_id)

    assert Notification.get("lead-status-1").state == "dead"
    assert Notification.get("lead-status-sent").state == "sent"
    assert Notification.count("lead-status-missing") == 0


BAD_MAIN = "http://notify:pa55word@main.example.com/hooks/amocrm?token=t0ken-s3cret"


def test_a_notification_held_by_an_invalid_url_keeps_its_attempts_and_goes_out_once_it_is_fixed(
    amo, pending, monkeypatch, caplog
):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "amocrm-integration-prod")
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", BAD_MAIN)
    message = queue_batch.Message("m-1", json.dumps({"eventId": "lead-status-1"}), "r", receive_count=20)

    notifications.handle_message(message)  # no raise: SQS drops it; the sweeper owns the item now
    held = notifications.deliver_pending()

    note = Notification.get("lead-status-1")
    assert note.state == "pending" and not note.attempts  # not spent towards `dead`
    assert held["delivered"] == 0 and "https" in held["held"]
    assert "pa55word" not in caplog.text + note.last_error + held["held"]
    assert "t0ken-s3cret" not in caplog.text + note.last_error + held["held"]
    assert len(amo.calls) == 0

    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", MAIN)
    amo.post(MAIN, status=200)
    assert notifications.deliver_pending() == {"pending": 1, "delivered": 1}
    assert Notification.get("lead-status-1").state == "sent"


@pytest.mark.parametrize(
    "url",
    [
        BAD_MAIN,
        "ftp://notify:pa55word@main.example.com/?token=t0ken-s3cret",
        "http://notify:pa55word@[::1?t0ken-s3cret",
    ],
)
def test_an_invalid_url_is_named_but_its_credentials_never_shown(monkeypatch, url):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "amocrm-integration-prod")
    monkeypatch.setenv("MAIN_BACKEND_WEBHOOK_URL", url)
    with pytest.raises(settings.ConfigError, match="MAIN_BACKEND_WEBHOOK_URL") as raised:
        settings.main_backend_webhook_url()
    assert "pa55word" not in str(raised.value) and "t0ken-s3cret" not in str(raised.value)
    assert any("MAIN_BACKEND_WEBHOOK_URL" in problem for problem in settings.validate_all())
    assert not [p for p in settings.validate_all() if "pa55word" in p or "t0ken-s3cret" in p]
