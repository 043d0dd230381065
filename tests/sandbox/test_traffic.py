"""Rate limiting beyond the 7 rps rule: Retry-After, throttling windows, and the numbers a test
needs to compute a client's aggregate rate (reference §3.4, §13)."""

import threading
import time

import requests


def test_retry_after_is_sent_with_every_429_once_configured(sandbox, api, control):
    control("/config", {"rate_limit": 1})
    refused = [r for r in (api("GET", "/api/v4/account") for _ in range(3)) if r.status_code == 429]
    assert refused and all("Retry-After" not in r.headers for r in refused)
    control("/config", {"retry_after": 3})
    refused = [r for r in (api("GET", "/api/v4/account") for _ in range(3)) if r.status_code == 429]
    assert refused and all(r.headers["Retry-After"] == "3" for r in refused)


def test_injected_429s_carry_retry_after_too(api, control):
    control("/config", {"error_rate_429": 1.0, "retry_after": 5})
    response = api("GET", "/api/v4/account")
    assert response.status_code == 429 and response.headers["Retry-After"] == "5"


def test_throttle_answers_429_with_its_retry_after_until_lifted(sandbox, api, control):
    assert control("/throttle", {"seconds": 30, "retry_after": 7}).status_code == 200
    for path in ("/api/v4/account", "/api/v4/leads"):
        response = api("GET", path)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert control("/stats", method="GET").json()["rate_limited"] == 2
    control("/throttle", {"seconds": 0})
    assert api("GET", "/api/v4/account").status_code == 200


def test_throttle_ends_by_itself(api, control):
    control("/throttle", {"seconds": 1})
    assert api("GET", "/api/v4/account").status_code == 429
    time.sleep(1.1)
    assert api("GET", "/api/v4/account").status_code == 200


def test_rate_limited_until_in_config_throttles_without_saying_how_long(api, control):
    # amoCRM never says how long (reference §3.4): no Retry-After unless one is configured
    control("/config", {"rate_limited_until": time.time() + 5})
    response = api("GET", "/api/v4/account")
    assert response.status_code == 429 and "Retry-After" not in response.headers
    control("/throttle", {"seconds": 5})
    assert "Retry-After" not in api("GET", "/api/v4/account").headers


def test_throttle_checks_its_body(control):
    assert control("/throttle", {"seconds": -1}).status_code == 400
    assert control("/throttle", {"seconds": 1, "retry_after": "soon"}).status_code == 400


def test_peak_counts_every_arrival_in_any_rolling_second_even_refused_ones(sandbox, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("sandbox.traffic.time.monotonic", lambda: clock[0])
    sandbox.config.rate_limit = 2
    for moment in (0.0, 0.5, 0.9, 1.2, 1.3, 1.4, 2.6):
        clock[0] = 1000.0 + moment
        sandbox.admit("GET /api/v4/leads")
    stats = sandbox.stats_view()
    assert stats["peak_rps"] == 5  # 0.5 … 1.4, three of them refused
    assert stats["rate_limited"] == 3


def test_tightest_span_is_the_shortest_time_rate_plus_one_requests_took(sandbox, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("sandbox.traffic.time.monotonic", lambda: clock[0])
    sandbox.config.rate_limit = 2
    for moment in (0.0, 0.6, 1.3, 1.9, 2.1, 4.0):
        clock[0] = 1000.0 + moment
        sandbox.admit("GET /api/v4/leads")
    # spans of three consecutive starts: 1.3, 1.3, 0.8, 2.1 — the 0.8 one put three in a second
    assert sandbox.stats_view()["tightest_span_ms"] == 800.0
    sandbox.reset_stats()
    clock[0] = 1010.0
    sandbox.admit("GET /api/v4/leads")
    assert sandbox.stats_view()["tightest_span_ms"] is None  # fewer than three starts since the reset


def test_stats_report_requests_per_second_across_clients(sandbox, token, control):
    control("/config", {"rate_limit": 1000})
    control("/stats/reset")
    url = f"{sandbox.base_url()}/api/v4/account"
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    def client():
        with requests.Session() as session:
            for _ in range(5):
                session.get(url, headers=headers)

    workers = [threading.Thread(target=client) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = control("/stats", method="GET").json()
    assert stats["requests"] == sum(stats["requests_by_second"]) == 10
    assert stats["first_request_at"] <= stats["last_request_at"]
    assert stats["requests_by_second_from"] == int(stats["first_request_at"])
    assert len(stats["requests_by_second"]) == int(stats["last_request_at"]) - int(stats["first_request_at"]) + 1
    if stats["last_request_at"] - stats["first_request_at"] < 1.0:
        assert stats["peak_rps"] == 10
    control("/stats/reset")
    cleared = control("/stats", method="GET").json()
    assert cleared["requests_by_second"] == [] and cleared["first_request_at"] is None
