"""The edge's input checks (chalicelib/validation.py over chalicelib/schemas.py), without HTTP."""

import math
import time

import pytest

from chalicelib import schemas, validation
from chalicelib.schemas import MAX_DEPTH, MAX_ID
from chalicelib.services.errors import InvalidInput

FIVE_THOUSAND_DIGITS = "9" * 5000


def nested(depth: int, leaf=1):
    """A value `depth` containers deep, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def rejected(call, *args, **kwargs) -> str:
    with pytest.raises(InvalidInput) as raised:
        call(*args, **kwargs)
    return str(raised.value)


# -- integers from query strings and paths -------------------------------------------------------


@pytest.mark.parametrize("raw", ["١٧٦٥٧", "1_7657", " 17657", "17657 ", "+17657", "-1", "1.0", "1e3", "²", "0x10"])
def test_only_ascii_digits_make_an_integer_parameter(raw):
    assert "limit" in rejected(validation.query_int, {"limit": raw}, name="limit", default=50)
    assert "stageId must be a positive integer" in rejected(validation.path_int, raw, "stageId")


def test_a_five_thousand_digit_parameter_is_refused_before_it_is_converted():
    started = time.perf_counter()
    assert "limit must be between 1 and 1000" in rejected(validation.page_params, {"limit": FIVE_THOUSAND_DIGITS})
    assert "limit must be between 0 and" in rejected(
        validation.query_int, {"limit": FIVE_THOUSAND_DIGITS}, name="limit", default=50
    )
    assert "must be a positive integer" in rejected(validation.path_int, FIVE_THOUSAND_DIGITS, "amoLeadId")
    assert "entity_id" in rejected(validation.task_filters, {"entity_type": "leads", "entity_id": FIVE_THOUSAND_DIGITS})
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("raw,accepted", [(str(MAX_ID), True), (str(MAX_ID + 1), False), ("0" * 30 + "7", True)])
def test_ids_stop_below_2_to_the_53(raw, accepted):
    if accepted:
        assert validation.path_int(raw, "id") == int(raw)
    else:
        assert "below 2^53" in rejected(validation.path_int, raw, "id")


def test_unbounded_query_integers_are_still_bounded():
    assert validation.query_int({"limit": str(MAX_ID)}, name="limit", default=50) == MAX_ID
    assert "limit must be between 0 and" in rejected(
        validation.query_int, {"limit": str(MAX_ID + 1)}, name="limit", default=50
    )


# -- integers in JSON bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1.5, "7", True, [7], 2**53, 10**40])
def test_json_ids_are_integers_within_range(value):
    assert rejected(validation.lead_data, {"pipeline_id": value}).startswith("leadData.pipeline_id must be a ")


def test_a_json_number_with_no_fraction_is_that_integer():
    assert validation.lead_data({"price": 3200.0, "status_id": 142})["price"] == 3200
    assert validation.integer({"leadId": 5.0}, field="leadId", minimum=1) == 5


def test_integer_fields_are_bounded_even_without_a_maximum():
    assert "expires_in must be between 1 and" in rejected(
        validation.integer, {"expires_in": 10**40}, field="expires_in", minimum=1
    )


# -- whole bodies: depth and numbers anywhere ----------------------------------------------------


def test_a_body_nests_at_most_max_depth_levels():
    assert validation.body_object(nested(MAX_DEPTH)) == nested(MAX_DEPTH)
    assert "nested too deeply" in rejected(validation.body_object, nested(MAX_DEPTH + 1))


def test_a_very_deep_value_is_refused_without_exhausting_the_stack():
    assert "lead is nested too deeply" in rejected(validation.body_object, nested(200_000), "lead")


@pytest.mark.parametrize(
    "number",
    [math.inf, -math.inf, math.nan, 1e300, 2**53, -(2**53), 10**4000],
    ids=["inf", "-inf", "nan", "1e300", "2^53", "-2^53", "10^4000"],
)
def test_numbers_anywhere_in_a_body_are_finite_and_within_2_to_the_53(number):
    body = {"lead": {"custom_fields_values": [{"values": [{"value": number}]}]}}
    message = rejected(validation.body_object, body)
    assert message.startswith("lead.custom_fields_values[0].values[0].value must be a finite number")


def test_ordinary_numbers_pass_through_untouched():
    body = {"lead": {"id": MAX_ID, "price": -MAX_ID, "ratio": 0.25, "flag": True}}
    assert validation.body_object(body) is body


# -- strings, fractions, enums -------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["٠.٥", "0.2_5", " 0.5", "nan", "inf", "1e-1", "0.5x", "."])
def test_fractions_written_as_strings_take_ascii_decimals_only(raw):
    assert "minConfidence must be a number between 0 and 1" in rejected(
        validation.fraction, {"minConfidence": raw}, "minConfidence", 0.6
    )


@pytest.mark.parametrize("value,expected", [("0.75", 0.75), (".5", 0.5), (1, 1.0), (None, 0.6), ("", 0.6)])
def test_fractions_accept_numbers_and_decimal_strings(value, expected):
    assert validation.fraction({"minConfidence": value}, "minConfidence", 0.6) == expected


def test_empty_and_null_strings_are_not_given():
    assert validation.string({"state": ""}, field="state", required=False) is None
    assert validation.string({"state": None}, field="state", required=False) is None
    assert "login is required" in rejected(validation.string, {"login": ""}, field="login")


# -- objects -------------------------------------------------------------------------------------


def test_a_contact_needs_some_name():
    assert "contact.name is required (or first_name or last_name)" in rejected(
        validation.contact_data, {"name": " ", "first_name": None, "phone": "+380"}
    )
    assert validation.contact_data({"last_name": "Коваленко"}) == {"last_name": "Коваленко"}


def test_fields_not_given_are_dropped_and_unknown_ones_kept():
    cleaned = validation.lead_data({"name": "", "price": None, "custom_fields_values": [{"field_id": 1}], "x": 1})
    assert cleaned == {"custom_fields_values": [{"field_id": 1}], "x": 1}


def test_task_entity_id_and_type_go_together():
    base = {"text": "Позвонить", "complete_till": 1700000000}
    assert "entity_id and entity_type go together" in rejected(validation.task_data, {**base, "entity_id": 5})
    assert "entity_id and entity_type go together" in rejected(validation.task_data, {**base, "entity_type": "leads"})
    assert validation.task_data({**base, "entity_id": 5, "entity_type": "leads"})["entity_id"] == 5


def test_every_body_spec_is_valid_json_schema():
    from jsonschema import Draft202012Validator

    for spec in schemas.BODIES.values():
        Draft202012Validator.check_schema(spec.json_schema())
