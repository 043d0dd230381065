"""Personal data (issue 25) without a sandbox: the activity log's allow-list, retention, the CLI's
erase-guest, the events reader's paging, and amoCRM's contact cleared the way §5.3 says."""

import json
from datetime import timedelta

import pytest

from chalicelib import cli, settings, wiring
from chalicelib.models import AmoContact, Lead, SyncState, utc_now
from chalicelib.services import leads, personal_data, retention
from chalicelib.services.sync import deletions
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def contact_row(contact_id, *, name="Olha Kovalenko", phone="+7 912 555-01-77", email="olha.k@example.org"):
    AmoContact(id=contact_id, name=name, phone=phone, email=email).save()


def lead_row(amo_lead_id, *, contact_id=None, linked=True, guest=("Olha Kovalenko", "+7 912 555-01-77", "o@x.org")):
    lead = Lead(
        id=leads.lead_id_for(amo_lead_id),
        amo_lead_id=amo_lead_id if linked else None,
        amo_contact_id=contact_id,
        guest_name=guest[0],
        guest_phone=guest[1],
        guest_email=guest[2],
    )
    lead.save()
    return lead


def age(item, days):
    type(item).get(item.id).update(actions=[type(item).updated_at.set(utc_now() - timedelta(days=days))])


def guest_of(amo_lead_id):
    lead = Lead.get(leads.lead_id_for(amo_lead_id))
    return (lead.guest_name, lead.guest_phone, lead.guest_email)


# -- the activity log's allow-list -------------------------------------------------------------------


def test_strip_keeps_ids_times_and_states_and_drops_every_other_key_at_every_depth():
    item = {
        "id": "7",
        "name": "Olha Kovalenko",
        "last_modified": "1700000000",
        "custom_fields": [{"id": "1", "code": "PHONE", "values": [{"value": "+79125550177"}]}],
        "linked_leads_id": {"17657": {"ID": "17657"}},
        "account": {"id": "1", "subdomain": "x", "_links": {"self": "…"}},
        "text": "call Olha",
    }
    stripped = personal_data.strip(item)
    assert stripped == {
        "id": "7",
        "last_modified": "1700000000",
        "account": {"id": "1", "subdomain": "x", "_omitted": ["_links"]},
        "_omitted": ["custom_fields", "linked_leads_id", "name", "text"],
    }
    assert "Olha" not in json.dumps(stripped) and "9125550177" not in json.dumps(stripped)


@pytest.mark.parametrize(
    ("given", "compared"), [("+7 (912) 555-01-77", "79125550177"), ("8 912 555 01 77", "79125550177")]
)
def test_phones_are_compared_by_their_digits_with_the_russian_trunk_prefix(given, compared):
    assert personal_data.normal_phone(given) == compared


# -- retention ----------------------------------------------------------------------------------------


def test_the_sweeper_erases_old_unlinked_guests_and_unused_contacts_and_keeps_the_rest(monkeypatch):
    monkeypatch.setenv("PERSONAL_DATA_RETENTION_DAYS", "30")
    age(lead_row(1, linked=False), 31)  # unlinked long ago: erased
    age(lead_row(2, linked=False), 29)  # unlinked recently: kept
    age(lead_row(3, contact_id=500), 400)  # linked: kept however old
    contact_row(500)
    age(AmoContact.get(500), 400)  # used by lead 3: kept
    contact_row(501)
    age(AmoContact.get(501), 31)  # used by nobody, old: deleted
    contact_row(502)  # used by nobody, recent: kept

    assert retention.sweep() == {"leads": 1, "contacts": 1}

    assert guest_of(1) == (None, None, None) and Lead.get(leads.lead_id_for(1)).id  # the lead stays
    assert guest_of(2)[0] and guest_of(3)[0]
    assert {c.id for c in AmoContact.scan()} == {500, 502}
    assert retention.sweep() == {"leads": 0, "contacts": 0}


def test_the_sweeper_leaves_a_lead_a_restore_linked_again_meanwhile(monkeypatch):
    """Review: the lead's erase had no condition, so a lead relinked between the scan and the
    write lost the guest fields it had just been given."""
    monkeypatch.setenv("PERSONAL_DATA_RETENTION_DAYS", "30")
    age(lead_row(4, linked=False), 31)
    real_scan = Lead.scan

    def relinked_after_the_scan(*args, **kwargs):
        found = list(real_scan(*args, **kwargs))
        Lead.get(leads.lead_id_for(4)).update(actions=[Lead.amo_lead_id.set(4)])
        return iter(found)

    monkeypatch.setattr(Lead, "scan", relinked_after_the_scan)
    assert retention.sweep()["leads"] == 0
    assert guest_of(4)[0]


def test_the_retention_setting_defaults_to_730_days_and_refuses_nonsense(monkeypatch):
    monkeypatch.delenv("PERSONAL_DATA_RETENTION_DAYS", raising=False)
    assert settings.personal_data_retention_days() == 730
    monkeypatch.setenv("PERSONAL_DATA_RETENTION_DAYS", "0")
    assert any("PERSONAL_DATA_RETENTION_DAYS" in problem for problem in settings.validate_all())


