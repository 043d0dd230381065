"""One-command deploy and teardown of a deployed stage (`make deploy`, `make destroy`).

deploy STAGE: build the package (scripts/package.py: pinned runtime, slim zip, cfn-lint), find or
create the deployment bucket (`amocrm-integration-deploy-<account>-<region>`, private,
encrypted) and the stage's three secrets (created empty when missing: fill them), upload the
package and the template, and create or update the stack `amocrm-integration-<stage>`
through a change set. Parameters: the stage's table prefix and secrets prefix, ALARM_EMAIL (an
empty one keeps the stack's address, and a stack without one is announced loudly),
LOG_RETENTION_DAYS, whether the syncs reserve concurrency (only where the account's
quota allows it: GetAccountSettings), ROLLOUT (how CodeDeploy shifts each alias to the new
version, rolled back on its alarms), and the optional API_DOMAIN_NAME + API_CERTIFICATE_ARN
(kept from the stack when not given).

A failed first deploy can be run again: the stack it left in ROLLBACK_COMPLETE is deleted
(after saying so and printing what failed) and created anew; its tables went with the
rollback (DeletionPolicy RetainExceptOnCreate). Any failed create or update prints the
stack's failure events.

destroy STAGE: delete the stack. What stays behind, said at the end: the DynamoDB tables
(retained: the data survives a mistaken destroy), the secrets and the deployment bucket (never
part of the stack). Log groups, queues (with any dead letters), alarms, the dashboard, the
topic, functions, roles and the API go with the stack.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import WaiterError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.infra_rollout import DEPLOYMENT_TYPES  # noqa: E402
from scripts.infra_spec import (  # noqa: E402
    APP,
    FUNCTIONS,
    SECRETS,
    chalice_config,
    deployed_stages,
    function_setting,
    resource_prefix,
    secrets_prefix,
    stack_name,
)

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
RETAINED = ("Retain", "RetainExceptOnCreate")
WAIT = {"Delay": 10, "MaxAttempts": 360}  # an hour: a canary rollout (DeploymentPreference) takes minutes


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


def parameters(
    stage: str,
    env: dict[str, str],
    *,
    alarm_email: str,
    retention_days: int,
    reserve_concurrency: str = "false",
    rollout: str = "Canary10Percent5Minutes",
    api_domain: str | None = None,
    api_certificate: str | None = None,
    previous: dict[str, str] | None = None,
) -> list[dict]:
    """The stack's parameters. What a deploy does not say is kept from the stack: an empty
    `alarm_email` (a deploy without ALARM_EMAIL must not silently unsubscribe whoever is paged)
    and a custom domain not given (the amoCRM redirect URI and webhook URL live on it); "none"
    removes the domain."""
    previous = previous or {}
    prefix = secrets_prefix(stage)
    for name, value in env.items():
        if value.startswith("secretsmanager:") and not value.startswith(f"secretsmanager:{prefix}"):
            raise DeployError(f"{name} refers to {value.split('#')[0]}; stage {stage} keeps its secrets under {prefix}")
    domain = previous.get("ApiDomainName", "") if api_domain is None else api_domain
    certificate = previous.get("ApiCertificateArn", "") if api_certificate is None else api_certificate
    if domain == "none":
        domain = certificate = ""
    if domain and not certificate.startswith("arn:"):
        raise DeployError(f"API_DOMAIN_NAME={domain} needs API_CERTIFICATE_ARN: an ACM certificate for it in us-east-1")
    values = {
        "TablePrefix": resource_prefix(stage),
        "SecretsPrefix": prefix,
        "AlarmEmail": alarm_email or previous.get("AlarmEmail", ""),
        "LogRetentionDays": str(retention_days),
        "ReserveConcurrency": reserve_concurrency,
        "DeploymentType": rollout,
        "ApiDomainName": domain,
        "ApiCertificateArn": certificate if domain else "",
    }
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def warn_if_nobody_is_paged(stack_parameters: list[dict], stack: str) -> bool:
    """True (after saying so, loudly) when no address receives the stack's alarms."""
    email = next(p["ParameterValue"] for p in stack_parameters if p["ParameterKey"] == "AlarmEmail")
    if email:
        print(f"alarms of {stack} e-mail {email} (confirm the subscription AWS sends, or nothing arrives)")
        return False
    bar = "!" * 78
    print(
        f"\n{bar}\n!! NOBODY WILL BE PAGED: ALARM_EMAIL is empty and {stack} has no alarm address.\n"
        "!! Every alarm fires into an SNS topic without a subscriber. Deploy again with\n"
        f"!!   make deploy STAGE={stack.removeprefix(APP + '-')} ALARM_EMAIL=oncall@example.com\n{bar}\n",
        file=sys.stderr,
    )
    return True


def reservation_needed(stage: str) -> int:
    """Concurrency the stage's functions reserve when allowed (their `reserved_concurrency`)."""
    return sum(function_setting(stage, f.name, "reserved_concurrency") or 0 for f in FUNCTIONS.values())


