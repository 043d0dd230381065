"""Writes infra/prod-resources.json, the template `chalice package --merge-template` merges into
Chalice's own: every DynamoDB table of chalicelib/models.py, the SQS queues with their
dead-letter queues, partial-batch responses on the queue consumers, queue URLs in every
function's environment, and stack Outputs. tests/test_infra.py checks the committed file
against the models and the code, so the two cannot drift apart.

Run it after changing a model: `.venv/bin/python scripts/build_infra.py`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pynamodb.attributes import NumberAttribute, TTLAttribute  # noqa: E402

from chalicelib.models import ALL_MODELS  # noqa: E402

STAGE_PREFIX = "amocrm-prod-"
# logical id: (queue name suffix, consumer function, its timeout in s, receives before the DLQ)
QUEUES = {
    "SyncQueue": ("sync", "ContinueSync", 900, 3),
    "WebhookQueue": ("webhooks", "ProcessWebhooks", 60, 5),
    "NotifyQueue": ("notifications", "DeliverNotifications", 60, 20),
}
QUEUE_ENV = {"SyncQueue": "SYNC_QUEUE_URL", "WebhookQueue": "WEBHOOK_QUEUE_URL", "NotifyQueue": "NOTIFY_QUEUE_URL"}
FUNCTIONS = ["APIHandler", "ContinueSync", "IncrementalSync", "ProcessWebhooks", "DeliverNotifications",
             "NotificationSweeper", "RefreshToken"]


def logical_id(model) -> str:
    return f"{model.__name__}Table"


def _type(attribute) -> str:
    return "N" if isinstance(attribute, NumberAttribute) else "S"


def projection(spec) -> dict:
    result = {"ProjectionType": spec.projection_type}
    if spec.non_key_attributes:
        result["NonKeyAttributes"] = list(spec.non_key_attributes)
    return result


def table(model) -> dict:
    attributes = model.get_attributes()
    keys = [(name, "HASH" if a.is_hash_key else "RANGE") for name, a in attributes.items()
            if a.is_hash_key or a.is_range_key]
    keys.sort(key=lambda k: k[1] != "HASH")
    used = {name for name, _ in keys}
    indexes = []
    for index in model._indexes.values():
        index_keys = [(name, "HASH" if a.is_hash_key else "RANGE") for name, a in
                      index.Meta.attributes.items() if a.is_hash_key or a.is_range_key]
        index_keys.sort(key=lambda k: k[1] != "HASH")
        used.update(name for name, _ in index_keys)
        indexes.append({"IndexName": index.Meta.index_name,
                        "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in index_keys],
                        "Projection": projection(index.Meta.projection)})
    properties = {
        "TableName": {"Fn::Sub": "${TablePrefix}" + model.Meta.table_suffix},
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": _type(attributes[n])} for n in sorted(used)],
        "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
    }
    if indexes:
        properties["GlobalSecondaryIndexes"] = sorted(indexes, key=lambda i: i["IndexName"])
    ttl = [name for name, a in attributes.items() if isinstance(a, TTLAttribute)]
    if ttl:
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl[0], "Enabled": True}
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": properties}


def build() -> dict:
    resources: dict = {logical_id(m): table(m) for m in ALL_MODELS}
    outputs: dict = {logical_id(m): {"Value": {"Ref": logical_id(m)}} for m in ALL_MODELS}
    for queue_id, (suffix, consumer, timeout, receives) in QUEUES.items():
        resources[f"{queue_id}DLQ"] = {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": {"Fn::Sub": "${TablePrefix}" + suffix + "-dlq"},
            "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}}
        resources[queue_id] = {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": {"Fn::Sub": "${TablePrefix}" + suffix},
            "VisibilityTimeout": 6 * timeout, "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [f"{queue_id}DLQ", "Arn"]},
                              "maxReceiveCount": receives}}}
        # the queue-URL Ref in the environment (below) already orders the queue before its consumer
        resources[consumer] = {"Properties": {"Events": {
            f"{consumer}SqsEventSource": {"Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}}}}
        outputs[queue_id] = {"Value": {"Ref": queue_id}}
        outputs[f"{queue_id}DLQ"] = {"Value": {"Ref": f"{queue_id}DLQ"}}
    variables = {env: {"Ref": queue_id} for queue_id, env in QUEUE_ENV.items()}
    variables["NOTIFY_DLQ_URL"] = {"Ref": "NotifyQueueDLQ"}
    for function in FUNCTIONS:
        entry = resources.setdefault(function, {})
        entry.setdefault("Properties", {})["Environment"] = {"Variables": variables}
    return {"Parameters": {"TablePrefix": {"Type": "String", "Default": STAGE_PREFIX,
                                           "Description": "prefix of every table and queue name (TABLE_PREFIX)"}},
            "Resources": resources, "Outputs": outputs}


def main() -> None:
    path = ROOT / "infra" / "prod-resources.json"
    path.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
