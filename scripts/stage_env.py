"""The environment an operator command needs to act on a deployed stage (`cli --stage NAME`).

Read with the operator's own AWS credentials and region: the stack `amocrm-integration-<stage>`
gives its parameters (TablePrefix, SecretsPrefix) and outputs (queue URLs, the notifications'
dead-letter queue, ApiURL), and `.chalice/config.json` gives the stage's settings (AMO_BASE_URL,
AMO_REDIRECT_URI …). Secret settings become the same Secrets Manager references the deployed
functions hold (scripts/build_infra.py), resolved when read; the operator's role must be allowed
to read those secrets. Nothing here holds or prints a secret.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from chalicelib import settings
from chalicelib.settings import ConfigError
from scripts.infra_spec import (
    QUEUE_ENV,
    SECRET_OF,
    WEBHOOK_ROUTE,
    chalice_config,
    deployed_stages,
    secret_reference,
    stack_name,
)

OUTPUTS = {**QUEUE_ENV, "NotifyQueueDLQ": "NOTIFY_DLQ_URL"}  # stack output -> the variable holding it
PARAMETERS = {"TablePrefix": "TABLE_PREFIX"}


def setting_variables() -> set[str]:
    """Every variable chalicelib/settings.py reads (the first argument of its readers)."""
    tree = ast.parse(Path(settings.__file__).read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.startswith("_")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and node.args[0].value.isupper()
    }


def _deployed(stage: str) -> dict[str, Any]:
    config = chalice_config()
    if stage not in deployed_stages(config):
        raise ConfigError(
            f"{stage!r} is not a deployed stage (.chalice/config.json gives it no AMO_BASE_URL); "
            f"the deployed stages are {', '.join(deployed_stages(config))}"
        )
    return config


def _stack(cloudformation: Any, name: str) -> dict:
    try:
        return cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except cloudformation.exceptions.ClientError as error:
        if "does not exist" not in error.response.get("Error", {}).get("Message", ""):
            raise
    region = cloudformation.meta.region_name
    raise ConfigError(
        f"there is no stack {name} in {region} (check AWS_REGION / AWS_PROFILE, or deploy it: "
        f"make deploy STAGE={name.rsplit('-', 1)[-1]})"
    )


def environment(stage: str, cloudformation: Any) -> dict[str, str]:
    """Every variable the service's settings read, as the stage's deployed functions see them,
    plus WEBHOOK_PUBLIC_URL (the stage's webhook address, for register-webhook)."""
    config = _deployed(stage)
    name = stack_name(stage)
    stack = _stack(cloudformation, name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    missing = sorted(set(OUTPUTS) - set(outputs)) + sorted({*PARAMETERS, "SecretsPrefix"} - set(parameters))
    if missing or "ApiURL" not in outputs:
        raise ConfigError(
            f"stack {name} is {stack['StackStatus']} and lacks {', '.join(missing or ['ApiURL'])}: a stack that "
            "was never created completely cannot be operated (docs/operating.md, 'A failed first deploy')"
        )
    stages = config.get("stages", {})
    env: dict[str, str] = {
        **(config.get("environment_variables") or {}),
        **(stages[stage].get("environment_variables") or {}),
    }
    env.update({variable: parameters[key] for key, variable in PARAMETERS.items()})
    env.update({variable: outputs[key] for key, variable in OUTPUTS.items()})
    env.update({variable: secret_reference(variable, parameters["SecretsPrefix"]) for variable in sorted(SECRET_OF)})
    env.setdefault("WEBHOOK_PUBLIC_URL", outputs["ApiURL"].rstrip("/") + WEBHOOK_ROUTE)
    return env


def cloudformation_client() -> Any:
    import boto3

    return boto3.client("cloudformation")


def apply(stage: str, cloudformation: Any = None) -> str:
    """Set this process's environment to the stage's, unsetting every other setting a local shell
    may hold (a `.env`'s AMO_RATE_BUDGET=local would take the CLI outside the stage's shared
    amoCRM budget); one line saying where the command acts."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if endpoint:
        raise ConfigError(
            f"AWS_ENDPOINT_URL is set ({endpoint}, a local stack?): --stage acts on the real AWS; unset it first"
        )
    _deployed(stage)
    cloudformation = cloudformation or cloudformation_client()
    env = environment(stage, cloudformation)
    for variable in setting_variables() - set(env):  # what the stage leaves unset (AMO_RATE_BUDGET=local …)
        os.environ.pop(variable, None)
    os.environ.update(env)
    secrets = env["AMO_CLIENT_SECRET"].removeprefix("secretsmanager:").partition("#")[0].rpartition("/")[0]
    return (
        f"stage {stage}: stack {stack_name(stage)} in {cloudformation.meta.region_name}, "
        f"tables {env['TABLE_PREFIX']}…, secrets {secrets}/…, amoCRM {env.get('AMO_BASE_URL', '(not set)')}"
    )