# -- erase-guest ------------------------------------------------------------------------------------


def test_erase_guest_by_phone_prints_counts_only(capsys):
    contact_row(600)
    lead_row(60, contact_id=600)
    assert cli.main(["erase-guest", "--phone", "8 (912) 555 01 77"]) == 0
    out = capsys.readouterr().out
    assert "contacts" in out and "Olha" not in out and "555" not in out
    assert list(AmoContact.scan()) == [] and guest_of(60) == (None, None, None)
    assert cli.main(["erase-guest", "--phone", "+79125550177"]) == 1  # nobody left: 404
    assert "no guest" in capsys.readouterr().err


def test_erase_guest_lists_the_contacts_an_email_matches_and_erases_none(capsys):
    contact_row(700, email="Twin@Example.org")
    contact_row(701, email="twin@example.org ")
    assert cli.main(["erase-guest", "--email", "TWIN@example.org"]) == 1
    assert "700, 701" in capsys.readouterr().err
    assert {c.id for c in AmoContact.scan()} == {700, 701}
    assert cli.main(["erase-guest", "--email", "a@b.c", "--phone", "1"]) == 2


def test_also_in_amo_clears_name_phones_and_emails_with_one_patch(amo):
    store_tokens()
    contact_row(800)
    amo.patch(f"{HOST}/api/v4/contacts/800", json={"id": 800, "updated_at": 1}, headers=HAL)
    assert cli.main(["erase-guest", "--amo-contact-id", "800", "--also-in-amo"]) == 0
    [call] = [c for c in amo.calls if c.request.method == "PATCH"]
    assert json.loads(call.request.body) == {
        "name": personal_data.PLACEHOLDER_NAME,
        "first_name": "",
        "last_name": "",
        "custom_fields_values": [{"field_code": "PHONE", "values": None}, {"field_code": "EMAIL", "values": None}],
    }


# -- the events reader -------------------------------------------------------------------------------


def event(number, entity_id, type_="lead_deleted", created_at=1_800_000_000):
    return {"id": f"e{number:05d}", "type": type_, "entity_id": entity_id, "entity_type": type_.split("_")[0],
            "created_at": created_at, "value_after": [], "value_before": []}  # fmt: skip


def test_events_are_read_100_a_page_until_the_last_and_only_held_leads_are_asked_about(amo):
    store_tokens()
    fake = FakeAmo(amo)
    fake.events = [event(i, 5000 + i) for i in range(250)]  # none of them held here
    result = deletions.reconcile(wiring.amo().bulk(), now=1_800_000_100)
    pages = [url for url in fake.urls if "/api/v4/events" in url]
    assert len(pages) == 3 and all("limit=100" in url for url in pages)
    assert result["events"] == 250 and result["applied"] == {}
    assert [url for url in fake.urls if "/api/v4/leads" in url] == []
    assert SyncState.get("events").last_success_started_at == 1_800_000_100


def test_an_incremental_run_short_of_time_defers_the_events_log_and_keeps_its_cursor(amo):
    from chalicelib.services import pipelines, sync
    from tests import fixtures

    store_tokens()
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    fake = FakeAmo(amo)
    result = sync.sync_all(wiring.amo(), full=False, time_left=lambda: 5.0)
    assert result["deletes"]["status"] == "deferred"
    assert [url for url in fake.urls if "/api/v4/events" in url] == []
    with pytest.raises(SyncState.DoesNotExist):
        SyncState.get("events")


def test_redaction_replaces_the_full_name_the_phone_however_written_and_the_email():
    from chalicelib.services.erasure import Person

    person = Person()
    person.learn(name="Olha Kovalenko", phone="+7 912 555-01-77", email="olha.k@example.org")
    text = "Call Olha Kovalenko on +7 (912) 555-01-77 or 9125550177, mail OLHA.K@example.org; Olha said hi"
    assert person.redact(text) == "Call [erased] on [erased] or [erased], mail [erased]; Olha said hi"


def test_redaction_finds_a_phone_written_with_other_signs_or_a_leading_8_and_names_alone_on_own_tasks():
    from chalicelib.services.erasure import Person

    person = Person()
    person.learn(name="Anna Smith", phone="+7 999 123-45-67")
    assert person.redact("Smith, Anna: 89991234567") == "Smith, Anna: [erased]"
    assert person.redact("tel 999/123/45/67, order 19991234567890") == "tel [erased], order 19991234567890"
    assert person.redact("Call Smith re booking", name_parts=True) == "Call [erased] re booking"
    assert person.redact("Annapolis trip for Smithson", name_parts=True) == "Annapolis trip for Smithson"
    assert person.redact("Call Smith re booking") == "Call Smith re booking"  # someone else's task
    assert person.found_in("Smith called") and not person.found_in("a Smithson booking, whale watching")
    assert person.found_in("call 8 (999) 123-45-67") and person.found_in("999 123 45 67")
    assert not person.contact_values().found_in("Anna Petrova, a friend")
