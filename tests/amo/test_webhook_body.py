"""The webhook body parser: amoCRM's form bodies (PHP bracket keys, legacy names, strings) and
JSON of the same shape become events; hostile bodies become MalformedWebhook, never a crash."""

import json

import pytest

from chalicelib.amo.webhook_body import (
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
    data = decode_body(wb.encode(wb.lead_status(17657, 142, 3177727, 1700000300, 58141807) + wb.account()), FORM)
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
    )
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
        ("&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)), FORM),
        ("leads" + "[a]" * 5000 + "=1", FORM),
        ("[" * 100_000 + "]" * 100_000, "application/json"),
        (json.dumps({"leads": {"add": [{"id": 1, "x": [[[[[[[[[[1]]]]]]]]]]}]}}), "application/json"),
        ("leads[add][0]=1&leads[add][0][id]=2", FORM),
        ("not json", "application/json"),
        ("", FORM),
        ("x" * 1_000_001, FORM),
    ],
)
def test_hostile_bodies_are_malformed_not_a_crash(body, content_type):
    with pytest.raises(MalformedWebhook):
        decode_body(body, content_type)


def test_an_infinite_or_huge_account_id_is_no_account():
    assert account_id_of({"account": {"id": float("inf")}}) is None
    assert account_id_of({"account": {"id": "9" * 5000}}) is None
    assert account_id_of({"account": "x"}) is None


def test_blocks_that_are_not_events_are_reported_not_raised():
    events, problems = events_of({"leads": "x", "contacts": {"add": []}, "account": {"id": "1"}})
    assert events == [] and problems == ["leads: not an entity block", "contacts[add]: no items"]
