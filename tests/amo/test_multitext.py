"""Phones and e-mails of a contact update are merged into the list amoCRM holds (reference §5.3):
amoCRM replaces a multitext field's whole list, so what is sent must be the full list."""

from chalicelib.amo.contacts import contact_changes
from chalicelib.amo.multitext import merged, normalised


def held(*values):
    return [{"value": v, "enum_id": 100 + i, "enum_code": code} for i, (v, code) in enumerate(values)]


def current(phones=(), emails=(), **scalars):
    fields = []
    if phones:
        fields.append({"field_id": 1, "field_code": "PHONE", "field_type": "multitext", "values": held(*phones)})
    if emails:
        fields.append({"field_id": 2, "field_code": "EMAIL", "field_type": "multitext", "values": held(*emails)})
    return {"id": 5, "name": "Олена", "custom_fields_values": fields or None, **scalars}


def test_a_new_phone_replaces_the_first_and_keeps_every_other_number_with_its_enum():
    values = merged(held(("+380 50 111 22 33", "WORK"), ("+380 67 000 00 01", "MOB")), "PHONE", "+380 63 999 88 77")
    assert values == [
        {"value": "+380 63 999 88 77", "enum_id": 100, "enum_code": "WORK"},
        {"value": "+380 67 000 00 01", "enum_id": 101, "enum_code": "MOB"},
    ]


def test_a_phone_on_a_contact_without_one_is_added_as_work():
    assert merged([], "PHONE", "+1 555 0100") == [{"value": "+1 555 0100", "enum_code": "WORK"}]


def test_the_same_number_differently_written_is_no_change():
    assert normalised("PHONE", "+380 (50) 111-22-33") == "380501112233"
    assert merged(held(("+380501112233", "MOB"), ("+1", "HOME")), "PHONE", "+380 (50) 111-22-33") is None
    assert merged(held(("Olena@Example.UA", "WORK")), "EMAIL", " olena@example.ua") is None


def test_a_number_the_contact_already_has_moves_first_once_with_its_own_enum():
    values = merged(held(("+1 555 0100", "WORK"), ("+1 555 0199", "MOB"), ("+1 555 0199", "HOME")), "PHONE", "15550199")
    assert values == [{"value": "15550199", "enum_id": 101, "enum_code": "MOB"}]


def test_only_the_fields_that_change_are_sent():
    contact = current(phones=[("+1", "WORK"), ("+2", "MOB")], emails=[("a@b.c", "WORK"), ("p@b.c", "PRIV")])
    assert contact_changes(contact, {"name": "Олена", "phone": "+1", "email": "A@B.C"}) == {}
    body = contact_changes(contact, {"name": "Олена К.", "email": "new@b.c"})
    assert body == {
        "name": "Олена К.",
        "custom_fields_values": [
            {
                "field_code": "EMAIL",
                "values": [
                    {"value": "new@b.c", "enum_id": 100, "enum_code": "WORK"},
                    {"value": "p@b.c", "enum_id": 101, "enum_code": "PRIV"},
                ],
            }
        ],
    }


def test_a_phone_written_without_digits_is_a_value_like_any_other():
    """Kept when it is not the first; replaced when it is (the mirror shows it as the phone)."""
    values = merged(
        held(("+1 555 0100", "WORK"), ("по WhatsApp", "OTHER"), ("+1 555 0199", "MOB")), "PHONE", "+1 555 0142"
    )
    assert values == [
        {"value": "+1 555 0142", "enum_id": 100, "enum_code": "WORK"},
        {"value": "по WhatsApp", "enum_id": 101, "enum_code": "OTHER"},
        {"value": "+1 555 0199", "enum_id": 102, "enum_code": "MOB"},
    ]
    assert merged(held(("по WhatsApp", "OTHER"), ("+1 555 0100", "WORK")), "PHONE", "+1 555 0142") == [
        {"value": "+1 555 0142", "enum_id": 100, "enum_code": "OTHER"},
        {"value": "+1 555 0100", "enum_id": 101, "enum_code": "WORK"},
    ]
    assert merged(held(("+1 555 0100", "WORK"), ("по WhatsApp", "OTHER")), "PHONE", "по Telegram") == [
        {"value": "по Telegram", "enum_id": 100, "enum_code": "WORK"},
        {"value": "по WhatsApp", "enum_id": 101, "enum_code": "OTHER"},
    ]
