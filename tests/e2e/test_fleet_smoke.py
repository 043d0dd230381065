"""The fleet's smoke test, in `make test`: two service processes share one amoCRM budget for a
few seconds without a 429, and a block one of them sees stops every process (the slow fleet
tests under load are in test_fleet.py)."""

import threading
import time

import pytest

from tests.e2e.fleet import running_fleet

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fleet():
    with running_fleet({"leads": 60, "contacts": 30, "tasks": 5}, "fleet-smoke") as running:
        yield running


def test_two_processes_asking_at_once_share_the_budget_without_a_429(fleet):
    fleet.sandbox("POST", "/_sandbox/stats/reset", {})
    busy_until = time.time() + 3
    answers: list[int] = []

    def live_checks(api: int):
        while time.time() < busy_until:
            answers.append(fleet.call(api, "GET", "test")[0])

    workers = [threading.Thread(target=live_checks, args=(api,)) for api in (0, 1) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    stats = fleet.stats()
    assert answers and set(answers) == {200}
    assert stats["requests"] >= 10  # both kept asking: the limit, not idleness, was tested
    assert stats["rate_limited"] == 0 and stats["peak_rps"] <= 7


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
