"""The webhook body parser: amoCRM's form bodies (PHP bracket keys, legacy names, strings) and
JSON of the same shape become events; no part of a body fails the whole of it (reference §9.1,
§9.5: every non-2xx answer counts towards disabling the hook), and only a body that is empty or
not an object at all is MalformedWebhook, never a crash."""

import json

import pytest

from chalicelib.amo.webhook_body import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_FIELDS,
    MalformedWebhook,
    account_id_of,
    decode_body,
    events_of,
    parse_nested_form,
    strict_int,
)
from tests import webhook_bodies as wb
from tests.fixtures import ACCOUNT_ID

FORM = "application/x-www-form-urlencoded"


def test_a_real_status_body_becomes_one_event_with_amocrm_s_fields():
    decoded = decode_body(wb.encode(wb.lead_status(17657, 142, 3177727, 1700000300, 58141807) + wb.account()), FORM)
    assert decoded.notes == [] and not decoded.partial
    data = decoded.data
    events, problems = events_of(data)
    assert problems == [] and len(events) == 1
    event = events[0]
    assert (event.entity, event.action, event.entity_id) == ("leads", "status", 17657)
    assert (event.number("status_id"), event.number("old_status_id"), event.changed_at) == (142, 58141807, 1700000300)
    assert event.item["custom_fields"][0]["values"][0]["value"] == "PROP-1042"
    assert account_id_of(data) == ACCOUNT_ID


def test_runs_of_numeric_keys_become_lists_and_several_entities_share_a_body():
    data = parse_nested_form("leads[add][0][id]=1&leads[add][1][id]=2&task[delete][0][id]=9&account[id]=5")
    events, _ = events_of(data)
    assert [(e.entity, e.action, e.entity_id) for e in events] == [
        ("leads", "add", 1),
        ("leads", "add", 2),
        ("tasks", "delete", 9),
    ]


def test_json_of_the_same_shape_is_accepted():
    data = decode_body(
        json.dumps(
            {"leads": {"update": [{"id": "7", "updated_at": "1700000000"}]}, "account": {"id": str(ACCOUNT_ID)}}
        ),
        "application/json",
    ).data
    assert events_of(data)[0][0].entity_id == 7 and account_id_of(data) == ACCOUNT_ID


@pytest.mark.parametrize(
    "value",
    [
        "١٧٦٥٧",
        "1_7657",
        " 17657",
        "17657 ",
        "+17657",
        "1e5",
        "17657.0",
        "0x10",
        float("inf"),
        1e400,
        1.5,
        True,
        "9" * 5000,
        2**60,
        None,
        "",
    ],
)
def test_only_ascii_digits_within_2_53_are_numbers(value):
    assert strict_int(value) is None


def test_the_same_change_spelled_differently_is_one_event_or_no_event():
    plain = events_of(parse_nested_form("leads[update][0][id]=17657&leads[update][0][updated_at]=1700000000"))[0]
    for spelled in ("%20" + "17657", "1_7657", "%D9%A1%D9%A7%D9%A6%D9%A5%D9%A7"):
        other = events_of(parse_nested_form(f"leads[update][0][id]={spelled}&leads[update][0][updated_at]=1700000000"))[
            0
        ]
        assert other[0].entity_id is None and other[0].event_id != plain[0].event_id
    again = events_of(parse_nested_form("leads[update][0][updated_at]=1700000000&leads[update][0][id]=17657"))[0]
    assert again[0].event_id == plain[0].event_id


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("[" * 100_000 + "]" * 100_000, "application/json"),
        ("not json", "application/json"),
        ('["a list"]', "application/json"),
        ("", FORM),
    ],
)
def test_only_bodies_that_are_empty_or_not_an_object_are_malformed_never_a_crash(body, content_type):
    with pytest.raises(MalformedWebhook):
        decode_body(body, content_type)


def status_pairs(lead_id=17657):
    return wb.lead_status(lead_id, 142, 3177727, 1700000300, 58141807)


def test_a_nine_level_key_does_not_make_an_unrelated_status_event_disappear():
    deep = [("contacts[update][0][custom_fields][0][values][0][value][extra]", "x"), ("contacts[update][0][id]", "5")]
    decoded = decode_body(wb.encode(status_pairs() + deep + wb.account()), FORM)
    events, problems = events_of(decoded.data)
    found = [(e.entity, e.action, e.entity_id) for e in events]
    assert found == [("leads", "status", 17657), ("contacts", "update", 5)]
    assert events[0].number("status_id") == 142 and problems == []
    # the over-deep key keeps its first levels and becomes one string leaf named by the rest
    field = events[1].item["custom_fields"][0]["values"][0]
    assert field == {"value[extra]": "x"}


