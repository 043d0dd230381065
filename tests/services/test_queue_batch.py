"""The one partial-batch runner every SQS consumer uses: a bad record fails alone."""

import json

import pytest

from chalicelib.services.queue_batch import MalformedMessage, Message, run


def record(message_id, body, receives="1"):
    return {
        "messageId": message_id,
        "body": body,
        "receiptHandle": f"rh-{message_id}",
        "attributes": {"ApproximateReceiveCount": receives},
    }


def test_only_the_records_that_fail_are_reported_back():
    handled = []

    def handle(message):
        data = message.json()
        if data.get("boom"):
            raise RuntimeError("secret detail that must not be logged")
        handled.append(data["n"])

    result = run(
        [
            record("a", json.dumps({"n": 1})),
            record("b", "{not json"),
            record("c", json.dumps({"boom": 1})),
            record("d", json.dumps([1, 2])),
            record("e", json.dumps({"n": 5})),
        ],
        handle,
        "test",
    )

    assert handled == [1, 5]
    assert result == {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}, {"itemIdentifier": "d"}]}


def test_a_failure_is_logged_by_type_not_by_its_text(caplog):
    run([record("x", "{}")], lambda m: (_ for _ in ()).throw(RuntimeError("token=abc")), "test")
    assert "internal error (RuntimeError)" in caplog.text and "token=abc" not in caplog.text


def test_a_message_knows_how_often_it_was_received():
    assert Message.from_record(record("a", "{}", receives="7")).receive_count == 7
    assert Message.from_record({"messageId": "b", "body": "{}"}).receive_count == 1
    assert Message.from_record(record("c", "{}", receives="many")).receive_count == 1


@pytest.mark.parametrize("body", ["", "[]", "null", "3"])
def test_bodies_that_are_not_json_objects_are_malformed(body):
    with pytest.raises(MalformedMessage):
        Message.from_record(record("a", body)).json()


def test_a_batch_in_which_every_record_failed_is_counted_as_a_failed_batch_and_still_reported_per_record():
    from chalicelib import metrics

    def fail(message):
        raise RuntimeError("down")

    metrics.flush(emit=False)
    result = run([record("a", "{}"), record("b", "{}")], fail, "webhook")
    run([record("c", "{}"), record("d", json.dumps({"n": 1}))], lambda m: m.json()["n"], "webhook")  # one failed

    assert result == {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}
    (document,) = metrics.flush(emit=False)
    assert (document["QueueBatchFailed"], document["Queue"]) == ([1.0], "webhook")
