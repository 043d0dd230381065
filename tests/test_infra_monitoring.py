"""The deployed stack pages someone for every failure the service can have, and keeps its secrets
out of the Lambda configuration: alarms, their topic, log groups, tracing, the dashboard, the
per-function roles and the secret references, checked on the generated template and policies."""

import json
import re
from pathlib import Path

import pytest

from chalicelib.models import ALL_MODELS
from scripts.infra_spec import FUNCTIONS, QUEUES, SECRET_OF, SECRETS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = json.loads((ROOT / "infra" / "prod-resources.json").read_text())
RESOURCES = TEMPLATE["Resources"]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
POLICIES = {name: json.loads((ROOT / ".chalice" / f.policy_file).read_text()) for name, f in FUNCTIONS.items()}
CODE = "\n".join(p.read_text() for p in (ROOT / "chalicelib").rglob("*.py"))
EMITTED = set(re.findall(r'metrics\.(?:count|measure)\("(\w+)"', CODE))


def alarms() -> dict[str, dict]:
    return {k: r["Properties"] for k, r in RESOURCES.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}


def paging() -> dict[str, dict]:
    """The alarms that notify someone: every metric alarm but the composite's inputs, and the composite."""
    kinds = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
    return {
        k: r["Properties"]
        for k, r in RESOURCES.items()
        if r.get("Type") in kinds and not r["Properties"]["AlarmDescription"].startswith("Input of")
    }


def chalice_function_ids() -> set[str]:
    """The logical ids Chalice gives app.py's functions in its template."""
    from app import app

    return {"APIHandler"} | {"".join(p.capitalize() for p in s.name.split("-")) for s in app.event_sources}


def test_the_functions_the_infrastructure_knows_are_exactly_app_pys():
    assert set(FUNCTIONS) == chalice_function_ids()
    assert {f.name for f in FUNCTIONS.values()} == set(CONFIG["lambda_functions"])


def _alarm_on(namespace, metric, **dimensions):
    found = [
        a
        for a in alarms().values()
        if a.get("Namespace") == namespace
        and a.get("MetricName") == metric
        and all({"Name": k, "Value": v} in a["Dimensions"] for k, v in dimensions.items())
    ]
    assert len(found) == 1, f"one alarm on {namespace} {metric} {dimensions}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("queue_id", QUEUES)
def test_any_message_in_a_dead_letter_queue_pages(queue_id):
    alarm = _alarm_on(
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName={"Fn::GetAtt": [f"{queue_id}DLQ", "QueueName"]}
    )
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert RESOURCES[f"{queue_id}DLQ"]["Type"] == "AWS::SQS::Queue"


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_errors_and_throttles_of_every_function_page(function_id):
    for metric in ("Errors", "Throttles"):
        alarm = _alarm_on("AWS/Lambda", metric, FunctionName={"Ref": function_id})
        assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)


@pytest.mark.parametrize(
    ("metric", "statistic", "comparison", "threshold", "missing"),
    [
        ("NotificationsDead", "Sum", "GreaterThanOrEqualToThreshold", 1, "notBreaching"),
        ("AmoBlocked", "Sum", "GreaterThanOrEqualToThreshold", 1, "notBreaching"),
        ("NeedsReauthorization", "Sum", "GreaterThanOrEqualToThreshold", 1, "notBreaching"),
        ("SyncLag", "Maximum", "GreaterThanThreshold", 3600, "breaching"),  # a sync that stops reporting pages too
        ("NotConnected", "Sum", "GreaterThanOrEqualToThreshold", 1, "notBreaching"),
        ("LongLivedTokenDaysLeft", "Minimum", "LessThanThreshold", 14, "notBreaching"),
        ("AmoAccountUnpaid", "Sum", "GreaterThanOrEqualToThreshold", 1, "notBreaching"),
        ("WebhookUnauthorized", "Sum", "GreaterThanOrEqualToThreshold", 5, "notBreaching"),  # the rate of 401s
        ("WebhookSecretMissing", "Sum", "GreaterThanOrEqualToThreshold", 1, "notBreaching"),
    ],
)
def test_the_services_own_failures_page(metric, statistic, comparison, threshold, missing):
    alarm = _alarm_on("AmoCrmIntegration", metric, service={"Ref": "AWS::StackName"})
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == (
        statistic,
        comparison,
        threshold,
        missing,
    )
    assert metric in EMITTED, f"no code emits {metric}"


