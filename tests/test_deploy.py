"""`make deploy` / `make destroy` without AWS: the bucket and secrets are found or created (moto),
the template points at the uploaded package, parameters follow the stage, the local stage is
refused, and destroy says what it leaves behind."""

import json

import boto3
import pytest

from scripts import deploy

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def test_the_local_stage_is_not_deployable_and_each_stage_gets_its_own_prefixes():
    with pytest.raises(SystemExit, match="not a deployed stage"):
        deploy.stage_settings("dev")
    for stage in ("prod", "staging"):
        env = deploy.stage_settings(stage)
        values = {p["ParameterKey"]: p["ParameterValue"] for p in deploy.parameters(stage, env, "ops@example.com", 30)}
        assert values == {
            "TablePrefix": f"amocrm-{stage}-",
            "SecretsPrefix": f"amocrm-integration/{stage}/",
            "AlarmEmail": "ops@example.com",
            "LogRetentionDays": "30",
        }
    with pytest.raises(SystemExit, match="keeps its secrets under amocrm-integration/staging/"):
        deploy.parameters("staging", {"AMO_CLIENT_SECRET": "secretsmanager:amocrm-integration/prod/amocrm#X"}, "", 30)


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
        return {"TemplateBody": {"Resources": {"LeadTable": {"DeletionPolicy": "Retain"}, "Queue": {}}}}

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
