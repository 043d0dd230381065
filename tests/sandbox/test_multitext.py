"""Phones and e-mails are multitext fields with several values (reference §5.3, §6, §13):
writing PHONE or EMAIL replaces the field's whole list, `values: null` clears it, and fields
that are not sent are kept. A client that sends only the new number loses the others; that is
why the service must read, merge and send the full list."""

from sandbox import seed


def field(contact, code):
    return next((f for f in contact["custom_fields_values"] or [] if f["field_code"] == code), None)


def kinds(contact, code):
    found = field(contact, code)
    return [(v["value"], v["enum_code"]) for v in found["values"]] if found else []


def test_the_seed_gives_some_contacts_a_work_and_a_mobile_phone_and_two_e_mails(sandbox):
    phones = [[e for _, e in kinds(c, "PHONE")] for c in sandbox.contacts.values()]
    emails = [[e for _, e in kinds(c, "EMAIL")] for c in sandbox.contacts.values()]
    assert sum(sorted(p) == ["MOB", "WORK"] for p in phones) >= 3
    assert sum(e == ["WORK", "PRIV"] for e in emails) >= 2
    assert sum(len(p) == 1 for p in phones) >= 3  # and the others one
    again = seed.build(seed.SeedSize(leads=30, contacts=12, tasks=10), sandbox.config.account_id)["contacts"]
    assert {i: c["custom_fields_values"] for i, c in again.items()} == {
        i: c["custom_fields_values"] for i, c in sandbox.contacts.items()
    }


def two_phone_contact(sandbox):
    return next(c for c in sandbox.contacts.values() if len(kinds(c, "PHONE")) == 2 and len(kinds(c, "EMAIL")) == 2)


def test_writing_only_a_new_work_phone_drops_the_mobile_one(sandbox, api):
    contact = two_phone_contact(sandbox)
    emails = kinds(contact, "EMAIL")
    change = [{"field_code": "PHONE", "values": [{"value": "+7 900 111 22 33", "enum_code": "WORK"}]}]
    assert api("PATCH", f"/api/v4/contacts/{contact['id']}", json={"custom_fields_values": change}).status_code == 200
    stored = api("GET", f"/api/v4/contacts/{contact['id']}").json()
    assert kinds(stored, "PHONE") == [("+7 900 111 22 33", "WORK")]  # the MOB number is gone
    assert kinds(stored, "EMAIL") == emails  # not sent, kept
    value = field(stored, "PHONE")["values"][0]
    assert value["enum_id"] == 193196  # amoCRM fills the enum id of the code


def test_sending_the_merged_list_keeps_every_number(sandbox, api):
    contact = two_phone_contact(sandbox)
    merged = [*field(contact, "PHONE")["values"], {"value": "+7 900 111 22 33", "enum_code": "WORK"}]
    api(
        "PATCH",
        "/api/v4/contacts",
        json=[
            {
                "id": contact["id"],
                "custom_fields_values": [
                    {"field_id": 264911, "values": merged}  # by field id, as a client holding the id may
                ],
            }
        ],
    )
    stored = api("GET", f"/api/v4/contacts/{contact['id']}").json()
    assert len(kinds(stored, "PHONE")) == 3 and field(stored, "PHONE")["field_code"] == "PHONE"


def test_values_null_clears_a_field_and_keeps_the_others(sandbox, api):
    contact = two_phone_contact(sandbox)
    api(
        "PATCH",
        f"/api/v4/contacts/{contact['id']}",
        json={"custom_fields_values": [{"field_code": "EMAIL", "values": None}]},
    )
    stored = api("GET", f"/api/v4/contacts/{contact['id']}").json()
    assert field(stored, "EMAIL") is None and len(kinds(stored, "PHONE")) == 2


def test_a_new_contact_posted_with_one_e_mail_has_only_that_one(api):
    created = api(
        "POST",
        "/api/v4/contacts",
        json=[{"name": "Нова", "custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "a@b.c"}]}]}],
    ).json()["_embedded"]["contacts"][0]
    stored = api("GET", f"/api/v4/contacts/{created['id']}").json()
    assert kinds(stored, "EMAIL") == [("a@b.c", "WORK")]
