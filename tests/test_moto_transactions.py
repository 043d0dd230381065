"""The tests' moto rolls a failed TransactWriteItems back item by item (scripts/moto_transactions.py):
whatever a cancelled transaction wrote first is undone, as in DynamoDB, and a transaction that
succeeds keeps every write."""

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def dynamodb():
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="plain",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName="ranged",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName="plain", Item={"id": {"S": "kept"}, "n": {"N": "1"}})
    client.put_item(TableName="plain", Item={"id": {"S": "doomed"}, "n": {"N": "2"}})
    client.put_item(TableName="ranged", Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "x"}})
    return client


def everything(client) -> dict:
    return {name: sorted(map(repr, client.scan(TableName=name)["Items"])) for name in ("plain", "ranged")}


def writes() -> list[dict]:
    """A put of a new item in each table (one under a new hash key), an update and a delete."""
    return [
        {"Put": {"TableName": "plain", "Item": {"id": {"S": "new"}}}},
        {"Put": {"TableName": "ranged", "Item": {"pk": {"S": "a"}, "sk": {"N": "2"}}}},
        {"Put": {"TableName": "ranged", "Item": {"pk": {"S": "b"}, "sk": {"N": "1"}}}},
        {
            "Update": {
                "TableName": "plain",
                "Key": {"id": {"S": "kept"}},
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": "99"}},
            }
        },
        {"Delete": {"TableName": "plain", "Key": {"id": {"S": "doomed"}}}},
    ]


def test_a_transaction_cancelled_by_its_last_condition_undoes_every_earlier_write(dynamodb):
    before = everything(dynamodb)
    failing = {
        "ConditionCheck": {
            "TableName": "ranged",
            "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(TransactItems=[*writes(), failing])
    assert everything(dynamodb) == before


def test_a_transaction_refused_half_way_for_naming_an_item_twice_undoes_its_writes(dynamodb):
    before = everything(dynamodb)
    twice = {"Delete": {"TableName": "plain", "Key": {"id": {"S": "new"}}}}
    with pytest.raises(ClientError, match="ValidationException"):
        dynamodb.transact_write_items(TransactItems=[*writes(), twice])
    assert everything(dynamodb) == before


def test_a_transaction_that_succeeds_keeps_every_write(dynamodb):
    dynamodb.transact_write_items(TransactItems=writes())
    assert dynamodb.get_item(TableName="plain", Key={"id": {"S": "kept"}})["Item"]["n"] == {"N": "99"}
    assert "Item" not in dynamodb.get_item(TableName="plain", Key={"id": {"S": "doomed"}})
    assert dynamodb.scan(TableName="ranged")["Count"] == 3 and dynamodb.scan(TableName="plain")["Count"] == 2
