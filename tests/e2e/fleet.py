"""A fleet: several OS processes of the service (two API servers, CLI runs) sharing one amoCRM
budget against one sandbox that counts every request start. The fleet has its own stack (its
own tables and sandbox), because a block recorded in the shared budget lasts minutes."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from scripts.local_stack import ROOT, Stack, free_port, http

LATENCY_MS = 50


class Fleet:
    def __init__(self, stack: Stack, second_api: str):
        self.stack = stack
        self.apis = [stack.api_url, second_api]
        self.headers = {"X-API-Key": stack.api_key}

    def call(self, api: int, method: str, path: str, body=None, timeout: float = 300):
        return http(method, f"{self.apis[api]}/{path}", body, self.headers, timeout)

    def sandbox(self, method: str, path: str, body=None):
        return http(method, f"{self.stack.sandbox_url}{path}", body)

    def stats(self) -> dict:
        return self.sandbox("GET", "/_sandbox/stats")[1]

    def delivered_events(self, at_least: int, wait: float = 60) -> int:
        """Events the sandbox delivered to our webhook (it may put several in one delivery)."""
        deadline = time.monotonic() + wait
        while True:
            deliveries = self.sandbox("GET", "/_sandbox/webhook-deliveries")[1]["deliveries"]
            delivered = sum(d["events"] for d in deliveries if d["status"] == 200)
            if delivered >= at_least or time.monotonic() > deadline:
                return delivered
            time.sleep(0.5)

    def cli(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "chalicelib.cli", *args],
            cwd=ROOT,
            env=self.stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@contextmanager
def running_fleet(seed: dict, name: str) -> Iterator[Fleet]:
    stack = Stack(
        moto_port=free_port(),
        sandbox_port=free_port(),
        api_port=free_port(),
        seed=seed,
        extra_env={
            "TABLE_PREFIX": f"{name}-",
            "AMO_BASE_URL": "",
            "AMO_RATE_LIMIT_RPS": "7",
            "AMO_RATE_BUDGET": "shared",
            "MAIN_BACKEND_WEBHOOK_URL": "",
        },
        log_dir=ROOT / ".local" / f"{name}-logs",
    )
    try:
        stack.start(sandbox_args=["--latency-ms", str(LATENCY_MS)])
        second = stack.start_api(free_port(), name="api-2")
        stack.connect()
        stack.register_webhook()
        yield Fleet(stack, second)
    finally:
        stack.stop()


def busy_rate(stats: dict, start: float, end: float) -> float:
    """Requests per second over the whole wall-clock seconds inside [start, end]."""
    first = stats["requests_by_second_from"]
    seconds = [s for s in range(int(start) + 1, int(end)) if 0 <= s - first < len(stats["requests_by_second"])]
    return sum(stats["requests_by_second"][s - first] for s in seconds) / max(1, len(seconds))
