"""What pages someone when the deployed service fails, and what shows how it is doing.

- an SNS topic (`AlarmTopic`) with an e-mail subscription (parameter AlarmEmail) that every
  alarm notifies, on alarm and on recovery;
- the alarms (docs/operating.md is the runbook: one entry per alarm, with a command to paste):
  dead letters, stuck queues (age of the oldest message, batches in which every record failed),
  Lambda errors and throttles, API 5xx, the webhook route's latency, amoCRM's 429s and block,
  re-authorization, an unpaid account, webhook 401s and a missing webhook secret, a stage not
  connected yet, sync lag (only of a connected stage: a composite
  alarm), the long-lived token, DynamoDB throttling;
- a CloudWatch dashboard of the service's metrics (chalicelib/metrics.py) and AWS's;
- one log group per function, JSON log format, retention LogRetentionDays (default 30).
"""

from __future__ import annotations

import json

from scripts.infra_spec import API_STAGE, FUNCTIONS, METRICS_NAMESPACE, QUEUES, WEBHOOK_ROUTE

PERIOD = 300
SERVICE = {"service": {"Ref": "AWS::StackName"}}
RETENTION_DAYS = [
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
]


def log_group(config_name: str) -> dict:
    return {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "LogGroupName": {"Fn::Sub": "/aws/lambda/${AWS::StackName}/" + config_name},
            "RetentionInDays": {"Ref": "LogRetentionDays"},
        },
    }


def _alarm(
    description: str,
    *,
    namespace: str,
    metric: str,
    dimensions: dict,
    statistic: str,
    threshold: float,
    comparison: str = "GreaterThanOrEqualToThreshold",
    period: int = PERIOD,
    missing: str = "notBreaching",
    periods: int = 1,
) -> dict:
    """One alarm on one metric; `periods` consecutive breaching periods make it fire."""
    properties: dict = {
        "AlarmDescription": description,
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Period": period,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": missing,
        "AlarmActions": [{"Ref": "AlarmTopic"}],
        "OKActions": [{"Ref": "AlarmTopic"}],
    }
    # a percentile (p99) is an extended statistic
    properties["ExtendedStatistic" if statistic.startswith("p") else "Statistic"] = statistic
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _ours(description: str, metric: str, statistic: str, threshold: float, **options) -> dict:
    return _alarm(
        description,
        namespace=METRICS_NAMESPACE,
        metric=metric,
        dimensions={**SERVICE, **options.pop("dimensions", {})},
        statistic=statistic,
        threshold=threshold,
        **options,
    )


def _table_throttles(model_table: str) -> dict:
    """Read plus write throttle events of one table (on-demand tables throttle too: a burst past
    twice the previous peak, or one hot key)."""
    table = {"Name": "TableName", "Value": {"Ref": model_table}}

    def stat(query_id: str, metric: str) -> dict:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/DynamoDB", "MetricName": metric, "Dimensions": [table]},
                "Period": PERIOD,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }

    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": f"DynamoDB throttled requests to {model_table} for 10 minutes",
            "Metrics": [
                stat("reads", "ReadThrottleEvents"),
                stat("writes", "WriteThrottleEvents"),
                {"Id": "throttles", "Expression": "FILL(reads, 0) + FILL(writes, 0)", "ReturnData": True},
            ],
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 2,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
        },
    }


