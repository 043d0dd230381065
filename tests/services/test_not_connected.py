"""A stage that is not connected to amoCRM yet is a state, not an error: the schedules skip
quietly, each counting one `NotConnected` (the stage-not-connected alarm reads it), and no
invocation fails (Lambda's Errors, and its retries, stay out of it)."""

import pytest

from chalicelib import metrics, wiring
from chalicelib.services import sync, token_expiry

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def counted() -> dict[str, float]:
    totals: dict[str, float] = {}
    for document in metrics.flush(emit=False):
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(document[metric["Name"]])
    return totals


def test_the_scheduled_sync_of_a_stage_not_connected_skips_with_one_metric_and_no_error(caplog):
    metrics.flush(emit=False)
    result = sync.scheduled_sync(wiring.amo())
    assert result == {"skipped": True, "reason": "not connected"}
    assert counted() == {"NotConnected": 1}
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_the_token_refresh_schedule_of_a_stage_not_connected_skips_with_one_metric():
    metrics.flush(emit=False)
    result = token_expiry.keep_alive(wiring.token_store())
    assert result["refreshed"] is False and "not connected" in result["reason"]
    assert counted() == {"NotConnected": 1}


def test_the_schedules_handlers_return_normally_while_not_connected(client):
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    assert client.lambda_.invoke("incremental-sync", event).payload == {"skipped": True, "reason": "not connected"}
    assert client.lambda_.invoke("refresh-token", event).payload["refreshed"] is False
