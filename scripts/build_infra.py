"""Writes infra/<stage>-resources.json for every deployed stage, the template `chalice package
--merge-template` merges into Chalice's own, and the per-function IAM policies
.chalice/policy-<function>.json (the same for every stage: they name only the stack's resources):

- every DynamoDB table of chalicelib/models.py (retained when the stack is deleted, except after
  a failed create);
- the SQS queues with their dead-letter queues, partial-batch responses on their consumers;
- per function: the queue URLs, table prefix, secret references and Powertools names in its
  environment, all derived from the stage (nothing in .chalice/config.json names a table, queue
  or secret), the pinned runtime, its log group (JSON format, retention) and its own role's
  policy (scripts/infra_iam.py);
- the alarms, their SNS topic and e-mail subscription, the dashboard (scripts/infra_monitoring.py);
- per function, an alias published on every deploy and a canary rollout that rolls back on the
  function's alarms, and an optional custom domain for the API (scripts/infra_rollout.py);
- X-Ray tracing on the API, and stack Outputs.

tests/test_infra.py checks the committed files against the models and the code, so they cannot
drift apart. Run it after changing a model or a function: `.venv/bin/python scripts/build_infra.py`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pynamodb.attributes import NumberAttribute, TTLAttribute  # noqa: E402

from chalicelib.models import ALL_MODELS  # noqa: E402
from scripts import infra_access, infra_iam, infra_monitoring, infra_rollout  # noqa: E402
from scripts.infra_spec import (  # noqa: E402
    FUNCTIONS,
    METRICS_NAMESPACE,
    QUEUE_ENV,
    QUEUES,
    SECRET_OF,
    WEBHOOK_ROUTE,
    deployed_stages,
    function_setting,
    resource_prefix,
    secrets_prefix,
)
from scripts.package import RUNTIME  # noqa: E402

POLICIES = ROOT / ".chalice"


def template_path(stage: str) -> Path:
    return ROOT / "infra" / f"{stage}-resources.json"


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
    keys = [
        (name, "HASH" if a.is_hash_key else "RANGE")
        for name, a in attributes.items()
        if a.is_hash_key or a.is_range_key
    ]
    keys.sort(key=lambda k: k[1] != "HASH")
    used = {name for name, _ in keys}
    indexes = []
    for index in model._indexes.values():
        index_keys = [
            (name, "HASH" if a.is_hash_key else "RANGE")
            for name, a in index.Meta.attributes.items()
            if a.is_hash_key or a.is_range_key
        ]
        index_keys.sort(key=lambda k: k[1] != "HASH")
        used.update(name for name, _ in index_keys)
        indexes.append(
            {
                "IndexName": index.Meta.index_name,
                "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in index_keys],
                "Projection": projection(index.Meta.projection),
            }
        )
    properties: dict = {
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
    return {
        "Type": "AWS::DynamoDB::Table",
        # kept when the stack is deleted, but not after a failed create: a retried first
        # deploy could not create a table its rolled-back predecessor left behind
        "DeletionPolicy": "RetainExceptOnCreate",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }


def _timeout(stage: str, config_name: str) -> int:
    return function_setting(stage, config_name, "lambda_timeout") or 60


def _queues(stage: str, resources: dict, outputs: dict) -> None:
    for queue_id, queue in QUEUES.items():
        consumer = queue.consumer
        resources[f"{queue_id}DLQ"] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": {"Fn::Sub": "${TablePrefix}" + queue.suffix + "-dlq"},
                "MessageRetentionPeriod": 1209600,
                "SqsManagedSseEnabled": True,
            },
        }
        resources[queue_id] = {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": {"Fn::Sub": "${TablePrefix}" + queue.suffix},
                # the stage's own consumer timeout: a message is never offered again while it runs
                "VisibilityTimeout": 6 * _timeout(stage, FUNCTIONS[consumer].name),
                "MessageRetentionPeriod": 1209600,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": [f"{queue_id}DLQ", "Arn"]},
                    "maxReceiveCount": queue.receives,
                },
            },
        }
        # the queue-URL Ref in the environment (below) already orders the queue before its consumer;
        # scripts/package.py points the event source at this queue (Chalice names it at import)
        resources[consumer] = {
            "Properties": {
                "Events": {
                    f"{consumer}SqsEventSource": {"Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}
                }
            }
        }
        outputs[queue_id] = {"Value": {"Ref": queue_id}}
        outputs[f"{queue_id}DLQ"] = {"Value": {"Ref": f"{queue_id}DLQ"}}
        outputs[f"{queue_id}DLQArn"] = {"Value": {"Fn::GetAtt": [f"{queue_id}DLQ", "Arn"]}}


def _functions(stage: str, resources: dict) -> None:
    variables: dict[str, object] = {env: {"Ref": queue_id} for queue_id, env in QUEUE_ENV.items()}
    variables.update(
        {
            "NOTIFY_DLQ_URL": {"Ref": "NotifyQueueDLQ"},
            "TABLE_PREFIX": {"Ref": "TablePrefix"},
            "POWERTOOLS_SERVICE_NAME": {"Ref": "AWS::StackName"},
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
    )
    variables.update(
        {
            variable: {"Fn::Sub": f"secretsmanager:${{SecretsPrefix}}{secret}#{variable}"}
            for variable, secret in sorted(SECRET_OF.items())
        }
    )
    for function_id, function in FUNCTIONS.items():
        resources[f"{function_id}LogGroup"] = infra_monitoring.log_group(function.name)
        entry = resources.setdefault(function_id, {}).setdefault("Properties", {})
        entry.update(
            {
                "Runtime": RUNTIME,
                "Environment": {"Variables": variables},
                # INFO, pinned: Lambda counts a line without a level (every metric's EMF line) as
                # INFO, so a WARN filter would silence every metric alarm
                "LoggingConfig": {
                    "LogFormat": "JSON",
                    "LogGroup": {"Ref": f"{function_id}LogGroup"},
                    "ApplicationLogLevel": "INFO",
                    "SystemLogLevel": "INFO",
                },
            }
        )
        entry.update(infra_rollout.function_properties(function_id))
        if function.schedule:
            # the next run heals a failed one: Lambda's two asynchronous retries only repeat a failure
            entry["EventInvokeConfig"] = {"MaximumRetryAttempts": 0}
        reserved = function_setting(stage, function.name, "reserved_concurrency")
        if reserved:
            # only where the account's quota leaves room (scripts/deploy.py decides ReserveConcurrency)
            entry["ReservedConcurrentExecutions"] = {
                "Fn::If": ["ReservesConcurrency", reserved, {"Ref": "AWS::NoValue"}]
            }


def build(stage: str) -> dict:
    """The merge template of one deployed stage."""
    resources: dict = {logical_id(m): table(m) for m in ALL_MODELS}
    outputs: dict = {logical_id(m): {"Value": {"Ref": logical_id(m)}} for m in ALL_MODELS}
    _queues(stage, resources, outputs)
    _functions(stage, resources)
    # the API's name is the stack's, so its metrics (the 5xx alarm) never mix two stages' APIs
    resources["RestAPI"] = {
        "Properties": {
            "Name": {"Ref": "AWS::StackName"},
            "TracingEnabled": True,
            "DefinitionBody": {"info": {"title": {"Ref": "AWS::StackName"}}},
            # per-method metrics for the webhook route only (its latency alarm): amoCRM's deadline
            "MethodSettings": [
                {
                    "ResourcePath": "/" + WEBHOOK_ROUTE.replace("/", "~1"),  # "/" is "~1" here
                    "HttpMethod": "POST",
                    "MetricsEnabled": True,
                }
            ],
        }
    }
    resources.update(infra_rollout.resources())
    outputs.update(infra_rollout.outputs())
    alarms = infra_monitoring.alarms([logical_id(m) for m in ALL_MODELS])
    resources.update(alarms)
    resources.update(infra_monitoring.topic())
    resources["Dashboard"] = infra_monitoring.dashboard(sorted(alarms))
    outputs["AlarmTopic"] = {"Value": {"Ref": "AlarmTopic"}}
    outputs["Dashboard"] = {
        "Value": {
            "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
            "?region=${AWS::Region}#dashboards:name=${Dashboard}"
        }
    }
    parameters = {
        "TablePrefix": {
            "Type": "String",
            "Default": resource_prefix(stage),
            "Description": "prefix of every table and queue name (TABLE_PREFIX)",
        },
        "SecretsPrefix": {
            "Type": "String",
            "Default": secrets_prefix(stage),
            "Description": "prefix of the stage's Secrets Manager secrets",
        },
        "ReserveConcurrency": {
            "Type": "String",
            "Default": "false",
            "AllowedValues": ["true", "false"],
            "Description": "reserve the syncs' concurrency (a new account's quota of 10 cannot: make deploy checks)",
        },
        **infra_monitoring.parameters(),
        **infra_rollout.parameters(),
    }
    return {
        "Parameters": parameters,
        "Conditions": {
            "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
            "ReservesConcurrency": {"Fn::Equals": [{"Ref": "ReserveConcurrency"}, "true"]},
            **infra_rollout.conditions(),
        },
        "Resources": resources,
        "Outputs": outputs,
    }


def uses() -> dict[str, tuple[list[str], list[str]]]:
    """Function id -> the tables (logical ids) and DynamoDB actions its code uses."""
    found = infra_access.access(models={m.__name__ for m in ALL_MODELS})
    ids = {function.name: function_id for function_id, function in FUNCTIONS.items()}
    if set(found) != set(ids):
        raise ValueError(f"app.py's functions {sorted(found)} are not infra_spec.FUNCTIONS' {sorted(ids)}")
    return {
        ids[name]: ([logical_id(m) for m in ALL_MODELS if m.__name__ in used.models], sorted(used.actions))
        for name, used in found.items()
    }


def policies() -> dict[str, dict]:
    indexed = [logical_id(m) for m in ALL_MODELS if m._indexes]
    return infra_iam.policies(uses(), indexed)


def _write(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    for stage in deployed_stages():
        _write(template_path(stage), build(stage))
    for name, document in policies().items():
        _write(POLICIES / name, document)


if __name__ == "__main__":
    main()
