"""One-command deploy and teardown of a deployed stage (`make deploy`, `make destroy`).

deploy STAGE: build the package (scripts/package.py: pinned runtime, slim zip, cfn-lint), find or
create the deployment bucket (`amocrm-integration-deploy-<account>-<region>`, private,
encrypted) and the stage's three secrets (created empty when missing: fill them), upload the
package and the template, and create or update the stack `amocrm-integration-<stage>`
through a change set. Parameters: the stage's table prefix and secrets prefix, ALARM_EMAIL,
LOG_RETENTION_DAYS.

destroy STAGE: delete the stack. What stays behind, said at the end: the DynamoDB tables
(DeletionPolicy Retain: the data survives a mistaken destroy), the secrets and the deployment
bucket (never part of the stack). Log groups, queues (with any dead letters), alarms, the
dashboard, the topic, functions, roles and the API go with the stack.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.infra_spec import (  # noqa: E402
    APP,
    SECRETS,
    chalice_config,
    deployed_stages,
    resource_prefix,
    secrets_prefix,
    stack_name,
)

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]


class DeployError(SystemExit):
    """Stops the command with a message saying what to do."""


NAMED_BY_THE_STAGE = ("TABLE_PREFIX", "SYNC_QUEUE_NAME", "WEBHOOK_QUEUE_NAME", "NOTIFY_QUEUE_NAME")


def stage_settings(stage: str, config: dict[str, Any] | None = None) -> dict[str, str]:
    config = config or chalice_config()
    env = config.get("stages", {}).get(stage, {}).get("environment_variables") or {}
    if stage not in deployed_stages(config):
        raise DeployError(
            f"stage {stage!r} sets no AMO_BASE_URL in .chalice/config.json: it is not a deployed "
            "stage (dev is the local one, SPEC §5); copy the staging stage to add one"
        )
    named = [name for name in NAMED_BY_THE_STAGE if name in env]
    if named:
        raise DeployError(
            f"stages.{stage} sets {', '.join(named)}: a deployed stage's tables and queues are named after "
            f"the stage ({resource_prefix(stage)}…); remove them from .chalice/config.json"
        )
    return env


def parameters(stage: str, env: dict[str, str], alarm_email: str, retention_days: int) -> list[dict]:
    prefix = secrets_prefix(stage)
    for name, value in env.items():
        if value.startswith("secretsmanager:") and not value.startswith(f"secretsmanager:{prefix}"):
            raise DeployError(f"{name} refers to {value.split('#')[0]}; stage {stage} keeps its secrets under {prefix}")
    values = {
        "TablePrefix": resource_prefix(stage),
        "SecretsPrefix": prefix,
        "AlarmEmail": alarm_email,
        "LogRetentionDays": str(retention_days),
    }
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def ensure_bucket(s3: Any, account: str, region: str, name: str | None = None) -> str:
    bucket = name or f"{APP}-deploy-{account}-{region}"
    try:
        s3.head_bucket(Bucket=bucket)
        return bucket
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    options = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **options)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    print(f"created deployment bucket {bucket}")
    return bucket


def ensure_secrets(secretsmanager: Any, stage: str) -> list[str]:
    """The stage's secrets, created empty when missing; returns the ones just created."""
    created = []
    for secret, keys in SECRETS.items():
        name = secrets_prefix(stage) + secret
        try:
            secretsmanager.describe_secret(SecretId=name)
        except secretsmanager.exceptions.ResourceNotFoundException:
            secretsmanager.create_secret(Name=name, SecretString="{}", Description=f"{APP} {stage}: {', '.join(keys)}")
            created.append(name)
            example = json.dumps(dict.fromkeys(keys, "…"), ensure_ascii=False)
            print(
                f"created the empty secret {name}; fill it: aws secretsmanager put-secret-value "
                f"--secret-id {name} --secret-string '{example}'"
            )
    return created


