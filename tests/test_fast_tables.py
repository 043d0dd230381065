"""The benchmark's fast DynamoDB stand-in (scripts/fast_tables.py) in front of the moto server,
over HTTP on this machine, through boto3 as the service's code reaches it."""

import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from sandbox.server import POLL_SECONDS
from scripts.atomic_moto import serialised
from scripts.fast_tables import FastTables


@pytest.fixture(autouse=True)
def aws():
    """This server brings its own moto (overrides the suite-wide in-process one)."""
    yield


@pytest.fixture(autouse=True)
def amo():
    yield None


@pytest.fixture(scope="module")
def stand_in():
    tables = FastTables(["t-leads", "t-contacts"])
    server = make_server("127.0.0.1", 0, tables.wrap(serialised(DomainDispatcherApplication(create_backend_app))))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
    thread.start()
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{server.port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    for name, key_type in (("t-leads", "S"), ("t-contacts", "N"), ("t-budget", "S")):
        key = "key" if name == "t-budget" else "id"
        client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": key_type}],
            BillingMode="PAY_PER_REQUEST",
        )
    yield client, tables
    server.shutdown()


def lead(number: int) -> dict:
    return {
        "id": {"S": f"lead-{number}"},
        "amo_lead_id": {"N": str(number)},
        "custom_fields": {"S": '[{"field_id": 1}]'},
        "guest": {"M": {"name": {"S": "Анна"}, "vip": {"BOOL": True}}},
    }


def test_batch_written_items_come_back_from_batch_get_exactly_as_sent(stand_in):
    client, tables = stand_in
    written = [lead(n) for n in range(25)]

    answer = client.batch_write_item(RequestItems={"t-leads": [{"PutRequest": {"Item": item}} for item in written]})
    read = client.batch_get_item(
        RequestItems={"t-leads": {"Keys": [{"id": {"S": "lead-3"}}, {"id": {"S": "lead-24"}}, {"id": {"S": "nope"}}]}}
    )

    assert answer["UnprocessedItems"] == {} and "ConsumedCapacity" not in answer
    assert sorted(read["Responses"]["t-leads"], key=lambda item: item["id"]["S"]) == [written[24], written[3]]
    assert read["UnprocessedKeys"] == {}
    assert tables.stats()["items"]["t-leads"] == 25


def absent_put(table: str, item: dict) -> dict:
    return {
        "Put": {
            "TableName": table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": "id"},
        }
    }


def test_conditional_puts_in_a_transaction_store_all_or_cancel_with_a_reason_per_item(stand_in):
    client, tables = stand_in
    client.transact_write_items(TransactItems=[absent_put("t-leads", lead(n)) for n in range(100, 110)])
    assert tables.stats()["items"]["t-leads"] >= 10

    before = tables.stats()["items"]["t-leads"]
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=[absent_put("t-leads", lead(n)) for n in (110, 105, 111)])

    error = cancelled.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert [reason["Code"] for reason in error["CancellationReasons"]] == ["None", "ConditionalCheckFailed", "None"]
    assert tables.stats()["items"]["t-leads"] == before
    assert not any(entry.startswith("TransactWriteItems") for entry in tables.stats()["refused"])


def test_a_number_key_is_found_however_the_number_is_written(stand_in):
    client, _ = stand_in
    client.batch_write_item(RequestItems={"t-contacts": [{"PutRequest": {"Item": {"id": {"N": "70"}}}}]})

    read = client.batch_get_item(RequestItems={"t-contacts": {"Keys": [{"id": {"N": "70.0"}}], "ConsistentRead": True}})

    assert read["Responses"]["t-contacts"] == [{"id": {"N": "70"}}]


def test_a_batch_dynamodb_would_refuse_is_refused_and_stores_nothing(stand_in):
    client, tables = stand_in
    twice = [{"PutRequest": {"Item": {"id": {"N": "1"}}}}, {"PutRequest": {"Item": {"id": {"N": "1.0"}}}}]
    wrong_key_type = [{"PutRequest": {"Item": {"id": {"S": "1"}}}}]
    before = tables.stats()["items"]["t-contacts"]

    for requests in (twice, wrong_key_type):
        with pytest.raises(ClientError) as refused:
            client.batch_write_item(RequestItems={"t-contacts": requests})
        assert refused.value.response["Error"]["Code"] == "ValidationException"

    assert tables.stats()["items"]["t-contacts"] == before


def test_an_operation_it_does_not_implement_on_a_fast_table_fails_loudly(stand_in):
    client, tables = stand_in

    with pytest.raises(ClientError) as refused:
        client.get_item(TableName="t-leads", Key={"id": {"S": "lead-1"}})

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused.value.response["Error"]["Code"] == "StandInUnsupported"
    assert "GetItem on t-leads is not implemented" in refused.value.response["Error"]["Message"]
    assert any(entry.startswith("GetItem") for entry in tables.stats()["refused"])


def test_a_batch_mixing_fast_and_moto_tables_fails_loudly(stand_in):
    client, _ = stand_in

    with pytest.raises(ClientError) as refused:
        client.batch_get_item(
            RequestItems={"t-leads": {"Keys": [{"id": {"S": "a"}}]}, "t-budget": {"Keys": [{"key": {"S": "a"}}]}}
        )

    assert refused.value.response["Error"]["Code"] == "StandInUnsupported"


def test_other_tables_stay_on_moto_with_their_atomic_counters(stand_in):
    client, tables = stand_in
    for _ in range(3):
        client.update_item(
            TableName="t-budget",
            Key={"key": {"S": "block#1"}},
            UpdateExpression="SET g = if_not_exists(g, :zero) + :one",
            ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}},
        )

    stored = client.get_item(TableName="t-budget", Key={"key": {"S": "block#1"}})["Item"]

    assert stored["g"] == {"N": "3"}
    assert "t-budget" not in tables.stats()["items"]
