"""Leads mirrored from the sandbox's account: a full sync without N+1, idempotency, the limit,
injected 429s and 503s, a token that expires mid-sync, and creating a lead with its contact."""

import json
import math
import threading
import time

import pytest

from chalicelib.amo.pages import MAX_WINDOW
from tests.e2e.backends import PROPERTY_FIELD_ID, SEED

LEADS, CONTACTS = SEED["leads"], SEED["contacts"]
PAGE = 250  # amoCRM's largest page


@pytest.fixture(scope="module")
def mapped(backend):
    """The module's account with its pipelines mirrored and every stage mapped automatically."""
    backend.call("POST", "sync-pipelines")
    backend.call("POST", "mapping/auto-apply")
    return backend


def grew(before, after, *keys):
    """How much a (nested) counter of the sandbox's stats grew."""

    def value(snapshot):
        for key in keys:
            snapshot = snapshot.get(key, 0) if isinstance(snapshot, dict) else 0
        return snapshot

    return value(after) - value(before)


def exported(backend, entity):
    return {item["id"]: item for item in backend.sandbox("GET", f"/_sandbox/export/{entity}")[1][entity]}


def test_a_full_sync_mirrors_every_lead_with_its_main_contact_in_few_requests(mapped):
    backend = mapped
    before = backend.stats()

    status, result = backend.call("POST", "sync-leads?limit=0")

    assert status == 200 and result == {"synced": LEADS, "errors": []}
    after = backend.stats()
    # pages of 250, never one request per lead or per contact (N+1)
    assert grew(before, after, "by_path", "GET /api/v4/leads/{id}") == 0
    assert grew(before, after, "by_path", "GET /api/v4/contacts/{id}") == 0
    assert grew(before, after, "by_path", "GET /api/v4/contacts") <= math.ceil(CONTACTS / PAGE)
    # with pages in flight the service may ask for a few past the last one (they answer 204)
    assert grew(before, after, "by_path", "GET /api/v4/leads") <= math.ceil(LEADS / PAGE) + MAX_WINDOW
    # paced at amoCRM's 7 rps; on a busy machine one request may reach it early enough to be refused
    assert grew(before, after, "rate_limited") <= 1

    sandbox_leads, sandbox_contacts = exported(backend, "leads"), exported(backend, "contacts")
    _, stages = backend.call("GET", "mapping/suggestions")
    mapped_to = {(s["pipelineId"], s["stageId"]): s["currentStatus"] for s in stages["data"]}
    mirrored = {item["amo_lead_id"]: item for item in backend.scan("leads")}
    assert set(mirrored) == set(sandbox_leads)
    for lead_id, raw in sandbox_leads.items():
        item = mirrored[lead_id]
        assert (item["amo_pipeline_id"], item["amo_status_id"]) == (raw["pipeline_id"], raw["status_id"])
        assert item["status"] == mapped_to[(raw["pipeline_id"], raw["status_id"])]
        assert (item.get("price"), item.get("responsible_user_id")) == (raw["price"], raw["responsible_user_id"])
        assert json.loads(item.get("custom_fields", "null")) == raw["custom_fields_values"]
        fields = {f["field_id"]: f["values"][0]["value"] for f in raw["custom_fields_values"] or []}
        assert item.get("property_id") == fields.get(int(PROPERTY_FIELD_ID))
        main = next(c["id"] for c in raw["contacts"] if c["is_main"])
        contact = {f["field_code"]: f["values"][0]["value"] for f in sandbox_contacts[main]["custom_fields_values"]}
        assert item["amo_contact_id"] == main
        assert (item["guest_name"], item["guest_phone"], item["guest_email"]) == (
            sandbox_contacts[main]["name"],
            contact["PHONE"],
            contact["EMAIL"],
        )


def test_a_second_sync_writes_nothing(mapped):
    backend = mapped
    backend.call("POST", "sync-leads?limit=0")
    before = {item["id"]: item["updated_at"] for item in backend.scan("leads", "id", "updated_at")}

    status, result = backend.call("POST", "sync-leads?limit=0")

    assert status == 200 and result == {"synced": LEADS, "errors": []}
    assert {item["id"]: item["updated_at"] for item in backend.scan("leads", "id", "updated_at")} == before


