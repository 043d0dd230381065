"""One small, complete world for a flow to run in: the app in this process (chalice's test
client and its Lambda invoker), a fresh moto with every table and the three queues, and a
sandbox in a thread as amoCRM and as the Main Backend's stand-in, connected through the real
install callback. Built anew for every run of the matrix, so one run's fault never leaks
into the next; the sandbox's seed is the same every time, so every run meets the same data.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import pytest
from chalice.local import LambdaContext
from chalice.test import Client
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends

from app import app
from chalicelib import memo
from chalicelib.amo.budget import RateLimiter
from chalicelib.amo.client import AmoClient
from sandbox.seed import SeedSize
from sandbox.server import start_in_thread
from sandbox.state import Config, Sandbox
from scripts.local_stack import http
from tests.conftest import API_KEY, MOTO_ACCOUNT, WEBHOOK_SECRET, serialise_moto

SEED = SeedSize(pipelines=1, users=2, contacts=4, leads=4, tasks=2, seed=7)
PREFIX = "/integrations/amo-crm"
QUEUES = {"WEBHOOK_QUEUE_URL": "webhooks", "NOTIFY_QUEUE_URL": "notifications", "SYNC_QUEUE_URL": "sync"}
CALLBACK = "https://service.example.com/integrations/amo-crm/callback"
NOT_DATA = frozenset({"lock", "dispatcher", "config"})  # the sandbox's machinery, not its account


def _no_sleep(seconds: float) -> None:
    return None


class _SkippedTime:
    """The limiter's clock jumps over its pauses instead of waiting them out (a 429 cools down
    for a second or more; spinning through it would only burn the machine's time)."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def clock(self) -> float:
        return time.monotonic() + self.skipped

    def sleep(self, seconds: float) -> None:
        self.skipped += max(0.0, seconds)


