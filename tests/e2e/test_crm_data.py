"""The sales team's data in amoCRM survives the service's writes (reference §5.3, §5.4, §13):
a contact update keeps the contact's other phones and e-mails, and a lead that amoCRM's duplicate
control merged into an existing one is reported as merged, not as new."""

import pytest


def exported(backend, entity):
    return {item["id"]: item for item in backend.sandbox("GET", f"/_sandbox/export/{entity}")[1][entity]}


def kinds(contact, code):
    field = next((f for f in contact["custom_fields_values"] or [] if f["field_code"] == code), None)
    return [(v["value"], v["enum_code"]) for v in field["values"]] if field else []


@pytest.fixture
def two_phone_contact(backend):
    """A sandbox contact with a work and a mobile phone and two e-mails."""
    return next(
        c
        for c in exported(backend, "contacts").values()
        if len(kinds(c, "PHONE")) == 2 and len(kinds(c, "EMAIL")) == 2
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