def alarms(tables: list[str]) -> dict[str, dict]:
    """Logical id -> alarm. Each description says what it means; docs/operating.md says what to do."""
    found: dict[str, dict] = {}
    for queue_id, queue in QUEUES.items():
        queue_name = {"QueueName": {"Fn::GetAtt": [f"{queue_id}DLQ", "QueueName"]}}
        found[f"{queue_id}DLQAlarm"] = _alarm(
            f"A message is in the dead-letter queue of {queue_id}: some work failed every retry",
            namespace="AWS/SQS",
            metric="ApproximateNumberOfMessagesVisible",
            dimensions=queue_name,
            statistic="Maximum",
            threshold=1,
        )
        found[f"{queue_id}AgeAlarm"] = _alarm(
            f"The oldest message of {queue_id} has waited {queue.max_age // 60} minutes: its consumer "
            f"{queue.consumer} is stuck, failing or too slow",
            namespace="AWS/SQS",
            metric="ApproximateAgeOfOldestMessage",
            dimensions={"QueueName": {"Fn::GetAtt": [queue_id, "QueueName"]}},
            statistic="Maximum",
            threshold=queue.max_age,
        )
        found[f"{queue_id}BatchFailedAlarm"] = _ours(
            f"Every record of a {queue.batch_label} batch failed, in each of 15 minutes: {queue.consumer} "
            "handles nothing (its Lambda Errors stay 0: failures are reported per record)",
            "QueueBatchFailed",
            "Sum",
            1,
            dimensions={"Queue": queue.batch_label},
            periods=3,
        )
    found["NotificationsDeadAlarm"] = _ours(
        "A Main Backend notification was given up after every retry (marked dead)", "NotificationsDead", "Sum", 1
    )
    for function_id in FUNCTIONS:
        dimensions = {"FunctionName": {"Ref": function_id}}
        found[f"{function_id}ErrorsAlarm"] = _alarm(
            f"{function_id} failed (an invocation raised or timed out)",
            namespace="AWS/Lambda",
            metric="Errors",
            dimensions=dimensions,
            statistic="Sum",
            threshold=1,
        )
        found[f"{function_id}ThrottlesAlarm"] = _alarm(
            f"{function_id} was throttled (its concurrency limit was reached)",
            namespace="AWS/Lambda",
            metric="Throttles",
            dimensions=dimensions,
            statistic="Sum",
            threshold=1,
        )
    api = {"ApiName": {"Ref": "AWS::StackName"}, "Stage": API_STAGE}
    found["Api5xxAlarm"] = _alarm(
        "The API answered 5xx at least 5 times in 5 minutes",
        namespace="AWS/ApiGateway",
        metric="5XXError",
        dimensions=api,
        statistic="Sum",
        threshold=5,
    )
    found["WebhookLatencyAlarm"] = _alarm(
        "The webhook route's p99 latency was over 1.5 s in 2 of 3 five-minute periods: amoCRM disables "
        "a webhook that answers slower than 2 s",
        namespace="AWS/ApiGateway",
        metric="Latency",
        dimensions={**api, "Resource": WEBHOOK_ROUTE, "Method": "POST"},
        statistic="p99",
        threshold=1500,
        comparison="GreaterThanThreshold",
        periods=3,
    )
    found["WebhookLatencyAlarm"]["Properties"]["DatapointsToAlarm"] = 2
    found["AmoBlockedAlarm"] = _ours(
        "amoCRM blocked the integration (HTML 403 on every call): nothing reaches amoCRM", "AmoBlocked", "Sum", 1
    )
    found["AmoRateLimitedAlarm"] = _ours(
        "amoCRM answered 429 (an HTML page without Retry-After): every process cools down 1, 2, 4 … 60 s; "
        "repeated 429s end in amoCRM's account-wide HTML 403 block (runbook: AmoRateLimited)",
        "AmoRateLimited",
        "Sum",
        0,
        comparison="GreaterThanThreshold",
    )
    found["AmoAccountUnpaidAlarm"] = _ours(
        "amoCRM answers 402 'account not paid': scheduled syncs are paused and webhook events held until "
        "someone pays for the account",
        "AmoAccountUnpaid",
        "Sum",
        1,
        period=3600,
    )
    found["WebhookUnauthorizedAlarm"] = _ours(
        "The webhook route answered 401 (wrong or missing secret) at least 5 times in 5 minutes: amoCRM "
        "disables a hook after more than 100 invalid answers in 2 hours (an old secret still subscribed?)",
        "WebhookUnauthorized",
        "Sum",
        5,
    )
    found["WebhookSecretMissingAlarm"] = _ours(
        "AMO_WEBHOOK_SECRET is not set: webhook deliveries are acknowledged and not applied (the "
        "incremental sync still heals them)",
        "WebhookSecretMissing",
        "Sum",
        1,
    )
    found["NeedsReauthorizationAlarm"] = _ours(
        "amoCRM refused the refresh token: the integration must be installed again",
        "NeedsReauthorization",
        "Sum",
        1,
        period=3600,
    )
    found["NotConnectedAlarm"] = _ours(
        "Stage not connected: amoCRM is not connected to this stage (never installed, or disconnected); "
        "the schedules skip until someone connects it",
        "NotConnected",
        "Sum",
        1,
        period=3600,
    )
    # the lag of a stage that is not connected is no news: SyncLagAlarm pages only when connected
    found["SyncLagMetricAlarm"] = _ours(
        "Input of SyncLagAlarm (pages nobody itself): no complete incremental sync for over an hour",
        "SyncLag",
        "Maximum",
        3600,
        comparison="GreaterThanThreshold",
        period=3600,
        missing="breaching",
    )
    del (
        found["SyncLagMetricAlarm"]["Properties"]["AlarmActions"],
        found["SyncLagMetricAlarm"]["Properties"]["OKActions"],
    )
    found["SyncLagAlarm"] = {
        "Type": "AWS::CloudWatch::CompositeAlarm",
        "Properties": {
            "AlarmDescription": "The incremental sync of a connected stage has not completed for over an hour "
            "(or stopped reporting)",
            "AlarmRule": {"Fn::Sub": 'ALARM("${SyncLagMetricAlarm}") AND NOT ALARM("${NotConnectedAlarm}")'},
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
        },
    }
    found["LongLivedTokenAlarm"] = _ours(
        "The long-lived amoCRM token expires in less than 14 days",
        "LongLivedTokenDaysLeft",
        "Minimum",
        14,
        comparison="LessThanThreshold",
        period=86400,
    )
    for table in tables:
        found[f"{table}ThrottlesAlarm"] = _table_throttles(table)
    return found


