"""The sales team's data in amoCRM survives the service's writes (reference §5.3, §5.4, §13):
a contact update keeps the contact's other phones and e-mails, and a lead that amoCRM's duplicate
control merged into an existing one is reported as merged, not as new."""

import pytest

from chalicelib import wiring
from chalicelib.amo.errors import AmoUnknownPath
from tests.e2e.backends import OnStack


def exported(backend, entity):
    return {item["id"]: item for item in backend.sandbox("GET", f"/_sandbox/export/{entity}")[1][entity]}


def kinds(contact, code):
    field = next((f for f in contact["custom_fields_values"] or [] if f["field_code"] == code), None)
    return [(v["value"], v["enum_code"]) for v in field["values"]] if field else []


@pytest.fixture
def two_phone_contact(backend):
    """A sandbox contact with a work and a mobile phone and two e-mails."""
    return next(
        c for c in exported(backend, "contacts").values() if len(kinds(c, "PHONE")) == 2 and len(kinds(c, "EMAIL")) == 2
    )


def test_changing_a_contacts_phone_keeps_its_other_phones_and_its_e_mails(backend, two_phone_contact):
    contact = two_phone_contact
    phones, emails = kinds(contact, "PHONE"), kinds(contact, "EMAIL")

    status, body = backend.call("PATCH", f"contacts/{contact['id']}", {"phone": "+380 63 999 88 77"})

    assert status == 200, body
    stored = exported(backend, "contacts")[contact["id"]]
    assert kinds(stored, "PHONE") == [("+380 63 999 88 77", phones[0][1]), phones[1]]
    assert kinds(stored, "EMAIL") == emails
    _, mirrored = backend.call("GET", "contacts?limit=500")
    assert next(c for c in mirrored["data"] if c["id"] == contact["id"])["phone"] == "+380 63 999 88 77"


def test_an_e_mail_the_contact_already_has_is_not_written_twice(backend, two_phone_contact):
    contact = two_phone_contact
    emails = kinds(contact, "EMAIL")
    before = backend.stats()["by_path"].get("PATCH /api/v4/contacts/{id}", 0)

    status, body = backend.call("PATCH", f"contacts/{contact['id']}", {"email": emails[0][0].upper()})

    assert status == 200 and body["message"] == "contact unchanged"
    assert backend.stats()["by_path"].get("PATCH /api/v4/contacts/{id}", 0) == before  # nothing written
    assert kinds(exported(backend, "contacts")[contact["id"]], "EMAIL") == emails


@pytest.fixture
def duplicate_control(backend):
    """amoCRM's duplicate control on for `/leads/complex` (off again after the test)."""
    assert backend.sandbox("POST", "/_sandbox/config", {"complex_duplicates": "on"})[0] == 200
    yield
    backend.sandbox("POST", "/_sandbox/config", {"complex_duplicates": "off"})


def test_a_lead_amocrm_merges_into_the_guests_open_lead_is_reported_as_merged(backend, duplicate_control):
    leads = exported(backend, "leads")
    guest = next(
        c
        for c in exported(backend, "contacts").values()
        if kinds(c, "PHONE")
        and any(
            lead["status_id"] not in (142, 143) and lead["contacts"][0]["id"] == c["id"]
            for lead in leads.values()
            if lead.get("contacts")
        )
    )
    body = {
        "leadData": {"name": "Повторна бронь", "price": 900},
        "contact": {"name": "Гість", "phone": kinds(guest, "PHONE")[0][0]},
    }

    status, created = backend.call("POST", "create-lead", body, headers={"Idempotency-Key": "merged-1"})

    assert status == 200, created
    assert created["merged"] is True and created["amoContactId"] == guest["id"]
    assert created["amoLeadId"] in leads  # an existing lead, not a new one
    assert len(exported(backend, "leads")) == len(leads)
    _, stored = backend.call("GET", f"leads/{created['amoLeadId']}")
    assert stored["id"] == created["leadId"]
    again = backend.call("POST", "create-lead", body, headers={"Idempotency-Key": "merged-1"})
    assert again == (200, created)


