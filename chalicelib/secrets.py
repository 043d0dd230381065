"""Secret settings read from AWS Secrets Manager at run time, never kept in the Lambda configuration.

A deployed stage sets a secret variable (AMO_CLIENT_SECRET, MAIN_BACKEND_API_KEY, …) to a
reference instead of the value: `secretsmanager:<secret name or ARN>#<JSON key>` (without
`#<key>`, the whole secret string). The reference is resolved when the setting is read, and the
secret is cached for CACHE_SECONDS per warm Lambda, so a rotated secret applies within a few
minutes without a redeploy, and `lambda:GetFunctionConfiguration` shows only the reference.
Locally (tests, `make run`, the CLI) a variable holds the value itself and is used as it is.

Powertools' SecretsProvider does the fetching and the caching; it is imported on first use
only, so functions that read no secret do not pay for it.
"""

from __future__ import annotations

from typing import Any

from chalicelib.memo import memoize

PREFIX = "secretsmanager:"
CACHE_SECONDS = 300


class SecretUnavailable(Exception):
    """A reference that cannot be resolved; the message names the secret, never a value."""


def is_reference(value: str) -> bool:
    return value.startswith(PREFIX)


@memoize()
def _provider() -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider()  # honours AWS_ENDPOINT_URL, like every boto3 client here


def resolve(value: str, optional: bool = False) -> str:
    """`value` itself, or the secret it refers to. An `optional` setting whose key the secret
    does not have is unset ("")."""
    if not is_reference(value):
        return value
    secret_id, _, key = value[len(PREFIX) :].partition("#")
    if not secret_id:
        raise SecretUnavailable("the reference names no secret")
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

    try:
        secret = _provider().get(secret_id, max_age=CACHE_SECONDS, transform="json" if key else None)
    except GetParameterError as error:
        cause = getattr(getattr(error, "__cause__", None), "response", {}).get("Error", {}).get("Code")
        raise SecretUnavailable(f"cannot read secret {secret_id} ({cause or type(error).__name__})") from None
    except TransformParameterError:
        raise SecretUnavailable(f"secret {secret_id} is not a JSON object") from None
    if not key:
        return str(secret)
    if not isinstance(secret, dict):
        raise SecretUnavailable(f"secret {secret_id} is not a JSON object")
    if key not in secret:
        if optional:
            return ""
        raise SecretUnavailable(f"secret {secret_id} has no key {key}")
    return str(secret[key])
