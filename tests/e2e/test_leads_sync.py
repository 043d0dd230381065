"""Leads over real HTTP against the sandbox: full sync at the rate limit, idempotency, faults."""
import threading
import time

import boto3
import pytest

pytestmark = pytest.mark.e2e


def scan(service, table):
    client = boto3.client("dynamodb", endpoint_url=service.stack.moto_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    items = []
    for page in client.get_paginator("scan").paginate(TableName=f"{service.stack.env['TABLE_PREFIX']}{table}"):
        items.extend(page["Items"])
    return items


def number(item, name):
    return int(item[name]["N"]) if name in item and "N" in item[name] else None


def text(item, name):
    return item[name]["S"] if name in item and "S" in item[name] else None


@pytest.fixture(scope="module")
def big_account(service):
    """1,200 leads across 2 pipelines, 600 contacts; pipelines synced and auto-mapped."""
    service.sandbox("POST", "/_sandbox/seed", {"pipelines": 2, "leads": 1200, "contacts": 600, "tasks": 60})
    service.call("POST", "sync-pipelines")
    service.call("POST", "mapping/auto-apply", {"minConfidence": 0})
    return service


def stats(service):
    return service.sandbox("GET", "/_sandbox/stats")[1]


def test_full_sync_mirrors_every_lead_at_the_rate_limit_without_n_plus_1(big_account):
    service = big_account
    before = stats(service)

    status, result = service.call("POST", "sync-leads?limit=0")

    assert status == 200 and result == {"synced": 1200, "errors": []}
    after = stats(service)
    lead_requests = after["by_path"].get("GET /api/v4/leads", 0) - before["by_path"].get("GET /api/v4/leads", 0)
    contact_requests = (after["by_path"].get("GET /api/v4/contacts", 0)
                        - before["by_path"].get("GET /api/v4/contacts", 0))
    assert lead_requests <= 5 + 1 and contact_requests <= 3 + 1, (before, after)  # ceil(1200/250) + ceil(600/250)
    assert after["rate_limited"] == before["rate_limited"]

    sandbox_leads = {l["id"]: l for l in service.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]}
    sandbox_contacts = {c["id"]: c for c in service.sandbox("GET", "/_sandbox/export/contacts")[1]["contacts"]}
    _, stages = service.call("GET", "mapping/suggestions")
    mapped = {(s["pipelineId"], s["stageId"]): s["currentStatus"] for s in stages["data"]}
    mirrored = {number(item, "amo_lead_id"): item for item in scan(service, "leads")}
    assert set(sandbox_leads) <= set(mirrored)
    for lead_id, raw in sandbox_leads.items():
        item = mirrored[lead_id]
        assert text(item, "status") == mapped[(raw["pipeline_id"], raw["status_id"])]
        main = next(c["id"] for c in raw["contacts"] if c["is_main"])
        assert number(item, "amo_contact_id") == main
        assert text(item, "guest_name") == sandbox_contacts[main]["name"]
        phone = sandbox_contacts[main]["custom_fields_values"][0]["values"][0]["value"]
        assert text(item, "guest_phone") == phone


def test_a_second_sync_writes_nothing_new(big_account):
    service = big_account
    service.call("POST", "sync-leads?limit=0")
    before = {text(i, "id"): text(i, "updated_at") for i in scan(service, "leads")}
    service.call("POST", "sync-leads?limit=0")
    assert {text(i, "id"): text(i, "updated_at") for i in scan(service, "leads")} == before


def test_limit_50_syncs_exactly_50(big_account):
    status, result = big_account.call("POST", "sync-leads?limit=50")
    assert status == 200 and result["synced"] == 50


def test_ten_percent_429_and_503_still_sync_every_lead(big_account):
    service = big_account
    service.sandbox("POST", "/_sandbox/config", {"error_rate_429": 0.05, "error_rate_503": 0.05})
    try:
        status, result = service.call("POST", "sync-all?leadsLimit=0")
    finally:
        service.sandbox("POST", "/_sandbox/config", {"error_rate_429": 0.0, "error_rate_503": 0.0})
    assert status == 200
    assert result["leads"] == {"synced": 1200, "errors": []}
    assert result["pipelines"]["errors"] == []


def test_token_expiry_in_the_middle_of_a_sync_is_invisible(big_account):
    service = big_account
    refreshes = stats(service)["refreshes"]
    expire = threading.Timer(0.5, lambda: service.sandbox("POST", "/_sandbox/expire-tokens"))
    expire.start()
    started = time.monotonic()
    status, result = service.call("POST", "sync-leads?limit=0")
    expire.join()
    assert status == 200 and result == {"synced": 1200, "errors": []}
    assert time.monotonic() - started > 0.5  # the expiry really happened during the sync
    assert stats(service)["refreshes"] == refreshes + 1


def test_create_lead_with_contact_is_idempotent(big_account):
    service = big_account
    body = {"leadData": {"name": "Бронь: кв. 12, 3 ночи", "price": 4500},
            "contact": {"name": "Тарас Шевченко", "phone": "+380671234567", "email": "taras@ukr.net"}}
    headers_key = "e2e-booking-1"
    import json
    import urllib.request
    responses_ = []
    for _ in range(2):
        request = urllib.request.Request(f"{service.stack.api_url}/create-lead", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json",
                                                                 "X-API-Key": service.stack.api_key,
                                                                 "Idempotency-Key": headers_key})
        with urllib.request.urlopen(request, timeout=30) as response:
            responses_.append(json.loads(response.read()))
    assert responses_[0] == responses_[1]
    amo_lead_id = responses_[0]["amoLeadId"]
    _, stored = service.call("GET", f"leads/{amo_lead_id}")
    assert (stored["guest_name"], stored["guest_phone"], stored["price"]) == ("Тарас Шевченко", "+380671234567", 4500)
    created = [l for l in service.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]
               if l["name"] == body["leadData"]["name"]]
    assert len(created) == 1
