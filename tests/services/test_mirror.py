"""mirror: changed-only batch upserts that never replace a newer amoCRM version, new items written from
their serialised form exactly as the model would store them, and scan paging."""

import pytest
from pynamodb.exceptions import AttributeNullError

from chalicelib.amo.contacts import read_contact
from chalicelib.amo.leads import read_lead
from chalicelib.models import AmoContact, Lead, utc_now
from chalicelib.services import contacts, leads, mirror
from chalicelib.services.guests import Guest
from chalicelib.services.lead_status import StageMapping
from tests.fixtures import contact, lead

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def item(contact_id, name, updated_at):
    return contacts.to_item(read_contact(contact(contact_id, name=name, updated_at=updated_at)))


def test_read_all_keeps_good_objects_and_reports_bad_ones_by_id():
    infos, errors = mirror.read_all([contact(1), {"id": "x"}, "junk", contact(2)], read_contact)
    assert [i.id for i in infos] == [1, 2]
    assert errors == [
        {"id": "x", "message": "contact has no integer id"},
        {"id": None, "message": "contact has no integer id"},
    ]


def test_new_items_are_written_and_unchanged_ones_are_not():
    written = mirror.upsert_changed(
        AmoContact, items=[item(1, "Anna", 100), item(2, "Boris", 100)], fields=contacts.FIELDS
    ).written
    assert [(old, new.id) for old, new in written] == [(None, 1), (None, 2)]
    first_write = AmoContact.get(1).updated_at

    again = mirror.upsert_changed(
        AmoContact, items=[item(1, "Anna", 100), item(2, "Borys", 101)], fields=contacts.FIELDS
    ).written

    assert [new.id for _, new in again] == [2]
    assert again[0][0].name == "Boris"  # the previous version is handed back
    assert AmoContact.get(1).updated_at == first_write and AmoContact.get(2).name == "Borys"


def test_an_older_amocrm_version_never_replaces_a_newer_one():
    mirror.upsert_changed(AmoContact, items=[item(1, "New", 200)], fields=contacts.FIELDS)
    assert mirror.upsert_changed(AmoContact, items=[item(1, "Old", 150)], fields=contacts.FIELDS).written == []
    assert AmoContact.get(1).name == "New"


def test_batch_get_reads_more_than_one_call_s_worth_of_keys():
    mirror.upsert_changed(AmoContact, items=[item(i, f"C{i}", 1) for i in range(1, 251)], fields=contacts.FIELDS)
    found = mirror.batch_get(AmoContact, list(range(1, 260)) + [5, 5])
    assert sorted(found) == list(range(1, 251))


def test_page_of_scan_pages_with_an_opaque_cursor_until_the_end():
    mirror.upsert_changed(AmoContact, items=[item(i, f"C{i}", 1) for i in range(1, 8)], fields=contacts.FIELDS)
    seen, cursor = [], None
    while True:
        page = mirror.page_of_scan(
            lambda start, n: AmoContact.scan(limit=n, last_evaluated_key=start),
            keys=mirror.key_schema(AmoContact),
            limit=3,
            cursor=cursor,
            render=lambda c: c.id,
        )
        seen.extend(page["data"])
        assert page["count"] == len(page["data"]) <= 3
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert sorted(seen) == list(range(1, 8))


def test_a_serialised_item_is_exactly_what_the_model_would_store():
    now = utc_now()
    guest = Guest("Олена", "+380501112233", None)
    cases = [
        (
            Lead,
            leads.values(
                read_lead(lead(7, contact_ids=(5,))), contact=guest, mapping=StageMapping("IN_PROGRESS"), existing=None
            ),
        ),
        (
            Lead,
            leads.values(
                read_lead(lead(8, price=None, custom_fields=[{"field_id": 1}])),
                contact=None,
                mapping=None,
                existing=None,
            ),
        ),
        (Lead, {"id": "x", "amo_lead_id": 9, "price": 12.5}),  # status left to its default
        (AmoContact, contacts.values(read_contact(contact(5, phone=None)))),
    ]
    for model, values in cases:
        values = {**values, "created_at": now, "updated_at": now}
        assert mirror.Serializer(model)(values) == model(**values).serialize()


