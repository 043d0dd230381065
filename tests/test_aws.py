"""aws: DynamoDB requests go out exactly as botocore's own serializer would write them, without
its walk over every value when the parameters are plain JSON."""

import json
from datetime import UTC, datetime

import pytest
from botocore.serialize import JSONSerializer

from chalicelib import aws
from chalicelib.models import AmoContact, Lead, RateBudget

ITEM = {
    "id": {"S": "6f1c9a52-3d0e-4c55-9d0b-6b7e4c1d2a10"},
    "amo_lead_id": {"N": "12345"},
    "guest_name": {"S": 'Анна «Ж» "quoted" \\ \u2028'},
    "custom_fields": {"S": json.dumps([{"field_id": 1, "values": [{"value": "x"}]}])},
    "flag": {"BOOL": True},
    "gone": {"NULL": True},
    "tags": {"SS": ["a", "b"]},
    "nested": {"M": {"list": {"L": [{"N": "1.5"}, {"S": ""}]}}},
}
PLAIN = {
    "BatchWriteItem": {"RequestItems": {"t": [{"PutRequest": {"Item": ITEM}}] * 3}, "ReturnConsumedCapacity": "TOTAL"},
    "BatchGetItem": {"RequestItems": {"t": {"Keys": [{"id": {"S": "a"}}, {"id": {"S": "b"}}], "ConsistentRead": True}}},
    "UpdateItem": {
        "TableName": "t",
        "Key": {"key": {"S": "block#1"}},
        "UpdateExpression": "SET #0 = if_not_exists(#0, :0) + :1",
        "ConditionExpression": "attribute_not_exists (#1)",
        "ExpressionAttributeNames": {"#0": "g", "#1": "paused_until"},
        "ExpressionAttributeValues": {":0": {"N": "0"}, ":1": {"N": "2"}},
        "ReturnValues": "ALL_NEW",
    },
    "Scan": {"TableName": "t", "Limit": 10, "ExclusiveStartKey": {"id": {"S": "a"}}},
}


def both(operation: str, parameters: dict) -> tuple[dict, dict]:
    model = Lead._get_connection().connection.client.meta.service_model.operation_model(operation)
    botocores = JSONSerializer()
    return aws.JsonAsGiven(botocores).serialize_to_request(parameters, model), botocores.serialize_to_request(
        parameters, model
    )


@pytest.mark.parametrize("operation", sorted(PLAIN))
def test_plain_parameters_are_sent_byte_for_byte_as_botocore_sends_them(operation):
    given, botocores = both(operation, PLAIN[operation])
    assert given == botocores


def test_a_binary_value_goes_through_botocore_which_base64_encodes_it():
    parameters = {"TableName": "t", "Item": {"id": {"S": "a"}, "blob": {"B": b"\x00\xff"}}}
    given, botocores = both("PutItem", parameters)
    assert given == botocores
    assert json.loads(given["body"])["Item"]["blob"] == {"B": "AP8="}


def test_an_operation_with_timestamps_in_its_input_goes_through_botocore_which_converts_them():
    parameters = {"SourceTableName": "s", "TargetTableName": "t", "RestoreDateTime": "2026-01-02T00:00:00Z"}
    given, botocores = both("RestoreTableToPointInTime", parameters)
    assert given == botocores
    assert json.loads(given["body"])["RestoreDateTime"] == datetime(2026, 1, 2, tzinfo=UTC).timestamp()


def test_every_model_s_client_sends_as_given_and_writes_what_it_reads_back():
    for model in (Lead, AmoContact, RateBudget):
        assert isinstance(model._get_connection().connection.client._serializer, aws.JsonAsGiven)
    lead = Lead(id="x", amo_lead_id=7, guest_name=ITEM["guest_name"]["S"], custom_fields=[{"a": [1, None]}])
    lead.save()
    assert Lead.get("x").attribute_values == lead.attribute_values
