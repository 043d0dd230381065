"""aws: DynamoDB requests go out exactly as botocore's own serializer would write them, without
its walk over every value when the parameters are plain JSON."""

import json
from datetime import UTC, datetime

import pytest
from botocore.parsers import JSONParser
from botocore.serialize import JSONSerializer

from chalicelib import aws
from chalicelib.models import AmoContact, Lead, RateBudget

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

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


def test_every_model_s_client_sends_as_given_reads_as_received_and_reads_back_what_it_wrote(monkeypatch):
    for model in (Lead, AmoContact, RateBudget):
        assert isinstance(model._get_connection().connection.client._serializer, aws.JsonAsGiven)
    lead = Lead(id="x", amo_lead_id=7, guest_name=ITEM["guest_name"]["S"], custom_fields=[{"a": [1, None]}])
    lead.save()
    walked = []
    real_walk = JSONParser._parse_shape
    monkeypatch.setattr(
        JSONParser, "_parse_shape", lambda self, shape, node: walked.append(shape) or real_walk(self, shape, node)
    )

    assert Lead.get("x").attribute_values == lead.attribute_values
    assert len(walked) == 1  # botocore walked only the empty body it was handed, not the item


STORED = {"id": {"S": "a"}, "n": {"N": "12"}, "tags": {"SS": ["x"]}, "nums": {"NS": ["1", "2.5"]}, **ITEM}
ANSWERS = {
    "BatchGetItem": {
        "Responses": {"t": [STORED, {"id": {"S": "b"}}]},
        "UnprocessedKeys": {},
        "ConsumedCapacity": [{"TableName": "t", "CapacityUnits": 1.5}],
    },
    "Query": {"Items": [STORED], "Count": 1, "ScannedCount": 1, "LastEvaluatedKey": {"id": {"S": "a"}}},
    "UpdateItem": {"Attributes": {"g": {"N": "3"}}},
    "BatchWriteItem": {"UnprocessedItems": {}, "ConsumedCapacity": [{"TableName": "t", "CapacityUnits": 25.0}]},
}


def parsed_both_ways(operation: str, body: bytes, status: int = 200) -> tuple[dict, dict, bytes]:
    model = Lead._get_connection().connection.client.meta.service_model.operation_model(operation)
    response = {"status_code": status, "headers": {"x-amzn-RequestId": "r-1"}, "body": body, "context": {}}
    customized: dict = {}
    handed = dict(response)
    aws.parse_as_received(model, handed, customized)
    received = JSONParser().parse(handed, model.output_shape)
    received.update(customized)
    return received, JSONParser().parse(response, model.output_shape), handed["body"]


@pytest.mark.parametrize("operation", sorted(ANSWERS))
def test_plain_answers_are_read_as_botocore_reads_them_without_its_walk(operation):
    received, botocores, body_left = parsed_both_ways(operation, json.dumps(ANSWERS[operation]).encode())
    assert received == botocores
    assert body_left == b""  # botocore's parser had nothing left to walk


def test_an_answer_with_a_binary_value_is_left_to_botocore_which_decodes_it():
    answer = {"Item": {"id": {"S": "a"}, "blob": {"B": "AP8="}}}
    received, botocores, body_left = parsed_both_ways("GetItem", json.dumps(answer).encode())
    assert received == botocores and received["Item"]["blob"] == {"B": b"\x00\xff"}
    assert body_left != b""


def test_answers_with_timestamps_and_errors_are_left_to_botocore():
    table = {"Table": {"TableName": "t", "CreationDateTime": 1767225600.0}}
    received, botocores, body_left = parsed_both_ways("DescribeTable", json.dumps(table).encode())
    assert received == botocores and body_left != b""
    refused = {"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": "too big"}
    received, botocores, body_left = parsed_both_ways("PutItem", json.dumps(refused).encode(), status=400)
    assert received == botocores and received["Error"]["Code"] == "ValidationException" and body_left != b""
