"""All configuration, read from the environment on every access.

Nothing is read at import: Lambda, `chalice local`, the tests and the CLI may all set the
environment after this module is imported (SPEC §5). Required values raise ConfigError
naming the variable, so a misconfigured deployment says what is wrong instead of failing
somewhere deep inside a request. Secret settings (`_secret`) may hold a Secrets Manager
reference instead of the value, as deployed stages do (secrets.py).
"""

from __future__ import annotations

import os
import re
import socket
import sys
from urllib.parse import urlparse, urlunparse

from chalicelib import secrets

DEFAULT_TABLE_PREFIX = "amocrm-"


class ConfigError(Exception):
    """A required setting is missing or invalid; the message names the variable."""


def _get(name: str) -> str:
    return os.environ.get(name, "").strip()


def _required(name: str) -> str:
    value = _get(name)
    if not value:
        raise ConfigError(f"{name} is not set")
    return value


def _secret(name: str, required: bool = False) -> str:
    """A secret setting: the variable's value, or what the Secrets Manager reference in it names."""
    value = _required(name) if required else _get(name)
    try:
        return secrets.resolve(value, optional=not required).strip()
    except secrets.SecretUnavailable as error:
        raise ConfigError(f"{name}: {error}") from None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


_QUERY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")


def redacted_url(value: str) -> str:
    """A URL fit for an answer or a log line: its user:password, every query value and its
    fragment hidden (any of them may hold a credential), the rest as it was."""
    try:
        parsed = urlparse(value)
        netloc = parsed.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        query = "***" if parsed.query else ""
        pairs = [part.split("=", 1) for part in parsed.query.split("&")]
        if parsed.query and all(len(pair) == 2 and _QUERY_NAME.fullmatch(pair[0]) for pair in pairs):
            query = "&".join(f"{pair[0]}=***" for pair in pairs)  # the names say which one is wrong
        return urlunparse(parsed._replace(netloc=netloc, query=query, fragment="***" if parsed.fragment else ""))
    except ValueError:  # not even a URL: nothing of it can be shown safely
        return "***"


def _url(name: str, required: bool = True, https: bool = False) -> str:
    """An http(s) URL; `https` requires TLS except towards this machine (a local stand-in)."""
    value = _required(name) if required else _get(name)
    if not value:
        return ""
    try:
        parsed = urlparse(value)
    except ValueError:  # "http://[::1": an unclosed bracket
        raise ConfigError(f"{name} must be an http(s) URL, got {redacted_url(value)!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {redacted_url(value)!r}")
    if https and parsed.scheme != "https" and parsed.hostname not in LOOPBACK:
        raise ConfigError(
            f"{name} must be an https URL (plain http only towards this machine), got {redacted_url(value)!r}"
        )
    return value.rstrip("/")


def _optional_int(name: str) -> int | None:
    value = _get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def _positive_float(name: str, default: float) -> float:
    value = _get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be greater than zero, got {value!r}")
    return number


def amo_base_url() -> str:
    """Base URL of the amoCRM account; every amoCRM call goes there (tokens and the client secret
    too, so only over https, except to a local sandbox) until a renamed account's stored domain
    replaces its host (amo/domains.py)."""
    return _url("AMO_BASE_URL", https=True)


def amo_client_id() -> str:
    return _secret("AMO_CLIENT_ID", required=True)  # not a secret, but kept beside the client secret


def amo_client_secret() -> str:
    return _secret("AMO_CLIENT_SECRET", required=True)


def amo_redirect_uri() -> str:
    return _url("AMO_REDIRECT_URI")


def amo_property_field_id() -> int | None:
    return _optional_int("AMO_PROPERTY_FIELD_ID")


def amo_webhook_secret() -> str:
    return _secret("AMO_WEBHOOK_SECRET")


def amo_webhook_secret_previous() -> str:
    """The secret being rotated out: still accepted on deliveries (docs/operating.md, rotation)."""
    return _secret("AMO_WEBHOOK_SECRET_PREVIOUS")


def amo_rate_limit_per_second() -> float:
    """Requests per second we allow ourselves towards amoCRM (its documented limit is 7)."""
    return _positive_float("AMO_RATE_LIMIT_RPS", 7.0)


def amo_rate_margin_seconds() -> float:
    """How much longer than a second the shared budget spreads `AMO_RATE_LIMIT_RPS` request
    starts over (default 0.08): covers jitter on the way to amoCRM, clock skew between hosts
    and late-waking threads."""
    return _positive_float("AMO_RATE_MARGIN_SECONDS", 0.08)


def amo_rate_budget() -> str:
    """`shared` (default): every process of the deployment admits its amoCRM requests through
    one budget in DynamoDB. `local`: each process paces itself (tests, one-off scripts)."""
    value = (_get("AMO_RATE_BUDGET") or "shared").lower()
    if value not in ("shared", "local"):
        raise ConfigError(f"AMO_RATE_BUDGET must be shared or local, got {value!r}")
    return value


def amo_fallback_processes() -> int:
    """How many processes may be cut off from the budget's table at once (default 7, or the
    rate if lower): each then
    paces itself at `AMO_RATE_LIMIT_RPS // this` requests per second, so together they stay
    within amoCRM's limit. At most the rate (one request a second each)."""
    value = _optional_int("AMO_FALLBACK_PROCESSES")
    rate = max(1, int(amo_rate_limit_per_second()))
    if value is None:
        return min(7, rate)
    if not 1 <= value <= rate:
        raise ConfigError("AMO_FALLBACK_PROCESSES must be between 1 and AMO_RATE_LIMIT_RPS")
    return value


