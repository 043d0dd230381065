"""`make deploy` / `make destroy` without AWS: the bucket and secrets are found or created (moto),
the template points at the uploaded package, parameters follow the stage, the local stage is
refused, and destroy says what it leaves behind. CloudFormation's and Lambda's answers (a
rolled-back first create, nothing to change, a failed create, the account's concurrency quota)
are botocore Stubber responses: the calls deploy.py makes, in order."""

import datetime
import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from scripts import deploy

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def test_the_local_stage_is_not_deployable_and_each_stage_gets_its_own_prefixes():
    with pytest.raises(SystemExit, match="not a deployed stage"):
        deploy.stage_settings("dev")
    for stage in ("prod", "staging"):
        env = deploy.stage_settings(stage)
        given = deploy.parameters(stage, env, alarm_email="ops@example.com", retention_days=30)
        assert {p["ParameterKey"]: p["ParameterValue"] for p in given} == {
            "TablePrefix": f"amocrm-{stage}-",
            "SecretsPrefix": f"amocrm-integration/{stage}/",
            "AlarmEmail": "ops@example.com",
            "LogRetentionDays": "30",
            "ReserveConcurrency": "false",
            "DeploymentType": "Canary10Percent5Minutes",
            "ApiDomainName": "",
            "ApiCertificateArn": "",
        }
    with pytest.raises(SystemExit, match="keeps its secrets under amocrm-integration/staging/"):
        deploy.parameters(
            "staging",
            {"AMO_CLIENT_SECRET": "secretsmanager:amocrm-integration/prod/amocrm#X"},
            alarm_email="",
            retention_days=30,
        )


def test_a_stage_that_names_its_own_queues_or_tables_is_refused():
    config = deploy.chalice_config()
    config["stages"]["staging"]["environment_variables"]["SYNC_QUEUE_NAME"] = "amocrm-prod-sync"
    with pytest.raises(SystemExit, match="sets SYNC_QUEUE_NAME"):
        deploy.stage_settings("staging", config)


def test_the_bucket_and_the_secrets_are_created_once_then_found():
    s3, secrets = boto3.client("s3", region_name="eu-central-1"), boto3.client("secretsmanager")
    bucket = "amocrm-integration-deploy-123456789012-eu-central-1"
    assert deploy.ensure_bucket(s3, "123456789012", "eu-central-1") == bucket
    assert deploy.ensure_bucket(s3, "123456789012", "eu-central-1") == bucket
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert deploy.ensure_secrets(secrets, "prod") == [f"amocrm-integration/prod/{s}" for s in deploy.SECRETS]
    assert deploy.ensure_secrets(secrets, "prod") == []


