"""One process of the webhook benchmark at a CPU share (benchmarks/webhook_share.py starts it).

    python -m benchmarks.webhook_child setup            # outside the quota: queue, secrets, token
    python -m benchmarks.webhook_child cold             # import app, one delivery, as a cold Lambda
    python -m benchmarks.webhook_child warm N EVENTS    # N deliveries of EVENTS events each

The process calls the Chalice app as Lambda does (`app(event, context)` with an API Gateway
proxy event), not through Chalice's test client, so nothing but the service is imported before
the answer. AWS is the moto server the parent started (AWS_ENDPOINT_URL); the secret settings
are Secrets Manager references there, as deployed stages set them (chalicelib/secrets.py).
Prints one JSON line.
"""

from __future__ import annotations

import time

STARTED = time.time()  # as early as this process can tell; the parent also times the spawn

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import quote  # noqa: E402

ACCOUNT = 30896271
PIPELINE, FROM_STAGE, TO_STAGE = 3177727, 58141807, 58141811
SECRET_NAME = "bench-webhook-secrets"
WEBHOOK_SECRET = "bench-webhook-secret"
SECRET_VALUES = {
    "AMO_CLIENT_SECRET": "bench-client-secret",
    "AMO_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "MAIN_BACKEND_API_KEY": "bench-main-backend-key",
}


def secret_references() -> dict[str, str]:
    """The settings' environment as a deployed stage has it: references, not values."""
    return {name: f"secretsmanager:{SECRET_NAME}#{name}" for name in SECRET_VALUES}


def body(events: int, first_lead: int = 1) -> str:
    """A `leads[status]` delivery as amoCRM sends it: form-encoded PHP bracket keys."""
    pairs: list[tuple[str, object]] = []
    for n in range(events):
        p = f"leads[status][{n}]"
        lead = first_lead + n
        pairs += [
            (f"{p}[id]", lead),
            (f"{p}[name]", "Бронь квартиры"),
            (f"{p}[status_id]", TO_STAGE),
            (f"{p}[old_status_id]", FROM_STAGE),
            (f"{p}[price]", 4500),
            (f"{p}[responsible_user_id]", 8375357),
            (f"{p}[last_modified]", 1700000500 + lead),
            (f"{p}[modified_user_id]", 8375357),
            (f"{p}[created_user_id]", 8375357),
            (f"{p}[date_create]", 1690000000),
            (f"{p}[pipeline_id]", PIPELINE),
            (f"{p}[account_id]", ACCOUNT),
            (f"{p}[created_at]", 1690000000),
            (f"{p}[updated_at]", 1700000500 + lead),
        ]
    pairs += [
        ("account[subdomain]", "bench"),
        ("account[id]", ACCOUNT),
        ("account[_links][self]", "https://bench.amocrm.ru"),
    ]
    return "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in pairs)


class LambdaContext:
    """What Lambda hands the handler, as far as the service reads it."""

    function_name = "amocrm-integration-prod"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:amocrm-integration-prod"
    log_group_name = "/aws/lambda/amocrm-integration-prod"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 30

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def event(form: str) -> dict[str, Any]:
    """An API Gateway (REST, proxy) event for POST /integrations/amo-crm/webhook?secret=…."""
    path = "/integrations/amo-crm/webhook"
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/x-www-form-urlencoded", "Host": "api.example.com"},
        "multiValueHeaders": {"Content-Type": ["application/x-www-form-urlencoded"], "Host": ["api.example.com"]},
        "queryStringParameters": {"secret": WEBHOOK_SECRET},
        "multiValueQueryStringParameters": {"secret": [WEBHOOK_SECRET]},
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "POST",
            "path": f"/api{path}",
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": form,
        "isBase64Encoded": False,
    }


def deliver(app: Any, form: str) -> float:
    """One delivery through the handler; its milliseconds. Anything but an acknowledgement fails."""
    begin = time.perf_counter()
    answer = app(event(form), LambdaContext())
    took = (time.perf_counter() - begin) * 1000
    if answer.get("statusCode") != 200 or json.loads(answer["body"]).get("errors") != []:
        raise RuntimeError(f"not acknowledged: {answer}")
    return took


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def setup() -> dict:
    """Outside the quota: the webhook queue, the secret, a connected account and its stage."""
    import boto3

    from chalicelib.models import AmoStage, AmoToken

    boto3.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=json.dumps(SECRET_VALUES))
    queue = boto3.client("sqs").create_queue(QueueName=f"{os.environ['TABLE_PREFIX']}webhooks")["QueueUrl"]
    AmoToken(access_token="a", refresh_token="r", expires_at=int(time.time()) + 86400, account_id=ACCOUNT).save()
    AmoStage(pipeline_id=PIPELINE, id=TO_STAGE, name="Переговоры", mapped_status="IN_PROGRESS").save()
    return {"queue_url": queue}


def cold() -> dict:
    imported_from = time.perf_counter()
    import app  # what is measured: a cold Lambda's init

    imported = time.perf_counter()
    took = deliver(app.app, body(1))
    return {
        "started_at": STARTED,
        "answered_at": time.time(),
        "import_ms": round((imported - imported_from) * 1000, 1),
        "first_delivery_ms": round(took, 1),
        "cpu_seconds": round(cpu_seconds(), 3),
    }


class AwsWait:
    """Wall time spent waiting for AWS's answers (from a request's send to its response): on
    moto that is the emulator's time, which DynamoDB and SQS take a fraction of."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._sent = 0.0

    def watch(self, client: Any) -> None:
        client.meta.events.register("before-send", self._send)
        client.meta.events.register("needs-retry", self._answered)

    def _send(self, **_: Any) -> None:
        self._sent = time.perf_counter()

    def _answered(self, **_: Any) -> None:
        self.seconds += time.perf_counter() - self._sent


def _drain(sqs: Any, queue: str) -> None:
    """Take every message off the queue (PurgeQueue is allowed once a minute)."""
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        if not got:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        sqs.delete_message_batch(QueueUrl=queue, Entries=entries)


def warm(deliveries: int, events: int) -> dict:
    """The deliveries one after another; the queue is emptied between them (not timed) because
    moto's SendMessageBatch slows down as its queue grows (SQS's does not). The drain's own
    calls go through the same client, so the AWS wait is counted per delivery only."""
    import app
    from chalicelib.models import AmoActivityLog
    from chalicelib.services import queues

    deliver(app.app, body(events))  # the cold one, not counted
    sqs, queue = queues.sqs(), os.environ["WEBHOOK_QUEUE_URL"]
    waits = AwsWait()
    waits.watch(sqs)
    waits.watch(AmoActivityLog._get_connection().connection.client)
    latencies, aws_ms, cpu = [], [], 0.0
    for n in range(deliveries):
        _drain(sqs, queue)
        waits.seconds, cpu_before = 0.0, cpu_seconds()
        latencies.append(deliver(app.app, body(events, first_lead=1 + n * events)))
        cpu += cpu_seconds() - cpu_before
        aws_ms.append(waits.seconds * 1000)
    return {"latencies_ms": latencies, "aws_wait_ms": aws_ms, "cpu_seconds_per_delivery": round(cpu / deliveries, 4)}


def main() -> None:
    mode = sys.argv[1]
    if mode == "setup":
        result = setup()
    elif mode == "cold":
        result = cold()
    else:
        result = warm(int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
