"""scripts/copy_table.py: the way back from a point-in-time restore (a restore is a new table)."""

import boto3
import pytest

from chalicelib.models import AmoToken, Lead
from scripts.copy_table import copy

pytestmark = pytest.mark.usefixtures("aws")


def restored_copy_of(model, suffix: str = "-restored") -> str:
    """A table with the model's key, as restore-table-to-point-in-time creates one."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    live = client.describe_table(TableName=model.Meta.table_name)["Table"]
    name = live["TableName"] + suffix
    keys = {k["AttributeName"] for k in live["KeySchema"]}
    client.create_table(
        TableName=name,
        KeySchema=live["KeySchema"],
        AttributeDefinitions=[a for a in live["AttributeDefinitions"] if a["AttributeName"] in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def test_every_restored_item_is_copied_back_over_the_live_one_and_newer_items_stay():
    client = boto3.client("dynamodb", region_name="us-east-1")
    live = Lead.Meta.table_name
    restored = restored_copy_of(Lead)
    for i in range(60):  # more than one BatchWriteItem
        client.put_item(TableName=restored, Item={"id": {"S": str(i)}, "name": {"S": f"restored {i}"}})
    client.put_item(TableName=live, Item={"id": {"S": "5"}, "name": {"S": "damaged"}})
    client.put_item(TableName=live, Item={"id": {"S": "1000"}, "name": {"S": "created after the restore point"}})

    assert copy(client, source=restored, target=live, dry_run=True) == 60
    assert client.get_item(TableName=live, Key={"id": {"S": "5"}})["Item"]["name"]["S"] == "damaged"

    assert copy(client, source=restored, target=live) == 60

    items = {int(i["id"]["S"]): i["name"]["S"] for i in client.scan(TableName=live)["Items"]}
    assert len(items) == 61 and items[5] == "restored 5" and items[1000] == "created after the restore point"


def test_tables_with_different_keys_are_not_copied_into_each_other():
    client = boto3.client("dynamodb", region_name="us-east-1")
    with pytest.raises(SystemExit, match="different keys"):
        copy(client, source=restored_copy_of(AmoToken), target=Lead.Meta.table_name)