def test_the_uploaded_template_runs_the_uploaded_package(tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bkt")
    (tmp_path / "deployment.zip").write_bytes(b"zip")
    (tmp_path / "sam.json").write_text(
        json.dumps(
            {
                "Resources": {
                    "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "./deployment.zip"}},
                    "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
                }
            }
        )
    )
    url = deploy.upload(s3, "bkt", "us-east-1", "amocrm-integration-prod", tmp_path)
    key = url.split(".amazonaws.com/")[1]
    template = json.loads(s3.get_object(Bucket="bkt", Key=key)["Body"].read())
    code_uri = template["Resources"]["Fn"]["Properties"]["CodeUri"]
    assert code_uri.startswith("s3://bkt/amocrm-integration-prod/") and code_uri.endswith(".zip")
    assert s3.get_object(Bucket="bkt", Key=code_uri.removeprefix("s3://bkt/"))["Body"].read() == b"zip"


class FakeCloudFormation:
    def get_template(self, **kwargs):
        return {"TemplateBody": {"Resources": {"LeadTable": {"DeletionPolicy": "RetainExceptOnCreate"}, "Queue": {}}}}

    def describe_stack_resources(self, **kwargs):
        return {
            "StackResources": [
                {
                    "LogicalResourceId": "LeadTable",
                    "ResourceType": "AWS::DynamoDB::Table",
                    "PhysicalResourceId": "amocrm-prod-leads",
                },
                {"LogicalResourceId": "Queue", "ResourceType": "AWS::SQS::Queue", "PhysicalResourceId": "q"},
            ]
        }


def test_destroy_names_the_retained_tables():
    assert deploy.left_behind(FakeCloudFormation(), "amocrm-integration-prod") == [
        "AWS::DynamoDB::Table amocrm-prod-leads"
    ]


STACK = "amocrm-integration-prod"
STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{STACK}/1"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TEMPLATE_URL = "https://bkt.s3.us-east-1.amazonaws.com/t.json"


def stubbed(service: str):
    client = boto3.client(service, region_name="us-east-1")
    return client, Stubber(client)


def stack(status: str, **extra) -> dict:
    return {"Stacks": [{"StackName": STACK, "StackId": STACK_ID, "CreationTime": NOW, "StackStatus": status, **extra}]}


def event(logical_id: str, status: str, reason: str = "", kind: str = "AWS::Lambda::Function") -> dict:
    return {
        "StackId": STACK_ID,
        "EventId": f"{logical_id}-{status}",
        "StackName": STACK,
        "LogicalResourceId": logical_id,
        "ResourceType": kind,
        "Timestamp": NOW,
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
    }


# a first create that failed on reserved concurrency (a new account's quota of 10), newest first
FAILED_CREATE_EVENTS = {
    "StackEvents": [
        event(STACK, "ROLLBACK_COMPLETE", kind="AWS::CloudFormation::Stack"),
        event("ContinueSync", "CREATE_FAILED", "Resource creation cancelled"),
        event(
            "IncrementalSync",
            "CREATE_FAILED",
            "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
            "below its minimum value of [10].",
        ),
        event(STACK, "CREATE_IN_PROGRESS", "User Initiated", kind="AWS::CloudFormation::Stack"),
    ]
}


def test_a_stack_left_in_rollback_complete_by_a_failed_first_deploy_is_deleted_then_created_again(capsys):
    cloudformation, stub = stubbed("cloudformation")
    stub.add_response("describe_stack_events", FAILED_CREATE_EVENTS, {"StackName": STACK})
    stub.add_response("delete_stack", {}, {"StackName": STACK})
    stub.add_client_error(
        "describe_stacks", service_error_code="ValidationError", service_message=f"Stack with id {STACK} does not exist"
    )
    with stub:
        kind = deploy.prepare(cloudformation, STACK, stack("ROLLBACK_COMPLETE")["Stacks"][0])
    stub.assert_no_pending_responses()
    assert kind == "CREATE"
    out = capsys.readouterr()
    assert "ROLLBACK_COMPLETE: its first create failed" in out.out and f"deleting {STACK}" in out.out
    failures = out.err.splitlines()
    assert "IncrementalSync" in failures[1] and "minimum value of [10]" in failures[1]  # the cause, first
    assert "ContinueSync" in failures[2]


def test_the_change_set_of_a_recreated_stack_is_a_create():
    cloudformation, stub = stubbed("cloudformation")
    stub.add_response(
        "create_change_set",
        {"Id": "cs", "StackId": STACK_ID},
        {
            "StackName": STACK,
            "ChangeSetName": ANY,
            "ChangeSetType": "CREATE",
            "TemplateURL": TEMPLATE_URL,
            "Parameters": [],
            "Capabilities": deploy.CAPABILITIES,
        },
    )
    stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"})
    stub.add_response("execute_change_set", {})
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE"))
    with stub:
        changed = deploy.apply_change_set(
            cloudformation, STACK, template_url=TEMPLATE_URL, stack_parameters=[], kind="CREATE"
        )
    stub.assert_no_pending_responses()
    assert changed is True


def test_a_deploy_with_nothing_to_change_says_so_and_removes_its_empty_change_set(capsys):
    cloudformation, stub = stubbed("cloudformation")
    reason = "The submitted information didn't contain changes. Submit different information to create a change set."
    stub.add_response("create_change_set", {"Id": "cs", "StackId": STACK_ID})
    stub.add_response("describe_change_set", {"Status": "FAILED", "StatusReason": reason})  # the waiter
    stub.add_response("describe_change_set", {"Status": "FAILED", "StatusReason": reason})
    stub.add_response("delete_change_set", {}, {"StackName": STACK, "ChangeSetName": ANY})
    with stub:
        changed = deploy.apply_change_set(
            cloudformation, STACK, template_url=TEMPLATE_URL, stack_parameters=[], kind="UPDATE"
        )
    stub.assert_no_pending_responses()  # and no execute_change_set
    assert changed is False
    assert "is up to date" in capsys.readouterr().out


def test_a_failed_create_prints_what_failed_and_how_to_retry(capsys):
    cloudformation, stub = stubbed("cloudformation")
    stub.add_response("create_change_set", {"Id": "cs", "StackId": STACK_ID})
    stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE"})
    stub.add_response("execute_change_set", {})
    stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"))  # the waiter gives up
    stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"))
    stub.add_response("describe_stack_events", FAILED_CREATE_EVENTS)
    with stub, pytest.raises(SystemExit, match="run make deploy again: it deletes the rolled-back stack"):
        deploy.apply_change_set(cloudformation, STACK, template_url=TEMPLATE_URL, stack_parameters=[], kind="CREATE")
    stub.assert_no_pending_responses()
    assert "minimum value of [10]" in capsys.readouterr().err


def test_a_missing_stack_is_created_and_a_stack_under_way_or_stuck_is_not_touched():
    cloudformation, stub = stubbed("cloudformation")
    stub.add_client_error("describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist")
    with stub:
        assert deploy.current_stack(cloudformation, STACK) is None
    assert deploy.prepare(cloudformation, STACK, None) == "CREATE"
    assert deploy.prepare(cloudformation, STACK, {"StackStatus": "REVIEW_IN_PROGRESS"}) == "CREATE"
    assert deploy.prepare(cloudformation, STACK, {"StackStatus": "UPDATE_ROLLBACK_COMPLETE"}) == "UPDATE"
    with pytest.raises(SystemExit, match="another operation is under way"):
        deploy.prepare(cloudformation, STACK, {"StackStatus": "UPDATE_IN_PROGRESS"})
    with pytest.raises(SystemExit, match="continue-update-rollback"):
        deploy.prepare(cloudformation, STACK, {"StackStatus": "UPDATE_ROLLBACK_FAILED"})


def account(quota: int, unreserved: int) -> dict:
    return {"AccountLimit": {"ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": unreserved}}


def test_reserved_concurrency_is_skipped_with_a_warning_where_the_accounts_quota_has_no_room(capsys):
    lambda_client, stub = stubbed("lambda")
    stub.add_response("get_account_settings", account(10, 10))
    stub.add_response("get_account_settings", account(1000, 1000))
    with stub:
        assert deploy.reserve_concurrency(lambda_client, needed=3, choice="auto", previous=None) == "false"
        assert deploy.reserve_concurrency(lambda_client, needed=3, choice="auto", previous=None) == "true"
    stub.assert_no_pending_responses()
    assert "reserved concurrency skipped" in capsys.readouterr().err
    # already reserved by this stack, or asked for explicitly: no question asked
    assert deploy.reserve_concurrency(lambda_client, needed=3, choice="auto", previous="true") == "true"
    assert deploy.reserve_concurrency(lambda_client, needed=3, choice="off", previous="true") == "false"
    assert deploy.reservation_needed("prod") == 3  # continue-sync 2 + incremental-sync 1


def test_an_empty_alarm_email_keeps_the_stacks_address_and_none_at_all_is_announced_loudly(capsys):
    env = deploy.stage_settings("prod")
    kept = deploy.parameters(
        "prod", env, alarm_email="", retention_days=30, previous={"AlarmEmail": "oncall@example.com"}
    )
    assert {"ParameterKey": "AlarmEmail", "ParameterValue": "oncall@example.com"} in kept
    assert deploy.warn_if_nobody_is_paged(kept, STACK) is False
    nobody = deploy.parameters("prod", env, alarm_email="", retention_days=30)
    assert deploy.warn_if_nobody_is_paged(nobody, STACK) is True
    assert "NOBODY WILL BE PAGED" in capsys.readouterr().err


def test_leftover_tables_of_the_stage_are_found_before_a_create():
    dynamodb, stub = stubbed("dynamodb")
    stub.add_response("list_tables", {"TableNames": ["amocrm-prod-leads", "amocrm-staging-leads", "other"]})
    with stub:
        assert deploy.leftover_tables(dynamodb, "amocrm-prod-") == ["amocrm-prod-leads"]


def test_the_apis_custom_domain_outlives_deploys_that_do_not_mention_it():
    env = deploy.stage_settings("prod")
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/abc"

    def values(**given):
        found = deploy.parameters("prod", env, alarm_email="", retention_days=30, **given)
        return {p["ParameterKey"]: p["ParameterValue"] for p in found}

    first = values(api_domain="amocrm.example.com", api_certificate=certificate)
    assert (first["ApiDomainName"], first["ApiCertificateArn"]) == ("amocrm.example.com", certificate)
    kept = values(previous=first)
    assert (kept["ApiDomainName"], kept["ApiCertificateArn"]) == ("amocrm.example.com", certificate)
    removed = values(api_domain="none", previous=first)
    assert (removed["ApiDomainName"], removed["ApiCertificateArn"]) == ("", "")
    with pytest.raises(SystemExit, match="needs API_CERTIFICATE_ARN"):
        values(api_domain="amocrm.example.com")