def process_label() -> str:
    """Who this process is, in the budget's notes (who set a pause): the Lambda function, or
    the command, with its host and process id."""
    name = _get("AWS_LAMBDA_FUNCTION_NAME") or os.path.basename(sys.argv[0] or "python")
    return f"{name} on {socket.gethostname()} pid {os.getpid()}"


def main_backend_api_key() -> str:
    return _secret("MAIN_BACKEND_API_KEY", required=True)


def main_backend_outbound_api_key() -> str:
    """The key sent to the Main Backend with each notification; MAIN_BACKEND_API_KEY when unset
    (set it to keep the key that authenticates callers of this service from ever leaving it)."""
    return _secret("MAIN_BACKEND_OUTBOUND_API_KEY") or main_backend_api_key()


def main_backend_signing_secret() -> str:
    """When set, every notification carries `X-Signature: t=<unix time>,v2=<HMAC-SHA256>`
    over its time, its Idempotency-Key and its body (notifications.signature)."""
    return _secret("MAIN_BACKEND_SIGNING_SECRET")


def amo_long_lived_token() -> str:
    """A long-lived access token (Kommo private integrations): used instead of OAuth, never refreshed."""
    return _secret("AMO_LONG_LIVED_TOKEN")


def deployed() -> bool:
    """True inside AWS Lambda (not under `chalice local`, the tests or the CLI): stricter rules apply."""
    return bool(_get("AWS_LAMBDA_FUNCTION_NAME")) and not _get("AWS_CHALICE_CLI_MODE")


def main_backend_webhook_url() -> str:
    """Where notifications go; deployed, only over https (they carry our API key)."""
    return _url("MAIN_BACKEND_WEBHOOK_URL", required=False, https=deployed())


def main_backend_webhook_set() -> bool:
    """Whether notifications are to be delivered at all, valid URL or not: an invalid one holds
    their delivery (notifications.py), never the status changes that record them."""
    return bool(_get("MAIN_BACKEND_WEBHOOK_URL"))


def table_prefix() -> str:
    return _get("TABLE_PREFIX") or DEFAULT_TABLE_PREFIX


def dev_endpoints_enabled() -> bool:
    return _get("ENABLE_DEV_ENDPOINTS").lower() == "true"


def aws_endpoint_url() -> str:
    """Where every AWS client goes when set (moto server locally); botocore reads it itself."""
    return _get("AWS_ENDPOINT_URL")


def sync_queue_name() -> str:
    """Name of the queue that continues long syncs (read at import by app.py's SQS handler)."""
    return _get("SYNC_QUEUE_NAME") or "amocrm-sync"


def sync_queue_url() -> str:
    """URL of that queue; when unset (the local run) a sync runs to its end in one invocation."""
    return _get("SYNC_QUEUE_URL")


def sync_schedule_minutes() -> int:
    """How often the incremental sync runs (read at import by app.py's schedule)."""
    value = _optional_int("SYNC_SCHEDULE_MINUTES")
    if value is not None and value < 1:
        raise ConfigError("SYNC_SCHEDULE_MINUTES must be at least 1")
    return value or 15


def personal_data_retention_days() -> int:
    """Days after which an unlinked lead's guest fields and an unused contact's row are erased
    by the hourly sweeper (docs/personal-data.md)."""
    value = _optional_int("PERSONAL_DATA_RETENTION_DAYS")
    if value is not None and value < 1:
        raise ConfigError("PERSONAL_DATA_RETENTION_DAYS must be at least 1")
    return value or 730


def webhook_queue_name() -> str:
    return _get("WEBHOOK_QUEUE_NAME") or "amocrm-webhooks"


def webhook_queue_url() -> str:
    """When set, the webhook route enqueues events; unset (chalice local) it processes them inline."""
    return _get("WEBHOOK_QUEUE_URL")


def notify_queue_name() -> str:
    return _get("NOTIFY_QUEUE_NAME") or "amocrm-notifications"


def notify_queue_url() -> str:
    """When set, Main Backend notifications are delivered through this queue; unset, inline."""
    return _get("NOTIFY_QUEUE_URL")


def notify_dlq_url() -> str:
    return _get("NOTIFY_DLQ_URL")


def public_webhook_url() -> str:
    """The service's own webhook URL as amoCRM must call it (without the secret), if configured."""
    return _url("WEBHOOK_PUBLIC_URL", required=False)


SECRET_VARIABLES = (
    "AMO_CLIENT_SECRET",
    "AMO_WEBHOOK_SECRET",
    "AMO_WEBHOOK_SECRET_PREVIOUS",
    "AMO_LONG_LIVED_TOKEN",
    "MAIN_BACKEND_API_KEY",
    "MAIN_BACKEND_OUTBOUND_API_KEY",
    "MAIN_BACKEND_SIGNING_SECRET",
)


def validate_all() -> list[str]:
    """Problems with the configuration, one message per variable; empty when all is well."""
    checks = (
        amo_base_url,
        amo_client_id,
        amo_client_secret,
        amo_redirect_uri,
        amo_property_field_id,
        amo_rate_limit_per_second,
        personal_data_retention_days,
        amo_fallback_processes,
        main_backend_api_key,
        main_backend_webhook_url,
    )
    problems = [
        f"{name} holds its value in the Lambda configuration; deployed stages refer to Secrets Manager "
        f"({secrets.PREFIX}<secret>#{name})"
        for name in SECRET_VARIABLES
        if deployed() and _get(name) and not secrets.is_reference(_get(name))
    ]
    for check in checks:
        try:
            check()
        except ConfigError as error:
            problems.append(str(error))
    return problems