def test_a_new_guest_is_created_and_not_merged(backend, duplicate_control):
    body = {"leadData": {"name": "Нова бронь"}, "contact": {"name": "Новий Гість", "phone": "+380 99 000 11 22"}}
    status, created = backend.call("POST", "create-lead", body)
    assert status == 200 and created["merged"] is False
    assert created["amoLeadId"] not in {
        i for i, lead in exported(backend, "leads").items() if lead["name"] != "Нова бронь"
    }


@pytest.mark.parametrize(
    "lead_data,reason",
    [
        (
            {"name": "x", "custom_fields_values": [{"field_id": 7, "values": [{"value": str(i)} for i in range(41)]}]},
            "the lead has 41 custom field values; amoCRM takes at most 40",
        ),
        ({"name": "x", "_embedded": {"companies": [{"name": "A"}, {"name": "B"}]}}, "at most 1 company per lead"),
    ],
)
def test_a_lead_over_the_complex_caps_is_refused_before_anything_is_sent(backend, lead_data, reason):
    before = backend.stats()["by_path"].get("POST /api/v4/leads/complex", 0)

    status, body = backend.call("POST", "create-lead", {"leadData": lead_data, "contact": {"name": "Гість"}})

    assert status == 400 and reason in body["Message"]
    assert backend.stats()["by_path"].get("POST /api/v4/leads/complex", 0) == before


def test_only_a_204_or_a_404_naming_the_entity_means_gone(backend):
    """Reference §3.5: an unknown path's 404 proves nothing about an entity (the service's own
    amoCRM client, in process, against the sandbox)."""
    if isinstance(backend, OnStack):
        pytest.skip("reads through the service's client in this process")
    amo = wiring.amo()
    backend.sandbox("POST", "/_sandbox/config", {"missing_entity_status": 404})
    try:
        assert amo.leads.get(987654321) is None  # 404 "Lead not found"
        with pytest.raises(AmoUnknownPath, match="Unknown path"):
            amo.client.get_one("/api/v4/lead/1")  # a mistyped path
    finally:
        backend.sandbox("POST", "/_sandbox/config", {"missing_entity_status": 204})
    assert amo.leads.get(987654321) is None  # 204


@pytest.mark.slow  # each page waits on purpose; tests/amo/test_keyset.py is the fast check
def test_an_incremental_sync_reads_every_changed_lead_while_leads_are_edited_between_its_pages(backend):
    """Reference §13, the sandbox's `edit_between_pages`: each time page 1 of a lead list is
    served its first lead is edited (it leaves the run's window). Read by page offset, the lead
    that then slides onto page 1 is never read; read by `updated_at` keyset, none is missed."""
    backend.call("POST", "sync-pipelines")
    backend.call("POST", "mapping/auto-apply")
    assert backend.call("POST", "sync-leads?limit=0")[0] == 200  # where incremental runs start from
    _, touched = backend.sandbox("POST", "/_sandbox/touch", {"entity": "leads", "count": 10_000})
    current = exported(backend, "leads")
    changed = {lead_id: current[lead_id]["updated_at"] for lead_id in touched["changed"]}
    assert len(changed) > 250  # more than one page
    # a second of latency puts each edit past the run's window, as a person editing during a long run
    backend.sandbox("POST", "/_sandbox/config", {"edit_between_pages": 1, "latency_ms": 1100})
    try:
        status, result = backend.call("POST", "sync-all?leadsLimit=0&full=false")
    finally:
        backend.sandbox("POST", "/_sandbox/config", {"edit_between_pages": 0, "latency_ms": 0})

    assert status == 200 and result["leads"]["errors"] == [], result
    held = {
        item["amo_lead_id"]: item["amo_updated_at"] for item in backend.scan("leads", "amo_lead_id", "amo_updated_at")
    }
    missed = sorted(lead_id for lead_id, version in changed.items() if held.get(lead_id, 0) < version)
    assert missed == []
    edited = [
        lead_id for lead_id, lead in exported(backend, "leads").items() if lead["updated_at"] > max(changed.values())
    ]
    assert edited  # the knob did edit leads during the run (the next run reads their new version)