def topic() -> dict[str, dict]:
    return {
        "AlarmTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {"DisplayName": {"Fn::Sub": "${AWS::StackName} alarms"}},
        },
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
        },
    }


def _ours_widget(title: str, names: list[str], stat: str = "Sum", annotation: float | None = None) -> dict:
    properties: dict = {
        "title": title,
        "region": "${AWS::Region}",
        "stat": stat,
        "period": PERIOD,
        "view": "timeSeries",
        "metrics": [[METRICS_NAMESPACE, name, "service", "${AWS::StackName}"] for name in names],
    }
    if annotation is not None:
        properties["annotations"] = {"horizontal": [{"value": annotation, "label": "alarm"}]}
    return {"type": "metric", "width": 12, "height": 6, "properties": properties}


def _search_widget(title: str, name: str, dimension: str, stat: str = "Sum") -> dict:
    expression = (
        f'SEARCH(\'{{{METRICS_NAMESPACE},{dimension},service}} MetricName="{name}" '
        f"service=\"${{AWS::StackName}}\"', '{stat}', {PERIOD})"
    )
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "view": "timeSeries",
            "metrics": [[{"expression": expression, "id": "e1", "label": ""}]],
        },
    }


def _aws_widget(title: str, namespace: str, metric: str, dimension: str, values: list[str], stat: str = "Sum") -> dict:
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "stat": stat,
            "period": PERIOD,
            "view": "timeSeries",
            "metrics": [[namespace, metric, dimension, value] for value in values],
        },
    }


