"""`python -m chalicelib.cli --stage NAME`: the stage's environment from its stack (botocore
Stubber answers describe_stacks as CloudFormation does) and .chalice/config.json; the tables,
queues and secrets it names are moto's."""

import datetime
import json
import os
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib import cli
from scripts import stage_env
from scripts.infra_spec import SECRET_OF, chalice_config

pytestmark = pytest.mark.usefixtures("aws")

STAGE = "staging"
STACK = "amocrm-integration-staging"
REGION = "us-east-1"
QUEUE = f"https://sqs.{REGION}.amazonaws.com/123456789012/amocrm-staging-"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/api/"


@pytest.fixture(autouse=True)
def restored_environment():
    """--stage changes this process's environment; every test gets the one it started with."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


def described(status="CREATE_COMPLETE", outputs=None, dlq=None) -> dict:
    outputs = (
        outputs
        if outputs is not None
        else {
            "SyncQueue": QUEUE + "sync",
            "WebhookQueue": QUEUE + "webhooks",
            "NotifyQueue": QUEUE + "notifications",
            "NotifyQueueDLQ": dlq or QUEUE + "notifications-dlq",
            "NotifyQueueDLQArn": f"arn:aws:sqs:{REGION}:123456789012:amocrm-staging-notifications-dlq",
            "ApiURL": API_URL,
            "Dashboard": "https://us-east-1.console.aws.amazon.com/cloudwatch/home",
        }
    )
    return {
        "Stacks": [
            {
                "StackName": STACK,
                "StackId": f"arn:aws:cloudformation:{REGION}:123456789012:stack/{STACK}/1",
                "CreationTime": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
                "StackStatus": status,
                "Parameters": [
                    {"ParameterKey": "TablePrefix", "ParameterValue": "amocrm-staging-"},
                    {"ParameterKey": "SecretsPrefix", "ParameterValue": "amocrm-integration/staging/"},
                    {"ParameterKey": "AlarmEmail", "ParameterValue": "oncall@example.com"},
                ],
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
            }
        ]
    }


def stubbed_stack(monkeypatch, *answers) -> Stubber:
    """CloudFormation for the CLI, answering describe_stacks with `answers` in turn."""
    client = boto3.client("cloudformation", region_name=REGION)
    stub = Stubber(client)
    asked = {"StackName": STACK}
    for answer in answers:
        if isinstance(answer, Exception):
            stub.add_client_error("describe_stacks", "ValidationError", str(answer), expected_params=asked)
        else:
            stub.add_response("describe_stacks", answer, asked)
    stub.activate()
    monkeypatch.setattr(stage_env, "cloudformation_client", lambda: client)
    return stub


def test_the_stages_environment_comes_from_its_stack_and_its_settings():
    client = boto3.client("cloudformation", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response("describe_stacks", described(), {"StackName": STACK})
        env = stage_env.environment(STAGE, client)

    assert env["TABLE_PREFIX"] == "amocrm-staging-"
    assert (env["SYNC_QUEUE_URL"], env["WEBHOOK_QUEUE_URL"], env["NOTIFY_QUEUE_URL"], env["NOTIFY_DLQ_URL"]) == (
        QUEUE + "sync",
        QUEUE + "webhooks",
        QUEUE + "notifications",
        QUEUE + "notifications-dlq",
    )
    assert env["WEBHOOK_PUBLIC_URL"] == API_URL + "integrations/amo-crm/webhook"
    staging = chalice_config()["stages"][STAGE]["environment_variables"]
    assert env["AMO_BASE_URL"] == staging["AMO_BASE_URL"] and env["AMO_REDIRECT_URI"] == staging["AMO_REDIRECT_URI"]
    for variable, secret in SECRET_OF.items():  # references, as the deployed functions hold them
        assert env[variable] == f"secretsmanager:amocrm-integration/staging/{secret}#{variable}"
    assert "amocrm-prod-" not in json.dumps(env) and "/prod/" not in json.dumps(env)


def test_create_tables_redrive_and_connect_act_on_the_stages_tables_queues_and_secrets(monkeypatch, capsys):
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="amocrm-staging-notifications-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody='{"eventId": "e-1"}')
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="amocrm-integration/staging/amocrm",
        SecretString=json.dumps({"AMO_CLIENT_ID": "staging-client-id", "AMO_CLIENT_SECRET": "staging-secret"}),
    )
    monkeypatch.setenv("AMO_RATE_BUDGET", "local")  # a local shell's setting the stage does not have
    stubbed_stack(monkeypatch, *[described(dlq=dlq)] * 3)

    assert cli.main(["--stage", STAGE, "create-tables"]) == 0
    created = capsys.readouterr()
    assert "amocrm-staging-leads: created" in created.out and "test-leads" not in created.out
    assert f"stage staging: stack {STACK} in {REGION}, tables amocrm-staging-…" in created.err
    assert "AMO_RATE_BUDGET" not in os.environ and os.environ["TABLE_PREFIX"] == "amocrm-staging-"

    assert cli.main(["redrive", "--stage", STAGE]) == 0  # after the command too
    assert "dead-letter messages cleared 1" in capsys.readouterr().out
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq)

    assert cli.main(["connect", "--stage", STAGE]) == 0
    out = capsys.readouterr()
    url = next(line for line in out.out.splitlines() if line.startswith("https://"))
    assert url.startswith("https://www.amocrm.ru/oauth?")  # staging's account (example-staging.amocrm.ru)
    assert dict(parse_qsl(urlsplit(url).query))["client_id"] == "staging-client-id"  # from the stage's secret
    assert "staging-secret" not in out.out + out.err


def test_a_stage_without_a_stack_or_with_a_failed_one_says_so(monkeypatch, capsys):
    rolled_back = described(status="ROLLBACK_COMPLETE", outputs={})
    stubbed_stack(monkeypatch, Exception(f"Stack with id {STACK} does not exist"), rolled_back)

    assert cli.main(["--stage", STAGE, "status"]) == 1
    assert f"there is no stack {STACK} in {REGION}" in capsys.readouterr().err
    assert cli.main(["--stage", STAGE, "status"]) == 1
    err = capsys.readouterr().err
    assert "is ROLLBACK_COMPLETE and lacks" in err and "A failed first deploy" in err and "Traceback" not in err
    assert os.environ["TABLE_PREFIX"] == "test-"  # nothing applied


def test_the_local_stage_a_local_endpoint_and_an_unknown_stage_are_refused(monkeypatch, capsys):
    stubbed_stack(monkeypatch)  # no AWS call is expected
    assert cli.main(["--stage", "dev", "status"]) == 1
    assert "'dev' is not a deployed stage" in capsys.readouterr().err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert cli.main(["--stage", STAGE, "status"]) == 1
    assert "AWS_ENDPOINT_URL is set (http://127.0.0.1:5000" in capsys.readouterr().err


def test_every_command_takes_the_stage():
    parser = cli.build_parser()
    for command in cli.COMMANDS:
        assert parser.parse_args(["--stage", "prod", command]).stage == "prod"
        assert parser.parse_args([command, "--stage", "prod"]).stage == "prod"
        assert parser.parse_args([command]).stage is None