def reserve_concurrency(lambda_client: Any, *, needed: int, choice: str, previous: str | None) -> str:
    """ "true" when the stack may reserve `needed` concurrency, else "false" with a warning.

    Lambda refuses a reservation that leaves the account's unreserved pool below its minimum
    (100, or the whole quota of a new account whose quota is 10): on such an account the first
    create failed. `choice` is auto (read GetAccountSettings), on or off."""
    if choice == "on" or needed == 0:
        return "true"
    if choice == "off":
        print(f"reserved concurrency off (RESERVED_CONCURRENCY=off): the syncs do not reserve {needed}")
        return "false"
    if previous == "true":
        return "true"  # already reserved by this stack: the pool has room for it
    limits = lambda_client.get_account_settings()["AccountLimit"]
    quota, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    minimum = min(100, quota)
    if unreserved - needed >= minimum:
        return "true"
    print(
        f"WARNING: reserved concurrency skipped. Lambda's concurrency quota in this account and region is "
        f"{quota} ({unreserved} unreserved); reserving {needed} would leave less than the {minimum} Lambda keeps "
        "unreserved. The syncs still run one at a time (their DynamoDB lease, the sync queue's "
        "MaximumConcurrency 2); ask for a higher quota (Service Quotas → AWS Lambda → Concurrent executions) "
        "and deploy again to reserve it.",
        file=sys.stderr,
    )
    return "false"


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


def current_stack(cloudformation: Any, stack: str) -> dict | None:
    """The stack's description, None when there is none."""
    try:
        return cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except cloudformation.exceptions.ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return None
        raise


def failure_events(cloudformation: Any, stack: str) -> list[str]:
    """What failed in the stack's latest operation, first failure (usually the cause) first."""
    failed = []
    for event in cloudformation.describe_stack_events(StackName=stack)["StackEvents"]:  # newest first
        if event["ResourceStatus"].endswith("_FAILED"):
            reason = event.get("ResourceStatusReason", "")
            failed.append(f"{event['LogicalResourceId']} ({event['ResourceType']}) {event['ResourceStatus']}: {reason}")
        if event["LogicalResourceId"] == stack and event["ResourceStatus"] in (
            "CREATE_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
        ):
            if event.get("ResourceStatusReason") == "User Initiated":
                break  # the start of that operation
    return failed[::-1]


def print_failures(cloudformation: Any, stack: str) -> None:
    lines = failure_events(cloudformation, stack)
    print(f"{stack}: what failed ({len(lines)} event(s), the first is usually the cause):", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def prepare(cloudformation: Any, stack: str, existing: dict | None) -> str:
    """CREATE or UPDATE, after clearing what a failed first deploy left. A stack in
    ROLLBACK_COMPLETE never ran (its create failed and was rolled back) and CloudFormation can
    only delete it: it is deleted, after saying why, and created again."""
    status = existing["StackStatus"] if existing else None
    if status is None or status == "REVIEW_IN_PROGRESS":  # none yet, or a create change set never executed
        return "CREATE"
    if status == "ROLLBACK_COMPLETE":
        print(f"{stack} is in ROLLBACK_COMPLETE: its first create failed, so it holds nothing (its tables were ")
        print("removed with the rollback: RetainExceptOnCreate). The failure was:")
        print_failures(cloudformation, stack)
        print(f"deleting {stack} so that it can be created again …")
        cloudformation.delete_stack(StackName=stack)
        cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack, WaiterConfig=WAIT)
        return "CREATE"
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"{stack} is {status}: another operation is under way; deploy when it has finished")
    if status == "UPDATE_ROLLBACK_FAILED":
        raise DeployError(
            f"{stack} is UPDATE_ROLLBACK_FAILED: finish the rollback first (docs/operating.md, 'A bad deploy'): "
            f"aws cloudformation continue-update-rollback --stack-name {stack}"
        )
    if status.endswith("_FAILED"):
        raise DeployError(f"{stack} is {status}: see the stack's events in the console; it needs a person")
    return "UPDATE"


def leftover_tables(dynamodb: Any, prefix: str) -> list[str]:
    """Tables of the stage that exist outside any stack: kept by `make destroy` (or by a failed
    first deploy before tables were RetainExceptOnCreate). A create would fail on them."""
    names: list[str] = []
    for page in dynamodb.get_paginator("list_tables").paginate():
        names.extend(n for n in page["TableNames"] if n.startswith(prefix))
    return names