class World:
    """What a flow may touch. A context manager; `queued=False` leaves the queues unset (the
    inline paths of `chalice local`)."""

    def __init__(self, tables: dict, *, queued: bool = True) -> None:
        self._tables = tables
        self._queued = queued
        self._exit = ExitStack()
        self.harness: Callable[[], AbstractContextManager] = nullcontext  # the injector's `paused`

    def __enter__(self) -> World:
        exit = self._exit
        env = exit.enter_context(pytest.MonkeyPatch.context())
        config = Config(redirect_uri=CALLBACK, rate_limit=1000.0)  # the matrix is not about amoCRM's rate
        server = self._server = start_in_thread(Sandbox(config, SEED))
        exit.callback(server.stop)
        self.sandbox = server.sandbox
        self.sandbox_url = server.sandbox.base_url()
        self.sandbox_host = urlsplit(self.sandbox_url).netloc
        for name, value in {
            "AMO_BASE_URL": self.sandbox_url,
            "AMO_CLIENT_ID": config.client_id,
            "AMO_CLIENT_SECRET": config.client_secret,
            "AMO_REDIRECT_URI": CALLBACK,
            "AMO_RATE_BUDGET": "local",
            "AMO_RATE_LIMIT_RPS": "1000",
            "MAIN_BACKEND_WEBHOOK_URL": f"{self.sandbox_url}/_sandbox/main-backend/notifications",
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.setenv(
            "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false"
        )  # the matrix empties the queues between runs
        # retries and pauses do not wait: the matrix counts outcomes, not seconds
        env.setitem(AmoClient.__init__.__kwdefaults__, "sleep", _no_sleep)
        skipped = _SkippedTime()
        env.setitem(RateLimiter.__init__.__kwdefaults__, "clock", skipped.clock)
        env.setitem(RateLimiter.__init__.__kwdefaults__, "sleep", skipped.sleep)
        # chalice's test invoker gives every function 3 s; deployed, a sync function has 15 minutes
        env.setattr(LambdaContext.__init__, "__defaults__", (900_000, None))
        memo.clear_all()
        serialise_moto(env)
        exit.enter_context(mock_aws())
        dynamodb_backends[MOTO_ACCOUNT]["us-east-1"].tables.update(copy.deepcopy(self._tables))
        self.queues: dict[str, str] = {}
        if self._queued:
            sqs = boto3.client("sqs", region_name="us-east-1")
            for variable, name in QUEUES.items():
                self.queues[name] = sqs.create_queue(QueueName=f"amocrm-{name}")["QueueUrl"]
                env.setenv(variable, self.queues[name])
        self.client = exit.enter_context(Client(app))
        self._connect(config)
        return self

    def __exit__(self, *exc: Any) -> None:
        memo.clear_all()
        self._exit.close()

    # -- one prepared world, many runs ------------------------------------------------------------

    def snapshot(self) -> None:
        """Remember the world as it is now: every table, the sandbox's account, what the Main
        Backend received (the queues are empty after a flow's preparation drained them)."""
        self._saved = (
            copy.deepcopy(dynamodb_backends[MOTO_ACCOUNT]["us-east-1"].tables),
            {name: copy.deepcopy(value) for name, value in vars(self.sandbox).items() if name not in NOT_DATA},
            copy.deepcopy(self._server.controls.main_backend),
        )

    def restore(self) -> None:
        """Back to the snapshot, as a cold Lambda meets it: nothing memoized, the queues empty."""
        tables, account, received = self._saved
        backend = dynamodb_backends[MOTO_ACCOUNT]["us-east-1"]
        backend.tables.clear()
        backend.tables.update(copy.deepcopy(tables))
        with self.harness():
            sqs = boto3.client("sqs", region_name="us-east-1")
            for url in self.queues.values():
                sqs.purge_queue(QueueUrl=url)
        with self.sandbox.lock:
            vars(self.sandbox).update(copy.deepcopy(account))
        self._server.controls.main_backend[:] = copy.deepcopy(received)
        memo.clear_all()

    def _connect(self, config: Config) -> None:
        """The install callback as amoCRM calls it after "Install" (reference §1.3)."""
        code = self.sandbox.issue_code(CALLBACK)
        status, body = self.call(
            "GET", f"callback?{urlencode({'code': code, 'referer': f'{config.subdomain}.amocrm.ru'})}"
        )
        assert status == 200, body

    # -- the service ------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any]:
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body) if body is not None else b""
        sent = {"X-API-Key": API_KEY, "Content-Type": "application/json", **(headers or {})}
        response = self.client.http.request(method, f"{PREFIX}/{path}", headers=sent, body=raw)
        try:
            answer = json.loads(response.body) if response.body else {}
        except ValueError:
            answer = response.body.decode(errors="replace")
        return response.status_code, answer

    def webhook(self, form: str) -> tuple[int, Any]:
        return self.call(
            "POST",
            f"webhook?secret={WEBHOOK_SECRET}",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def invoke(self, function: str, event: dict) -> Any:
        return self.client.lambda_.invoke(function, event).payload

    def drain(self, queue: str, function: str, *, rounds: int = 6) -> list[Any]:
        """Deliver the queue's messages to its consumer until it is empty, as SQS would: a message
        a batch reported as failed (or that raised) is delivered again on the next round."""
        sqs = boto3.client("sqs", region_name="us-east-1")
        answers = []
        for round_number in range(1, rounds + 1):
            with self.harness():
                messages = sqs.receive_message(
                    QueueUrl=self.queues[queue], MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"]
                ).get("Messages", [])
            if not messages:
                break
            event = {"Records": [_record(m, round_number, self.queues[queue]) for m in messages]}
            try:
                answer = self.invoke(function, event)
            except Exception as error:  # the whole batch failed: every message comes back
                answers.append(repr(error))
                continue
            answers.append(answer)
            failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
            with self.harness():
                for message in messages:
                    if message["MessageId"] not in failed:
                        sqs.delete_message(QueueUrl=self.queues[queue], ReceiptHandle=message["ReceiptHandle"])
        return answers

    # -- amoCRM as the sandbox holds it ----------------------------------------------------------

    def control(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = http(method, f"{self.sandbox_url}/_sandbox/{path}", body)
        assert status < 300, (path, status, answer)
        return answer

    def amo_leads(self) -> list[dict]:
        return self.control("GET", "export/leads")["leads"]

    def delivered(self) -> list[dict]:
        """What reached the Main Backend's stand-in."""
        return self.control("GET", "main-backend/notifications")["notifications"]


def _record(message: dict, receive: int, queue_url: str) -> dict:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": str(receive)},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:{MOTO_ACCOUNT}:{queue_url.rsplit('/', 1)[1]}",
        "awsRegion": "us-east-1",
    }