def upload(s3: Any, bucket: str, region: str, stack: str, out: Path) -> str:
    """Upload the package and the template that points at it; the template's S3 URL."""
    package = (out / "deployment.zip").read_bytes()
    code_key = f"{stack}/{hashlib.sha256(package).hexdigest()}.zip"
    s3.put_object(Bucket=bucket, Key=code_key, Body=package)
    template = json.loads((out / "sam.json").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{code_key}"
    body = json.dumps(template).encode()
    template_key = f"{stack}/{hashlib.sha256(body).hexdigest()}.template.json"
    s3.put_object(Bucket=bucket, Key=template_key, Body=body)
    return f"https://{bucket}.s3.{region}.amazonaws.com/{template_key}"


def apply_change_set(cloudformation: Any, stack: str, template_url: str, stack_parameters: list[dict]) -> None:
    try:
        cloudformation.describe_stacks(StackName=stack)
        kind = "UPDATE"
    except cloudformation.exceptions.ClientError:
        kind = "CREATE"
    name = f"deploy-{hashlib.sha256(template_url.encode()).hexdigest()[:12]}"
    cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        ChangeSetType=kind,
        TemplateURL=template_url,
        Parameters=stack_parameters,
        Capabilities=CAPABILITIES,
    )
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(StackName=stack, ChangeSetName=name)
    except Exception:
        reason = cloudformation.describe_change_set(StackName=stack, ChangeSetName=name).get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            print(f"{stack} is up to date")
            return
        raise DeployError(f"change set failed: {reason}") from None
    cloudformation.execute_change_set(StackName=stack, ChangeSetName=name)
    waiter = "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
    cloudformation.get_waiter(waiter).wait(StackName=stack, WaiterConfig={"Delay": 10, "MaxAttempts": 360})
    outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        print(f"{output['OutputKey']}: {output['OutputValue']}")


def deploy(args: argparse.Namespace) -> None:
    import boto3

    from scripts import package

    env = stage_settings(args.stage)
    stack_parameters = parameters(args.stage, env, args.alarm_email, args.log_retention_days)
    out = ROOT / "out"
    package.build(args.stage, out)
    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    s3 = session.client("s3")
    bucket = ensure_bucket(s3, account, session.region_name, args.bucket)
    ensure_secrets(session.client("secretsmanager"), args.stage)
    stack = stack_name(args.stage)
    template_url = upload(s3, bucket, session.region_name, stack, out)
    apply_change_set(session.client("cloudformation"), stack, template_url, stack_parameters)


def left_behind(cloudformation: Any, stack: str) -> list[str]:
    """What deleting the stack keeps: its retained resources (the tables)."""
    template = cloudformation.get_template(StackName=stack, TemplateStage="Processed")["TemplateBody"]
    template = json.loads(template) if isinstance(template, str) else template
    retained = {k for k, r in template["Resources"].items() if r.get("DeletionPolicy") == "Retain"}
    resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    return sorted(
        f"{r['ResourceType']} {r['PhysicalResourceId']}" for r in resources if r["LogicalResourceId"] in retained
    )


def destroy(args: argparse.Namespace) -> None:
    import boto3

    stack = stack_name(args.stage)
    cloudformation = boto3.client("cloudformation")
    if not args.yes and (not sys.stdin.isatty() or input(f"type {stack} to delete it: ").strip() != stack):
        raise DeployError("not deleted (confirm interactively, or pass --yes)")
    kept = left_behind(cloudformation, stack)
    cloudformation.delete_stack(StackName=stack)
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack)
    print(f"{stack} deleted. Left behind on purpose (delete them by hand if you mean it):")
    for line in kept + [f"AWS::SecretsManager::Secret {secrets_prefix(args.stage)}{s}" for s in SECRETS]:
        print(f"  {line}")
    print(f"  AWS::S3::Bucket {APP}-deploy-<account>-<region> (the uploaded packages)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("deploy")
    up.add_argument("--stage", default="prod")
    up.add_argument("--bucket", default=None, help="deployment bucket (default: created or found for you)")
    up.add_argument("--alarm-email", default="", help="who the alarms page (confirm the e-mail AWS sends)")
    up.add_argument("--log-retention-days", type=int, default=30)
    down = commands.add_parser("destroy")
    down.add_argument("--stage", default="prod")
    down.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args()
    deploy(args) if args.command == "deploy" else destroy(args)


if __name__ == "__main__":
    main()