def test_a_key_five_thousand_levels_deep_is_one_leaf_not_a_lost_body():
    decoded = decode_body("leads" + "[a]" * 5000 + "=1&" + wb.encode(status_pairs() + wb.account()), FORM)
    events, _ = events_of(decoded.data)
    assert [(e.entity, e.action, e.entity_id) for e in events] == [("leads", "a", None), ("leads", "status", 17657)]
    node = decoded.data["leads"]
    for _ in range(MAX_DEPTH - 2):
        node = node["a"]
    assert node == {"a" + "[a]" * (5000 - MAX_DEPTH + 1): "1"}


def test_a_key_that_is_both_a_value_and_a_group_is_dropped_alone():
    decoded = decode_body("leads[add][0]=1&leads[add][0][id]=2&" + wb.encode(status_pairs() + wb.account()), FORM)
    events, _ = events_of(decoded.data)
    assert ("leads", "status", 17657) in [(e.entity, e.action, e.entity_id) for e in events]
    assert decoded.notes == ["key 'leads[add][0][id]' is both a value and a group: dropped"]


def test_json_nested_deeper_than_the_limit_keeps_the_deep_part_as_a_string():
    body = {"leads": {"add": [{"id": "1", "x": [[[[[[[[[[1]]]]]]]]]]}]}, "account": {"id": str(ACCOUNT_ID)}}
    decoded = decode_body(json.dumps(body), "application/json")
    events, _ = events_of(decoded.data)
    assert events[0].entity_id == 1 and isinstance(events[0].item["x"][0][0][0][0], str)
    assert decoded.notes == [f"values nested deeper than {MAX_DEPTH} levels are kept as strings"]


def big_body(items: int, *, field_size: int = 0) -> str:
    """A delivery with many leads: each a full `leads[update]` item with a custom field."""
    pairs = []
    for n in range(items):
        pairs += wb.lead_item(f"leads[update][{n}]", 20000 + n, 58141807, 3177727, 1700000000 + n)
        pairs.append((f"leads[update][{n}][custom_fields][1][values][0][value]", "x" * field_size))
    pairs += status_pairs(17657) + wb.account()
    return wb.encode(pairs)


def test_past_the_byte_limit_every_item_s_id_and_stage_is_still_read():
    body = big_body(300, field_size=4000)
    assert len(body) > MAX_BODY_BYTES
    decoded = decode_body(body, FORM)
    events, problems = events_of(decoded.data)
    assert decoded.partial and "only each item's own fields were read" in decoded.notes[0]
    assert problems == [] and account_id_of(decoded.data) == ACCOUNT_ID
    assert sorted(e.entity_id for e in events if e.action == "update") == list(range(20000, 20300))
    status = next(e for e in events if e.action == "status")
    assert (status.entity_id, status.number("status_id"), status.number("pipeline_id")) == (17657, 142, 3177727)
    assert status.changed_at == 1700000300 and "custom_fields" not in status.item


def test_past_the_field_limit_every_item_is_still_read():
    body = big_body(MAX_FIELDS // 16 + 10)
    assert body.count("&") >= MAX_FIELDS
    decoded = decode_body(body, FORM)
    events, _ = events_of(decoded.data)
    assert decoded.partial and len(events) == MAX_FIELDS // 16 + 11


def test_lead_is_an_alias_of_leads_as_kommo_s_robot_page_writes_it():
    data = parse_nested_form("lead[status][0][id]=17657&lead[status][0][status_id]=142&lead[status][0][pipeline_id]=3")
    events, problems = events_of(data)
    assert problems == [] and [(e.entity, e.action, e.entity_id) for e in events] == [("leads", "status", 17657)]
    assert events[0].is_compact


def test_an_infinite_or_huge_account_id_is_no_account():
    assert account_id_of({"account": {"id": float("inf")}}) is None
    assert account_id_of({"account": {"id": "9" * 5000}}) is None
    assert account_id_of({"account": "x"}) is None


def test_blocks_that_are_not_events_are_reported_not_raised():
    events, problems = events_of({"leads": "x", "contacts": {"add": []}, "account": {"id": "1"}})
    assert events == [] and problems == ["leads: not an entity block", "contacts[add]: no items"]
