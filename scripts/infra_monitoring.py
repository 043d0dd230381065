"""What pages someone when the deployed service fails, and what shows how it is doing.

- an SNS topic (`AlarmTopic`) with an e-mail subscription (parameter AlarmEmail) that every
  alarm notifies, on alarm and on recovery;
- the alarms of ALARMS (README "Operating it" is the runbook: one section per alarm);
- a CloudWatch dashboard of the service's metrics (chalicelib/metrics.py) and AWS's;
- one log group per function, JSON log format, retention LogRetentionDays (default 30).
"""

from __future__ import annotations

import json

from scripts.infra_spec import FUNCTIONS, METRICS_NAMESPACE, QUEUES

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
    namespace: str,
    metric: str,
    dimensions: dict,
    statistic: str,
    threshold: float,
    comparison: str = "GreaterThanOrEqualToThreshold",
    period: int = PERIOD,
    missing: str = "notBreaching",
) -> dict:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Statistic": statistic,
            "Period": period,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            "TreatMissingData": missing,
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
        },
    }


def _ours(description: str, metric: str, statistic: str, threshold: float, **options) -> dict:
    return _alarm(description, METRICS_NAMESPACE, metric, SERVICE, statistic, threshold, **options)


def alarms() -> dict[str, dict]:
    """Logical id -> alarm. Each description says what it means; README says what to do."""
    found: dict[str, dict] = {}
    for queue_id in QUEUES:
        found[f"{queue_id}DLQAlarm"] = _alarm(
            f"A message is in the dead-letter queue of {queue_id}: some work failed every retry",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": {"Fn::GetAtt": [f"{queue_id}DLQ", "QueueName"]}},
            "Maximum",
            1,
        )
    found["NotificationsDeadAlarm"] = _ours(
        "A Main Backend notification was given up after every retry (marked dead)", "NotificationsDead", "Sum", 1
    )
    for function_id in FUNCTIONS:
        dimensions = {"FunctionName": {"Ref": function_id}}
        found[f"{function_id}ErrorsAlarm"] = _alarm(
            f"{function_id} failed (an invocation raised or timed out)", "AWS/Lambda", "Errors", dimensions, "Sum", 1
        )
        found[f"{function_id}ThrottlesAlarm"] = _alarm(
            f"{function_id} was throttled (its concurrency limit was reached)",
            "AWS/Lambda",
            "Throttles",
            dimensions,
            "Sum",
            1,
        )
    found["Api5xxAlarm"] = _alarm(
        "The API answered 5xx at least 5 times in 5 minutes",
        "AWS/ApiGateway",
        "5XXError",
        {"ApiName": {"Ref": "AWS::StackName"}, "Stage": "api"},
        "Sum",
        5,
    )
    found["AmoBlockedAlarm"] = _ours(
        "amoCRM blocked the integration (HTML 403 on every call): nothing reaches amoCRM", "AmoBlocked", "Sum", 1
    )
    found["NeedsReauthorizationAlarm"] = _ours(
        "amoCRM refused the refresh token: the integration must be installed again",
        "NeedsReauthorization",
        "Sum",
        1,
        period=3600,
    )
    found["SyncLagAlarm"] = _ours(
        "The incremental sync has not completed for over an hour (or stopped reporting)",
        "SyncLag",
        "Maximum",
        3600,
        comparison="GreaterThanThreshold",
        period=3600,
        missing="breaching",
    )
    found["LongLivedTokenAlarm"] = _ours(
        "The long-lived amoCRM token expires in less than 14 days",
        "LongLivedTokenDaysLeft",
        "Minimum",
        14,
        comparison="LessThanThreshold",
        period=86400,
    )
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
        _ours_widget("Tokens", ["TokenRefreshes", "TokenRefreshFailures", "NeedsReauthorization"]),
        _search_widget("Webhook deliveries by outcome", "WebhookDeliveries", "Outcome"),
        _search_widget("Webhook events by outcome", "WebhookEvents", "Outcome"),
        _ours_widget("Main Backend notifications", ["NotificationsSent", "NotificationsRetried", "NotificationsDead"]),
        _search_widget("Items synced", "SyncItems", "Entity"),
        _search_widget("Sync duration (s, per invocation)", "SyncDuration", "Entity", stat="Maximum"),
        _ours_widget("Sync lag (s since the last complete incremental run)", ["SyncLag"], "Maximum", 3600),
        _ours_widget("Long-lived token: days left", ["LongLivedTokenDaysLeft"], "Minimum", 14),
        _ours_widget(
            "What this account does differently",
            ["FiltersIgnored", "WebhookReenabled", "LongLivedTokenExpiringSoon", "AccountRenamed"],
        ),
        _aws_widget("Lambda errors", "AWS/Lambda", "Errors", "FunctionName", functions),
        _aws_widget("Lambda throttles", "AWS/Lambda", "Throttles", "FunctionName", functions),
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
                    ["AWS/ApiGateway", m, "ApiName", "${AWS::StackName}", "Stage", "api"]
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