def test_a_serialised_item_without_a_required_attribute_is_refused_as_the_model_would():
    with pytest.raises(AttributeNullError):
        mirror.Serializer(AmoContact)({"id": 1, "name": None})


def test_new_items_put_from_their_serialised_form_are_stored_and_one_dynamodb_refuses_is_reported():
    serialize = mirror.Serializer(AmoContact)
    names = {i: f"C{i}" for i in range(1, 31)}
    names[17] = "x" * 500_000  # over DynamoDB's 400 KB: the whole batch is refused
    items = [(i, serialize({"id": i, "name": name, "amo_updated_at": 1})) for i, name in names.items()]

    errors = mirror.put_new(AmoContact, items).errors

    assert [e["id"] for e in errors] == [17] and "refused" in errors[0]["message"]
    assert sorted(c.id for c in AmoContact.scan()) == [i for i in names if i != 17]
    assert AmoContact.get(3).name == "C3"


def test_stored_items_are_read_as_dynamodb_holds_them_and_unprocessed_keys_are_asked_again(monkeypatch):
    mirror.upsert_changed(AmoContact, items=[item(i, f"C{i}", 1) for i in range(1, 151)], fields=contacts.FIELDS)
    connection = AmoContact._get_connection()
    real, asked = connection.batch_get_item, []

    def first_answer_leaves_one_key(keys, **kwargs):
        asked.append(len(keys))
        answer = real(keys, **kwargs)
        if len(asked) == 1:  # DynamoDB may leave keys unprocessed: they come back with the answer
            table = AmoContact.Meta.table_name
            left = answer["Responses"][table].pop()
            answer["UnprocessedKeys"] = {table: {"Keys": [{"id": left["id"]}]}}
        return answer

    monkeypatch.setattr(connection, "batch_get_item", first_answer_leaves_one_key)

    found = mirror.batch_get_items(AmoContact, [*range(1, 160), 5])

    assert asked == [100, 1, 59]
    assert sorted(found) == list(range(1, 151))
    assert found[7] == AmoContact.get(7).serialize()


def test_stored_and_new_items_are_the_same_only_when_every_compared_value_is():
    names = mirror.attribute_names(AmoContact, ["name", "phone"])
    stored = {"id": {"N": "1"}, "name": {"S": "Anna"}, "updated_at": {"S": "2026"}}
    assert mirror.same_items(stored, {"id": {"N": "1"}, "name": {"S": "Anna"}}, names)
    assert not mirror.same_items(stored, {"name": {"S": "Anna"}, "phone": {"S": "+7"}}, names)
    assert not mirror.same_items(stored, {"name": {"S": "Anne"}}, names)
    assert mirror.text(stored, "name") == "Anna" and mirror.text(stored, "phone") is None


def test_a_new_item_someone_stored_meanwhile_is_not_overwritten_but_reported_taken():
    """Regression (issue 23): the sync put the leads it believed new without a condition, so a
    webhook that stored one between the sync's read and its write was overwritten."""
    serialize = mirror.Serializer(AmoContact)
    AmoContact(id=7, name="from the webhook", amo_updated_at=5).save()
    items = [(i, serialize({"id": i, "name": f"C{i}", "amo_updated_at": 1})) for i in range(1, 131)]

    created = mirror.put_new(AmoContact, items)

    assert created.taken == [7] and created.errors == []
    assert AmoContact.get(7).name == "from the webhook"
    assert AmoContact.count() == 130 and AmoContact.get(130).name == "C130"


def test_a_new_model_someone_stored_meanwhile_becomes_a_conflict_of_the_upsert():
    AmoContact(id=8, name="from the webhook", amo_updated_at=5).save()
    result = mirror.upsert_changed(
        AmoContact, items=[item(8, "from the sync", 1), item(9, "C9", 1)], fields=contacts.FIELDS, stored={}
    )
    assert [c.id for c in result.conflicts] == [8] and [new.id for _, new in result.written] == [9]
    assert AmoContact.get(8).name == "from the webhook"
