"""Several OS processes share one amoCRM budget: two services answering HTTP, an operator's CLI
sync and a burst of webhooks, against one sandbox that counts every request start.

The fleet has its own stack (its own tables and sandbox), because a block recorded in the
shared budget lasts minutes.
"""
import subprocess
import sys
import threading
import time

import pytest

from scripts.local_stack import ROOT, Stack, free_port, http

pytestmark = pytest.mark.e2e

LATENCY_MS = 50
SEED = {"leads": 6000, "contacts": 3000, "tasks": 40}


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

    def cli(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "chalicelib.cli", *args], cwd=ROOT, env=self.stack.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def fleet():
    stack = Stack(moto_port=free_port(), sandbox_port=free_port(), api_port=free_port(), seed=SEED,
                  extra_env={"TABLE_PREFIX": "fleet-", "AMO_BASE_URL": "", "AMO_RATE_LIMIT_RPS": "7",
                             "AMO_RATE_BUDGET": "shared", "MAIN_BACKEND_WEBHOOK_URL": ""},
                  log_dir=ROOT / ".local" / "fleet-logs")
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


def test_services_a_cli_sync_and_a_webhook_burst_together_stay_under_the_limit_and_use_it(fleet):
    fleet.sandbox("POST", "/_sandbox/stats/reset", {})
    started = time.time()
    sync = fleet.cli("sync-all", "--related")
    leads = fleet.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]
    movable = [lead["id"] for lead in leads if lead["status_id"] not in (142, 143)][:300]
    answers: list[int] = []

    def small_syncs(api: int):
        for path in ("sync-users", "sync-roles", "sync-pipelines") * 5:
            answers.append(fleet.call(api, "POST", path)[0])

    def live_checks(api: int):  # one amoCRM call each, no writes: keeps the budget in demand
        while sync.poll() is None:
            answers.append(fleet.call(api, "GET", "test")[0])

    def burst(ids):
        for lead_id in ids:
            fleet.sandbox("POST", "/_sandbox/trigger-webhook", {"entity": "leads", "action": "status", "id": lead_id})

    workers = [threading.Thread(target=small_syncs, args=(api,)) for api in (0, 1)]
    workers += [threading.Thread(target=live_checks, args=(api,)) for api in (0, 1) for _ in range(3)]
    workers += [threading.Thread(target=burst, args=(movable[i::3],)) for i in range(3)]
    for worker in workers:
        worker.start()
    out, err = sync.communicate(timeout=600)
    sync_ended = time.time()
    for worker in workers:
        worker.join(600)

    stats = fleet.stats()
    assert sync.returncode == 0, err[-2000:]
    assert answers and set(answers) == {200}
    assert stats["rate_limited"] == 0
    assert stats["peak_rps"] <= 7
    assert busy_rate(stats, started, sync_ended) >= 6.0, stats["requests_by_second"]


def test_create_lead_during_a_full_sync_answers_within_about_a_second_plus_latency(fleet):
    fleet.sandbox("POST", "/_sandbox/stats/reset", {})
    sync = fleet.cli("sync-all")
    while fleet.stats()["requests"] < 10:  # the sync is in full swing
        time.sleep(0.1)
    asked = time.monotonic()
    status, created = fleet.call(1, "POST", "create-lead", {"leadData": {"name": "Бронь во время синхронизации"},
                                                          "contact": {"name": "Гість Тест", "phone": "+380500000000"}})
    took = time.monotonic() - asked
    sync.communicate(timeout=600)
    assert status == 200 and created["amoLeadId"]
    # three amoCRM calls (create, read the lead, read its contact), each waits for a reserved slot
    assert took <= 1.5 + 3 * LATENCY_MS / 1000, f"create-lead took {took:.2f}s"


def test_a_retry_after_seen_by_one_process_holds_the_others(fleet):
    fleet.sandbox("POST", "/_sandbox/stats/reset", {})
    sync = fleet.cli("sync-all")
    while fleet.stats()["requests"] < 10:
        time.sleep(0.1)
    fleet.sandbox("POST", "/_sandbox/throttle", {"seconds": 3, "retry_after": 3})
    statuses = [fleet.call(api, "POST", "sync-users")[0] for api in (0, 1)]
    out, err = sync.communicate(timeout=600)
    stats = fleet.stats()
    assert sync.returncode == 0, err[-2000:]
    assert statuses == [200, 200]  # they waited out the pause and carried on
    # without a shared pause each process would keep asking at its pace for three seconds (~20
    # refusals); with it, only what was already admitted before the pause became known
    assert stats["rate_limited"] <= 8, stats["rate_limited"]


def test_a_block_seen_by_one_process_stops_every_process_and_shows_in_status(fleet):
    fleet.sandbox("POST", "/_sandbox/config", {"blocked": True})
    status, body = fleet.call(0, "POST", "sync-users")
    assert status == 200 and "blocked" in str(body).lower() or status == 503
    before = fleet.stats()["requests"]
    status, answer = fleet.call(1, "POST", "sync-pipelines")
    assert status == 503 and "blocked" in answer["Message"]
    sync = fleet.cli("sync-all")
    out, err = sync.communicate(timeout=120)
    assert sync.returncode == 1 and "blocked" in err
    assert fleet.stats()["requests"] == before  # nobody asked amoCRM again
    _, test = fleet.call(1, "GET", "test")
    assert test["budget"]["blockedUntil"] and test["budget"]["blockedCount"] == 1
    fleet.sandbox("POST", "/_sandbox/config", {"blocked": False})