def dashboard(alarm_ids: list[str]) -> dict:
    functions = [f"${{{f}}}" for f in FUNCTIONS]
    widgets = [
        {
            "type": "alarm",
            "width": 24,
            "height": 4,
            "properties": {"title": "Alarms", "alarms": [f"${{{a}.Arn}}" for a in alarm_ids]},
        },
        _ours_widget(
            "amoCRM requests, 429s, retries, blocks, 304s",
            ["AmoRequests", "AmoRateLimited", "AmoRetries", "AmoBlocked", "AmoNotModified"],
        ),
        _ours_widget("Tokens", ["TokenRefreshes", "TokenRefreshFailures", "NeedsReauthorization", "NotConnected"]),
        _search_widget("Cold starts by function", "ColdStart", "function_name"),
        _search_widget("Queue batches in which every record failed", "QueueBatchFailed", "Queue"),
        _search_widget("Webhook deliveries by outcome", "WebhookDeliveries", "Outcome"),
        _ours_widget(
            "Webhook secret and bodies: 401s, old secret used, no secret, bodies read in part",
            ["WebhookUnauthorized", "WebhookPreviousSecret", "WebhookSecretMissing", "WebhookBodyTrimmed"],
        ),
        _search_widget("Webhook events by outcome", "WebhookEvents", "Outcome"),
        _ours_widget("Main Backend notifications", ["NotificationsSent", "NotificationsRetried", "NotificationsDead"]),
        _ours_widget(
            "Failures that lost nothing: activity log writes, idempotency checkpoints, sync windows held",
            ["ActivityLogWriteFailures", "IdempotencyCheckpointFailures", "SyncWindowsHeld"],
        ),
        _search_widget("Items synced", "SyncItems", "Entity"),
        _search_widget("Sync duration (s, per invocation)", "SyncDuration", "Entity", stat="Maximum"),
        _ours_widget("Sync lag (s since the last complete incremental run)", ["SyncLag"], "Maximum", 3600),
        _ours_widget("Long-lived token: days left", ["LongLivedTokenDaysLeft"], "Minimum", 14),
        _ours_widget(
            "Degraded, nothing lost (activity log not written, keyed outcome not recorded, sync window held)",
            ["ActivityLogWriteFailures", "IdempotencyCheckpointFailures", "SyncWindowsHeld"],
        ),
        _ours_widget(
            "What this account does differently",
            [
                "FiltersIgnored",
                "FiltersWorkAgain",
                "WebhookReenabled",
                "LongLivedTokenExpiringSoon",
                "AccountRenamed",
                "AmoAccountUnpaid",
                "LeadMerged",
                "EventsLogForbidden",
            ],
        ),
        _ours_widget("Guests' personal data erased by retention", ["PersonalDataExpired"]),
        _aws_widget("Lambda errors", "AWS/Lambda", "Errors", "FunctionName", functions),
        _aws_widget("Lambda throttles", "AWS/Lambda", "Throttles", "FunctionName", functions),
        _aws_widget(
            "Age of the oldest message (s)",
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            [f"${{{q}.QueueName}}" for q in QUEUES],
            stat="Maximum",
        ),
        {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Webhook route latency p99 (ms; amoCRM gives up at 2000)",
                "region": "${AWS::Region}",
                "stat": "p99",
                "period": PERIOD,
                "metrics": [
                    ["AWS/ApiGateway", "Latency", "ApiName", "${AWS::StackName}", "Stage", API_STAGE]
                    + ["Resource", WEBHOOK_ROUTE, "Method", "POST"]
                ],
                "annotations": {"horizontal": [{"value": 1500, "label": "alarm"}]},
            },
        },
        {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": "DynamoDB throttled reads and writes by table",
                "region": "${AWS::Region}",
                "view": "timeSeries",
                "metrics": [
                    [
                        {
                            "expression": (
                                f'SEARCH(\'{{AWS/DynamoDB,TableName}} MetricName="{metric}" '
                                f"TableName=\"${{TablePrefix}}\"', 'Sum', {PERIOD})"
                            ),
                            "id": f"e{number}",
                            "label": "",
                        }
                    ]
                    for number, metric in enumerate(("ReadThrottleEvents", "WriteThrottleEvents"), 1)
                ],
            },
        },
        _aws_widget(
            "Dead-letter queues",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            [f"${{{q}DLQ.QueueName}}" for q in QUEUES],
            stat="Maximum",
        ),
        {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": "API 4xx / 5xx",
                "region": "${AWS::Region}",
                "stat": "Sum",
                "period": PERIOD,
                "metrics": [
                    ["AWS/ApiGateway", m, "ApiName", "${AWS::StackName}", "Stage", API_STAGE]
                    for m in ("4XXError", "5XXError")
                ],
            },
        },
    ]
    return {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": {"Ref": "AWS::StackName"},
            "DashboardBody": {"Fn::Sub": json.dumps({"widgets": widgets}, separators=(",", ":"))},
        },
    }


def parameters() -> dict[str, dict]:
    return {
        "AlarmEmail": {
            "Type": "String",
            "Default": "",
            "Description": "who is paged: every alarm e-mails this address (empty: no subscription)",
        },
        "LogRetentionDays": {
            "Type": "Number",
            "Default": 30,
            "AllowedValues": RETENTION_DAYS,
            "Description": "days each function's log group keeps its lines",
        },
    }