@pytest.mark.parametrize("queue_id", QUEUES)
def test_a_stuck_consumer_pages_before_anything_reaches_the_dead_letter_queue(queue_id):
    queue = QUEUES[queue_id]
    age = _alarm_on("AWS/SQS", "ApproximateAgeOfOldestMessage", QueueName={"Fn::GetAtt": [queue_id, "QueueName"]})
    assert (age["Statistic"], age["Threshold"]) == ("Maximum", queue.max_age)
    failed = _alarm_on(
        "AmoCrmIntegration", "QueueBatchFailed", service={"Ref": "AWS::StackName"}, Queue=queue.batch_label
    )
    assert (failed["Statistic"], failed["Threshold"], failed["EvaluationPeriods"], failed["DatapointsToAlarm"]) == (
        "Sum",
        1,
        3,
        3,
    )
    assert "QueueBatchFailed" in EMITTED
    # the label is the one the consumer hands queue_batch.run
    code = (ROOT / "app.py").read_text() + CODE
    calls = [code[m.end() : m.end() + 400] for m in re.finditer(r"queue_batch\.run\(", code)]
    assert [c for c in calls if f'"{queue.batch_label}",\n' in c or f'"{queue.batch_label}")' in c], queue.batch_label


def test_the_webhook_routes_p99_latency_pages_before_amocrm_gives_up_at_2_seconds():
    alarm = _alarm_on(
        "AWS/ApiGateway",
        "Latency",
        ApiName={"Ref": "AWS::StackName"},
        Stage="api",
        Resource="/integrations/amo-crm/webhook",
        Method="POST",
    )
    assert (alarm["ExtendedStatistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "p99",
        1500,
        "GreaterThanThreshold",
    )
    assert "Statistic" not in alarm
    from app import app

    assert "POST" in app.routes["/integrations/amo-crm/webhook"]  # the route the alarm watches exists
    (setting,) = RESOURCES["RestAPI"]["Properties"]["MethodSettings"]  # its per-method metrics are on
    assert setting == {
        "ResourcePath": "/~1integrations~1amo-crm~1webhook",
        "HttpMethod": "POST",
        "MetricsEnabled": True,
    }


def test_any_429_from_amocrm_pages():
    alarm = _alarm_on("AmoCrmIntegration", "AmoRateLimited", service={"Ref": "AWS::StackName"})
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == ("Sum", "GreaterThanThreshold", 0)
    assert "AmoRateLimited" in EMITTED


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_dynamodb_throttling_of_every_table_pages(model):
    table = f"{model.__name__}Table"
    alarm = alarms()[f"{table}ThrottlesAlarm"]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    for query_id, metric in (("reads", "ReadThrottleEvents"), ("writes", "WriteThrottleEvents")):
        stat = queries[query_id]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "AWS/DynamoDB",
            "MetricName": metric,
            "Dimensions": [{"Name": "TableName", "Value": {"Ref": table}}],
        }
    assert [q["Expression"] for q in alarm["Metrics"] if q["ReturnData"]] == ["FILL(reads, 0) + FILL(writes, 0)"]


def test_cold_starts_are_counted_and_shown():
    assert "ColdStart" in EMITTED


def test_api_5xx_pages_on_this_stacks_api():
    alarm = _alarm_on("AWS/ApiGateway", "5XXError", ApiName={"Ref": "AWS::StackName"}, Stage="api")
    assert alarm["Threshold"] == 5
    assert RESOURCES["RestAPI"]["Properties"]["Name"] == {"Ref": "AWS::StackName"}
    assert CONFIG["stages"]["prod"]["api_gateway_stage"] == "api"


def test_every_alarm_notifies_the_topic_which_mails_the_address_given():
    for name, alarm in paging().items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] == alarm["OKActions"], name
        assert alarm["AlarmDescription"], name
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert subscription["Condition"] in TEMPLATE["Conditions"] and "AlarmEmail" in TEMPLATE["Parameters"]
    # per queue: dead letters, age, failed batches; dead notifications; per function: errors,
    # throttles; 5xx, webhook latency; blocked, 429s, re-authorization, not connected, lag,
    # long-lived token, unpaid account, webhook 401s, no webhook secret; per table: throttling
    assert len(paging()) == 3 * len(QUEUES) + 1 + 2 * len(FUNCTIONS) + 2 + 9 + len(ALL_MODELS)
    assert set(alarms()) - set(paging()) == {"SyncLagMetricAlarm"}


def test_a_stage_not_connected_pages_once_as_such_and_its_sync_lag_does_not_page():
    not_connected = _alarm_on("AmoCrmIntegration", "NotConnected", service={"Ref": "AWS::StackName"})
    assert "Stage not connected" in not_connected["AlarmDescription"]
    assert (not_connected["Period"], not_connected["TreatMissingData"]) == (3600, "notBreaching")
    assert "NotConnected" in EMITTED
    composite = RESOURCES["SyncLagAlarm"]
    assert composite["Type"] == "AWS::CloudWatch::CompositeAlarm"
    assert composite["Properties"]["AlarmRule"] == {
        "Fn::Sub": 'ALARM("${SyncLagMetricAlarm}") AND NOT ALARM("${NotConnectedAlarm}")'
    }
    assert "AlarmActions" not in RESOURCES["SyncLagMetricAlarm"]["Properties"]


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_schedules_are_not_retried_the_next_run_heals_them(function_id):
    config = RESOURCES[function_id]["Properties"].get("EventInvokeConfig")
    assert config == ({"MaximumRetryAttempts": 0} if FUNCTIONS[function_id].schedule else None)