def apply_change_set(
    cloudformation: Any, stack: str, *, template_url: str, stack_parameters: list[dict], kind: str
) -> bool:
    """Create and execute the change set; False when there was nothing to change."""
    name = f"deploy-{hashlib.sha256((template_url + json.dumps(stack_parameters)).encode()).hexdigest()[:12]}"
    cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        ChangeSetType=kind,
        TemplateURL=template_url,
        Parameters=stack_parameters,
        Capabilities=CAPABILITIES,
    )
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(
            StackName=stack, ChangeSetName=name, WaiterConfig=WAIT
        )
    except WaiterError:
        reason = cloudformation.describe_change_set(StackName=stack, ChangeSetName=name).get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            cloudformation.delete_change_set(StackName=stack, ChangeSetName=name)
            print(f"{stack} is up to date: nothing to change")
            return False
        raise DeployError(f"change set failed: {reason}") from None
    cloudformation.execute_change_set(StackName=stack, ChangeSetName=name)
    waiter = "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
    try:
        cloudformation.get_waiter(waiter).wait(StackName=stack, WaiterConfig=WAIT)
    except WaiterError:
        status = (current_stack(cloudformation, stack) or {}).get("StackStatus", "deleted")
        print_failures(cloudformation, stack)
        if kind == "CREATE":
            raise DeployError(
                f"{stack} could not be created ({status}). Fix the cause above, then run make deploy again: "
                "it deletes the rolled-back stack and creates it anew"
            ) from None
        raise DeployError(
            f"{stack} could not be updated ({status}); CloudFormation put the previous version back"
        ) from None
    return True


def print_outputs(cloudformation: Any, stack: str) -> None:
    for output in (current_stack(cloudformation, stack) or {}).get("Outputs", []):
        print(f"{output['OutputKey']}: {output['OutputValue']}")


def deploy(args: argparse.Namespace) -> None:
    import boto3

    from scripts import package

    env = stage_settings(args.stage)
    stack = stack_name(args.stage)
    out = ROOT / "out"
    package.build(args.stage, out)
    session = boto3.session.Session()
    cloudformation = session.client("cloudformation")
    existing = current_stack(cloudformation, stack)
    kind = prepare(cloudformation, stack, existing)
    if kind == "CREATE":
        leftover = leftover_tables(session.client("dynamodb"), resource_prefix(args.stage))
        if leftover:
            raise DeployError(
                f"{stack} cannot be created while the stage's tables exist outside it: {', '.join(leftover)}. "
                "Kept by make destroy, they may hold data: restore it into the new stack "
                "(docs/operating.md, 'Restoring a table'), or delete the tables if they are empty "
                "(docs/operating.md, 'A failed first deploy')"
            )
    previous = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (existing or {}).get("Parameters", [])}
    previous = previous if kind == "UPDATE" else {}
    reserve = reserve_concurrency(
        session.client("lambda"),
        needed=reservation_needed(args.stage),
        choice=args.reserved_concurrency,
        previous=previous.get("ReserveConcurrency"),
    )
    stack_parameters = parameters(
        args.stage,
        env,
        alarm_email=args.alarm_email,
        retention_days=args.log_retention_days,
        reserve_concurrency=reserve,
        rollout=args.rollout,
        api_domain=args.api_domain_name,
        api_certificate=args.api_certificate_arn,
        previous=previous,
    )
    warn_if_nobody_is_paged(stack_parameters, stack)
    account = session.client("sts").get_caller_identity()["Account"]
    s3 = session.client("s3")
    bucket = ensure_bucket(s3, account, session.region_name, args.bucket)
    ensure_secrets(session.client("secretsmanager"), args.stage)
    template_url = upload(s3, bucket, session.region_name, stack, out)
    apply_change_set(cloudformation, stack, template_url=template_url, stack_parameters=stack_parameters, kind=kind)
    print_outputs(cloudformation, stack)
    warn_if_nobody_is_paged(stack_parameters, stack)


def left_behind(cloudformation: Any, stack: str) -> list[str]:
    """What deleting the stack keeps: its retained resources (the tables)."""
    template = cloudformation.get_template(StackName=stack, TemplateStage="Processed")["TemplateBody"]
    template = json.loads(template) if isinstance(template, str) else template
    retained = {k for k, r in template["Resources"].items() if r.get("DeletionPolicy") in RETAINED}
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
    up.add_argument(
        "--reserved-concurrency",
        choices=("auto", "on", "off"),
        default="auto",
        help="reserve the syncs' concurrency: auto (when the account's quota allows it), on, off",
    )
    up.add_argument(
        "--rollout",
        choices=DEPLOYMENT_TYPES,
        default=DEPLOYMENT_TYPES[0],
        help="how each function's alias moves to the new version (rolled back on its alarms)",
    )
    up.add_argument(
        "--api-domain-name", default=None, help="the API's custom domain (kept when not given; none removes it)"
    )
    up.add_argument("--api-certificate-arn", default=None, help="its ACM certificate, in us-east-1")
    down = commands.add_parser("destroy")
    down.add_argument("--stage", default="prod")
    down.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args()
    deploy(args) if args.command == "deploy" else destroy(args)


if __name__ == "__main__":
    main()
