"""Webhook redelivery on amoCRM's schedule (reference §9.5, §13): an answer outside 100–299, or
none within the timeout, is retried after 5 and 15 min; after a 499 or 5xx also after 15 min
and 1 h. `webhook_retry_scale` compresses the clock; every attempt shows in the deliveries."""

import time

import pytest

from sandbox.webhooks import next_delay

SCALE = 0.0005  # 5 min → 0.15 s, 15 min → 0.45 s, 1 h → 1.8 s


@pytest.fixture
def hooked(api, control, receiver):
    assert control("/config", {"webhook_retry_scale": SCALE}).json()["webhook_retry_scale"] == SCALE
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    return receiver


def attempts(control, receiver):
    deliveries = control("/webhook-deliveries", method="GET").json()["deliveries"]
    return [d for d in deliveries if d["destination"] == receiver.url]


def test_the_schedule():
    assert [next_delay(n, 503, slow=False) for n in (1, 2, 3, 4, 5)] == [300, 900, 900, 3600, None]
    assert [next_delay(n, 499, slow=False) for n in (3, 4)] == [900, 3600]
    for status in (302, 404, 0, "failed: refused"):
        assert [next_delay(n, status, slow=False) for n in (1, 2, 3)] == [300, 900, None]
    assert next_delay(3, 200, slow=True) is None and next_delay(3, 500, slow=True) is None


def test_a_receiver_that_fails_first_gets_the_same_body_again_and_succeeds(control, hooked):
    hooked.statuses = [500]
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    first, second = attempts(control, hooked)
    assert (first["status"], first["valid"], first["attempt"]) == (500, False, 1)
    assert first["next_attempt_in"] == pytest.approx(300 * SCALE)
    assert (second["status"], second["valid"], second["attempt"], second["next_attempt_in"]) == (200, True, 2, None)
    assert second["delivery"] == first["delivery"] and second["body"] == first["body"]
    assert second["at"] - first["at"] >= 300 * SCALE * 0.9
    assert hooked.bodies[0][1] == hooked.bodies[1][1]


def test_a_5xx_is_tried_five_times_in_all(control, hooked):
    hooked.status = 503
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    tried = attempts(control, hooked)
    assert [d["attempt"] for d in tried] == [1, 2, 3, 4, 5]
    assert [d["next_attempt_in"] for d in tried] == pytest.approx([s * SCALE for s in (300, 900, 900, 3600)] + [None])
    gaps = [b["at"] - a["at"] for a, b in zip(tried, tried[1:], strict=False)]
    assert gaps[3] > gaps[2] > gaps[0]


def test_a_4xx_is_tried_three_times(control, hooked):
    hooked.status = 404
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    assert [(d["attempt"], d["valid"]) for d in attempts(control, hooked)] == [(1, False), (2, False), (3, False)]


def test_a_slow_200_counts_as_no_answer_and_is_tried_three_times(control, hooked):
    control("/config", {"webhook_timeout": 0.1})
    hooked.delay = 0.2
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    tried = attempts(control, hooked)
    assert [(d["status"], d["valid"]) for d in tried] == [(200, False)] * 3


def test_a_deleted_subscription_gets_no_more_retries(sandbox, api, control, hooked):
    control("/config", {"webhook_retry_scale": 0.005})  # 1.5 s before the retry
    hooked.status = 500
    lead_id = next(i for i, lead in sorted(sandbox.leads.items()) if lead["status_id"] != 142)
    api("PATCH", f"/api/v4/leads/{lead_id}", json={"status_id": 142})
    deadline = time.monotonic() + 5
    while not attempts(control, hooked) and time.monotonic() < deadline:
        time.sleep(0.05)
    api("DELETE", "/api/v4/webhooks", json={"destination": hooked.url})
    control("/flush-webhooks")  # waits past the retry's time
    assert len(attempts(control, hooked)) == 1 and len(hooked.bodies) == 1


def test_retries_take_real_minutes_by_default(api, control, receiver):
    assert control("/config", method="GET").json()["webhook_retry_scale"] == 1.0
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    receiver.status = 500
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    [only] = attempts(control, receiver)
    assert only["next_attempt_in"] == 300
    assert control("/config", {"webhook_retry_scale": -1}).status_code == 400