def test_the_functions_marked_as_schedules_are_app_pys_schedules():
    from app import app

    schedules = {s.name for s in app.event_sources if type(s).__name__ == "ScheduledEventConfig"}
    assert schedules == {f.name for f in FUNCTIONS.values() if f.schedule}


def test_every_function_logs_json_to_its_own_log_group_kept_30_days_by_default():
    assert TEMPLATE["Parameters"]["LogRetentionDays"]["Default"] == 30
    for function_id in FUNCTIONS:
        logging = RESOURCES[function_id]["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON"
        group = RESOURCES[logging["LogGroup"]["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        statement = next(s for s in POLICIES[function_id]["Statement"] if s["Sid"] == "OwnLogGroup")
        assert statement["Resource"] == {"Fn::GetAtt": [logging["LogGroup"]["Ref"], "Arn"]}


def test_tracing_is_on_with_its_two_iam_actions():
    assert CONFIG["xray"] is True and RESOURCES["RestAPI"]["Properties"]["TracingEnabled"] is True
    for function_id, policy in POLICIES.items():
        actions = {a for s in policy["Statement"] for a in s["Action"]}
        assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions, function_id


def test_the_dashboard_shows_the_services_metrics_and_refers_only_to_real_resources():
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    shown = set(re.findall(r'"AmoCrmIntegration","(\w+)"', body)) | set(re.findall(r'MetricName=\\"(\w+)\\"', body))
    assert EMITTED <= shown, f"not on the dashboard: {EMITTED - shown}"
    for reference in re.findall(r"\$\{([\w:.]+)\}", body):
        name = reference.split(".")[0]
        assert name.startswith("AWS::") or name in RESOURCES or name in TEMPLATE["Parameters"], reference
    assert all(f"${{{a}.Arn}}" in body for a in alarms())


def test_no_secret_sits_in_the_deployed_configuration_only_references_to_secrets_manager():
    assert "{{resolve:" not in json.dumps(CONFIG) and "secretsmanager:" not in json.dumps(CONFIG)
    for function_id in FUNCTIONS:
        variables = RESOURCES[function_id]["Properties"]["Environment"]["Variables"]
        for variable, secret in SECRET_OF.items():
            assert variables[variable] == {"Fn::Sub": f"secretsmanager:${{SecretsPrefix}}{secret}#{variable}"}
    assert TEMPLATE["Parameters"]["SecretsPrefix"]["Default"] == "amocrm-integration/prod/"


def _resources_of(policy: dict, action_prefix: str) -> list:
    return [
        r
        for s in policy["Statement"]
        if any(a.startswith(action_prefix) for a in s["Action"])
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]


def test_each_function_may_read_only_its_own_secrets_the_webhook_consumer_none_of_the_main_backends():
    for function_id, function in FUNCTIONS.items():
        granted = {
            r["Fn::Sub"].split("${SecretsPrefix}")[1].removesuffix("-??????")
            for r in _resources_of(POLICIES[function_id], "secretsmanager:")
        }
        assert granted == set(function.secrets), function_id
        assert all(s in SECRETS for s in granted)
    assert "main-backend" not in FUNCTIONS["ProcessWebhooks"].secrets
    assert "amocrm" not in FUNCTIONS["DeliverNotifications"].secrets


def test_every_arn_is_one_of_the_stacks_resources_or_scoped_to_its_region_and_account():
    for function_id, policy in POLICIES.items():
        for statement in policy["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                if statement["Sid"] == "Tracing":
                    assert resource == "*"  # X-Ray's actions take no resource
                elif "Fn::GetAtt" in resource:
                    assert resource["Fn::GetAtt"][0] in RESOURCES, (function_id, resource)
                else:
                    text = resource["Fn::Sub"]
                    assert text.startswith("${") or ":${AWS::Region}:${AWS::AccountId}:" in text, (function_id, text)


def test_the_log_level_is_pinned_where_lambda_filters_and_nowhere_else():
    for function_id in FUNCTIONS:
        logging = RESOURCES[function_id]["Properties"]["LoggingConfig"]
        assert (logging["ApplicationLogLevel"], logging["SystemLogLevel"]) == ("INFO", "INFO"), function_id
    assert "LOG_LEVEL" not in json.dumps(CONFIG)  # it would not apply: AWS_LAMBDA_LOG_LEVEL wins
