"""Webhook acknowledgement through the route, in-process (chalice test client, moto).

Queued path: the route checks the secret and account, records the delivery and queues the
events. Inline path (chalice local): it applies them before answering. Every delivery is a
real-shaped form body with a `leads[status]` event and an `account` block.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_PREFIX": "bench-wh-",
        "AMO_BASE_URL": "https://bench.amocrm.ru",
        "AMO_CLIENT_ID": "id",
        "AMO_CLIENT_SECRET": "secret",
        "AMO_REDIRECT_URI": "https://svc.example.com/callback",
        "MAIN_BACKEND_API_KEY": "k",
        "AMO_WEBHOOK_SECRET": "bench-secret",
    }
)
for _var in ("AWS_ENDPOINT_URL", "MAIN_BACKEND_WEBHOOK_URL", "WEBHOOK_QUEUE_URL", "NOTIFY_QUEUE_URL"):
    os.environ.pop(_var, None)

from urllib.parse import quote  # noqa: E402

ACCOUNT = 30896271
PIPELINE, FROM_STAGE, TO_STAGE = 3177727, 58141807, 58141811


def _body(lead_id: int, updated_at: int) -> str:
    p = "leads[status][0]"
    pairs = [
        (f"{p}[id]", lead_id),
        (f"{p}[name]", "Бронь квартиры"),
        (f"{p}[status_id]", TO_STAGE),
        (f"{p}[old_status_id]", FROM_STAGE),
        (f"{p}[price]", 4500),
        (f"{p}[responsible_user_id]", 8375357),
        (f"{p}[last_modified]", updated_at),
        (f"{p}[modified_user_id]", 8375357),
        (f"{p}[created_user_id]", 8375357),
        (f"{p}[date_create]", 1690000000),
        (f"{p}[pipeline_id]", PIPELINE),
        (f"{p}[account_id]", ACCOUNT),
        (f"{p}[created_at]", 1690000000),
        (f"{p}[updated_at]", updated_at),
        ("account[subdomain]", "bench"),
        ("account[id]", ACCOUNT),
        ("account[_links][self]", "https://bench.amocrm.ru"),
    ]
    return "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in pairs)


def _measure(deliveries: int, queued: bool) -> dict:
    import logging

    import boto3
    import responses
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib.models import ALL_MODELS, AmoStage, AmoToken, Lead
    from chalicelib.services import leads, queues

    logging.getLogger().setLevel(logging.WARNING)

    with mock_aws(), responses.RequestsMock(assert_all_requests_are_fired=False) as amo:
        for model in ALL_MODELS:
            model.create_table(wait=True)
        AmoToken(access_token="a", refresh_token="r", expires_at=int(time.time()) + 86400, account_id=ACCOUNT).save()
        AmoStage(pipeline_id=PIPELINE, id=TO_STAGE, name="Переговоры", mapped_status="IN_PROGRESS").save()
        with Lead.batch_write() as batch:
            for lead_id in range(deliveries):
                batch.save(
                    Lead(
                        id=leads.lead_id_for(lead_id + 1),
                        amo_lead_id=lead_id + 1,
                        status="NEW",
                        amo_pipeline_id=PIPELINE,
                        amo_status_id=FROM_STAGE,
                        amo_updated_at=1700000000,
                    )
                )
        if queued:
            os.environ["WEBHOOK_QUEUE_URL"] = boto3.client("sqs").create_queue(QueueName="bench-webhooks")["QueueUrl"]
        calls: list[str] = []
        clients = {id(m._get_connection().connection.client): m._get_connection().connection.client for m in ALL_MODELS}
        clients[id(queues.sqs())] = queues.sqs()
        for client in clients.values():
            client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
        latencies = []
        with Client(app) as test_client:
            started = time.perf_counter()
            for lead_id in range(deliveries):
                body = _body(lead_id + 1, 1700000500 + lead_id)
                begin = time.perf_counter()
                response = test_client.http.post(
                    "/integrations/amo-crm/webhook?secret=bench-secret",
                    body=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                latencies.append((time.perf_counter() - begin) * 1000)
                assert response.status_code == 200 and response.json_body["errors"] == [], response.body
            elapsed = time.perf_counter() - started
        os.environ.pop("WEBHOOK_QUEUE_URL", None)
        latencies.sort()
        return {
            "path": "queued" if queued else "inline",
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
            "per_second": round(deliveries / elapsed, 1),
            "aws_calls_per_delivery": round(len(calls) / deliveries, 2),
            "amo_calls": len(amo.calls),
        }


def run(deliveries: int = 1000) -> list[dict]:
    return [_measure(deliveries, queued=True), _measure(deliveries, queued=False)]


if __name__ == "__main__":
    for row in run():
        print(row)
