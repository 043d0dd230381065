"""The packaged template of a second stage, as `make package STAGE=staging` writes it: every name
is the stage's own, its consumers read its own queues, and cfn-lint passes (the build runs it)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import package
from scripts.infra_spec import QUEUES, function_setting

ROOT = Path(__file__).resolve().parent.parent
STAGE = "staging"


@pytest.fixture(scope="module")
def sam(tmp_path_factory) -> dict:
    """`scripts/package.py --stage staging` on a copy of the project (packaging writes a cache)."""
    tmp = tmp_path_factory.mktemp("package")
    project = tmp / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(".venv", ".git", ".local", "out", "__pycache__", ".pytest_cache", ".hypothesis"),
    )
    built = subprocess.run(
        [sys.executable, "scripts/package.py", "--stage", STAGE, str(tmp / "out")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]  # chalice package, then cfn-lint
    return json.loads((tmp / "out" / "sam.json").read_text())


def resources_of(sam: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in sam["Resources"].items() if r["Type"] == kind}


def test_the_staging_template_names_only_staging_resources(sam):
    text = json.dumps(sam)
    assert "amocrm-prod-" not in text and "amocrm-integration/prod/" not in text and "stage=prod" not in text
    assert package.foreign_names(sam, STAGE, ["dev", "prod", STAGE]) == []
    assert sam["Parameters"]["TablePrefix"]["Default"] == "amocrm-staging-"
    assert sam["Parameters"]["SecretsPrefix"]["Default"] == "amocrm-integration/staging/"


def test_each_consumer_reads_its_own_stacks_queue_whose_visibility_covers_the_stages_timeout(sam):
    functions = resources_of(sam, "AWS::Serverless::Function")
    for queue_id, queue in QUEUES.items():
        (event,) = [e for e in functions[queue.consumer]["Properties"]["Events"].values() if e["Type"] == "SQS"]
        assert event["Properties"]["Queue"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        timeout = functions[queue.consumer]["Properties"]["Timeout"]
        assert timeout == function_setting(STAGE, _config_name(queue.consumer), "lambda_timeout")
        assert sam["Resources"][queue_id]["Properties"]["VisibilityTimeout"] >= 6 * timeout
    assert not [f for f, r in functions.items() if f not in {q.consumer for q in QUEUES.values()} and _sqs(r)]


def _sqs(resource: dict) -> list:
    return [e for e in (resource["Properties"].get("Events") or {}).values() if e["Type"] == "SQS"]


def _config_name(function_id: str) -> str:
    from scripts.infra_spec import FUNCTIONS

    return FUNCTIONS[function_id].name


def test_a_template_naming_another_stages_queue_is_refused():
    template = {
        "Resources": {
            "ContinueSync": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Environment": {"Variables": {"SYNC_QUEUE_NAME": "amocrm-prod-sync"}},
                    "Events": {"E": {"Type": "SQS", "Properties": {"Queue": {"Fn::Sub": "arn:…:amocrm-prod-sync"}}}},
                },
            }
        }
    }
    with pytest.raises(SystemExit, match="names another stage's resources: amocrm-prod-sync"):
        package.finish(template, STAGE)
    assert template["Resources"]["ContinueSync"]["Properties"]["Events"]["E"]["Properties"]["Queue"] == {
        "Fn::GetAtt": ["SyncQueue", "Arn"]
    }
    assert package.foreign_names({"x": "secretsmanager:amocrm-integration/prod/amocrm#A"}, STAGE, ["prod"]) == [
        "secretsmanager:amocrm-integration/prod/amocrm#A"
    ]
    assert package.foreign_names({"x": "amocrm-integration-production"}, STAGE, ["prod"]) == []


def test_a_stage_that_is_not_deployed_is_not_packaged(tmp_path):
    with pytest.raises(SystemExit, match="dev is not a deployed stage"):
        package.build("dev", tmp_path / "out")


def test_a_failed_first_create_takes_its_tables_with_it_a_deleted_stack_keeps_them(sam):
    tables = resources_of(sam, "AWS::DynamoDB::Table")
    assert len(tables) == 15
    for name, table in tables.items():
        assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain"), name


def test_reserved_concurrency_is_a_choice_the_deploy_makes_from_the_accounts_quota(sam):
    parameter = sam["Parameters"]["ReserveConcurrency"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["true", "false"])
    assert sam["Conditions"]["ReservesConcurrency"] == {"Fn::Equals": [{"Ref": "ReserveConcurrency"}, "true"]}
    reserved = {
        name: r["Properties"]["ReservedConcurrentExecutions"]
        for name, r in resources_of(sam, "AWS::Serverless::Function").items()
        if "ReservedConcurrentExecutions" in r["Properties"]
    }
    assert reserved == {
        "ContinueSync": {"Fn::If": ["ReservesConcurrency", 2, {"Ref": "AWS::NoValue"}]},
        "IncrementalSync": {"Fn::If": ["ReservesConcurrency", 1, {"Ref": "AWS::NoValue"}]},
    }


def test_stuck_queues_slow_webhooks_429s_and_dynamodb_throttling_page(sam):
    alarms = resources_of(sam, "AWS::CloudWatch::Alarm")
    on = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) for a in alarms.values()}
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage") in on and ("AmoCrmIntegration", "QueueBatchFailed") in on
    assert ("AWS/ApiGateway", "Latency") in on and ("AmoCrmIntegration", "AmoRateLimited") in on
    assert {f"{q}AgeAlarm" for q in QUEUES} | {f"{q}BatchFailedAlarm" for q in QUEUES} <= set(alarms)
    assert len([a for a in alarms if a.endswith("TableThrottlesAlarm")]) == 15
    api = sam["Resources"]["RestAPI"]["Properties"]
    assert api["MethodSettings"] == [
        {"ResourcePath": "/~1integrations~1amo-crm~1webhook", "HttpMethod": "POST", "MetricsEnabled": True}
    ]
    assert "/integrations/amo-crm/webhook" in api["DefinitionBody"]["paths"]


def test_a_stage_not_connected_pages_once_and_its_schedules_are_not_retried(sam):
    alarm = sam["Resources"]["NotConnectedAlarm"]["Properties"]
    assert alarm["MetricName"] == "NotConnected" and alarm["AlarmDescription"].startswith("Stage not connected")
    assert sam["Resources"]["SyncLagAlarm"]["Type"] == "AWS::CloudWatch::CompositeAlarm"
    functions = resources_of(sam, "AWS::Serverless::Function")
    schedules = {
        f
        for f, r in functions.items()
        if any(e["Type"] == "Schedule" for e in r["Properties"].get("Events", {}).values())
    }
    assert schedules == {"IncrementalSync", "NotificationSweeper", "RefreshToken"}
    for name, function in functions.items():
        expected = {"MaximumRetryAttempts": 0} if name in schedules else None
        assert function["Properties"].get("EventInvokeConfig") == expected, name


def test_every_function_pins_its_log_level_so_no_filter_can_drop_the_metric_lines(sam):
    for name, function in resources_of(sam, "AWS::Serverless::Function").items():
        logging = function["Properties"]["LoggingConfig"]
        assert (logging["LogFormat"], logging["ApplicationLogLevel"], logging["SystemLogLevel"]) == (
            "JSON",
            "INFO",
            "INFO",
        ), name
        assert "LOG_LEVEL" not in function["Properties"]["Environment"]["Variables"], name  # Lambda's level rules


def test_each_role_in_the_package_reaches_only_its_own_functions_tables(sam):
    from scripts.build_infra import uses

    for function_id, (tables, actions) in uses().items():
        function = sam["Resources"][function_id]["Properties"]
        role = sam["Resources"][function["Role"]["Fn::GetAtt"][0]]
        (statement,) = [
            s for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] if s["Sid"] == "OwnTables"
        ]
        granted = {r["Fn::GetAtt"][0] for r in statement["Resource"] if "Fn::GetAtt" in r}
        assert (granted, set(statement["Action"])) == (set(tables), set(actions)), function_id
    refresh = sam["Resources"]["RefreshTokenRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert "LeadTable" not in json.dumps(refresh)


def test_each_function_rolls_out_through_its_alias_and_rolls_back_on_its_alarms(sam):
    functions = resources_of(sam, "AWS::Serverless::Function")
    for name, function in functions.items():
        properties = function["Properties"]
        assert (properties["AutoPublishAlias"], properties["AutoPublishAliasAllProperties"]) == ("live", True), name
        preference = properties["DeploymentPreference"]
        assert preference["Type"] == {"Ref": "DeploymentType"}
        alarms = {a["Ref"] for a in preference["Alarms"]}
        assert f"{name}ErrorsAlarm" in alarms and alarms <= set(sam["Resources"]), name
    assert {"Api5xxAlarm", "WebhookLatencyAlarm"} <= {
        a["Ref"] for a in functions["APIHandler"]["Properties"]["DeploymentPreference"]["Alarms"]
    }
    for queue_id, queue in QUEUES.items():
        alarms = functions[queue.consumer]["Properties"]["DeploymentPreference"]["Alarms"]
        assert {"Ref": f"{queue_id}AgeAlarm"} in alarms
    assert sam["Parameters"]["DeploymentType"]["Default"] == "Canary10Percent5Minutes"


def test_api_traffic_invokes_the_alias_so_it_follows_the_canary(sam):
    target = {"Target": {"Ref": "APIHandler.Alias"}}
    for path, methods in sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"].items():
        for method, operation in methods.items():
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert uri[1] == target and "${Target}/invocations" in uri[0], (path, method)
    assert "APIHandler.Arn" not in json.dumps(sam["Resources"]["RestAPI"])
    assert sam["Resources"]["APIHandlerInvokePermission"]["Properties"]["FunctionName"] == {"Ref": "APIHandler.Alias"}


def test_an_optional_custom_domain_keeps_the_apis_address_across_a_recreated_api(sam):
    assert sam["Parameters"]["ApiDomainName"]["Default"] == ""
    domain, mapping = sam["Resources"]["ApiDomain"], sam["Resources"]["ApiDomainMapping"]
    assert domain["Condition"] == mapping["Condition"] == "HasApiDomain"
    assert domain["Properties"]["CertificateArn"] == {"Ref": "ApiCertificateArn"}
    assert mapping["Properties"]["RestApiId"] == {"Ref": "RestAPI"}
    assert mapping["Properties"]["Stage"] == {"Ref": "RestAPI.Stage"}
    url = sam["Outputs"]["ApiURL"]["Value"]["Fn::If"]
    assert url[0] == "HasApiDomain" and url[1] == {"Fn::Sub": "https://${ApiDomainName}/"}