def test_limit_50_syncs_exactly_50(mapped):
    status, result = mapped.call("POST", "sync-leads?limit=50")
    assert status == 200 and result == {"synced": 50, "errors": []}


def test_injected_429s_and_503s_are_retried_until_every_lead_is_synced(mapped):
    backend = mapped
    before = backend.stats()
    # every request answers 429 (with Retry-After) for the first 2 s; one in five answers 503:
    # a sync makes only a few requests, so sync again until a 503 has certainly been injected
    backend.sandbox("POST", "/_sandbox/config", {"error_rate_503": 0.2})
    backend.sandbox("POST", "/_sandbox/throttle", {"seconds": 2})
    results = []
    try:
        while len(results) < 15 and not grew(before, backend.stats(), "statuses", "503"):  # 45+ rolls of 1 in 5
            results.append(backend.call("POST", "sync-all?leadsLimit=0"))
    finally:
        backend.sandbox("POST", "/_sandbox/throttle", {"seconds": 0})
        backend.sandbox("POST", "/_sandbox/config", {"error_rate_503": 0.0})

    after = backend.stats()
    assert grew(before, after, "statuses", "429") >= 1 and grew(before, after, "statuses", "503") >= 1
    for status, result in results:
        assert status == 200
        assert result["pipelines"]["errors"] == [] and result["leads"] == {"synced": LEADS, "errors": []}


def test_a_token_that_expires_in_the_middle_of_a_sync_is_refreshed_without_a_trace(mapped):
    backend = mapped
    before = backend.stats()
    # slow every request down, and expire every token as soon as the sync has asked for its
    # first page: the rest of the sync runs into the expired token
    backend.sandbox("POST", "/_sandbox/config", {"latency_ms": 400})
    expired = threading.Event()

    def expire_once_the_sync_has_started():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if grew(before, backend.stats(), "by_path", "GET /api/v4/leads"):
                backend.sandbox("POST", "/_sandbox/expire-tokens")
                expired.set()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=expire_once_the_sync_has_started)
    watcher.start()
    try:
        status, result = backend.call("POST", "sync-leads?limit=0")
    finally:
        watcher.join()
        backend.sandbox("POST", "/_sandbox/config", {"latency_ms": 0})

    assert expired.is_set()
    assert status == 200 and result == {"synced": LEADS, "errors": []}
    after = backend.stats()
    assert grew(before, after, "statuses", "401") >= 1, "the expiry did not land in the middle of the sync"
    assert grew(before, after, "refreshes") == 1  # once, however many requests met the expired token


def test_creating_a_lead_with_its_contact_twice_under_one_key_creates_it_once(mapped):
    backend = mapped
    body = {
        "leadData": {"name": "Бронь: кв. 12, 3 ночи", "price": 4500},
        "contact": {"name": "Тарас Шевченко", "phone": "+380671234567", "email": "taras@ukr.net"},
    }
    key = {"Idempotency-Key": "booking-12-3-nights"}
    before = backend.stats()

    first = backend.call("POST", "create-lead", body, headers=key)
    again = backend.call("POST", "create-lead", body, headers=key)

    assert first[0] == again[0] == 200 and first[1] == again[1]
    assert grew(before, backend.stats(), "by_path", "POST /api/v4/leads/complex") == 1  # lead + contact in one call
    created = [item for item in exported(backend, "leads").values() if item["name"] == body["leadData"]["name"]]
    assert len(created) == 1
    contact = exported(backend, "contacts")[created[0]["contacts"][0]["id"]]
    assert {f["field_code"]: f["values"][0]["value"] for f in contact["custom_fields_values"]} == {
        "PHONE": "+380671234567",
        "EMAIL": "taras@ukr.net",
    }
    _, stored = backend.call("GET", f"leads/{first[1]['amoLeadId']}")
    assert stored["id"] == first[1]["leadId"]
    assert (stored["guest_name"], stored["guest_phone"], stored["price"]) == ("Тарас Шевченко", "+380671234567", 4500)

    status, refused = backend.call("POST", "create-lead", {"leadData": {"name": "Другое"}}, headers=key)
    assert status == 400 and "different request" in refused["Message"]
