"""What the generated infrastructure is built from: the stages, the functions, their queues and secrets.

Every name a deployed stage owns derives from the stage's name alone: the stack
`amocrm-integration-<stage>`, the tables and queues `amocrm-<stage>-…` (the template's
TablePrefix) and the secrets `amocrm-integration/<stage>/…` (SecretsPrefix). A deployed stage is
one whose `.chalice/config.json` entry sets AMO_BASE_URL; `dev` is the local one.

One entry per Lambda function of app.py (its logical id in Chalice's template and its name in
.chalice/config.json), with what its role needs beyond the tables its code uses
(scripts/infra_access.py): the queues it sends to, the queue it consumes, and the Secrets
Manager secrets it reads. Which setting lives in which secret is SECRET_OF; deployed stages
refer to them by name (`secretsmanager:<SecretsPrefix><secret>#<VARIABLE>`, see chalicelib/secrets.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / ".chalice" / "config.json"
APP = "amocrm-integration"
METRICS_NAMESPACE = "AmoCrmIntegration"
API_STAGE = "api"  # API Gateway's stage of every deployed stage (`api_gateway_stage`)

# secret (name after SecretsPrefix) -> the settings it holds
SECRETS = {
    "amocrm": ("AMO_CLIENT_ID", "AMO_CLIENT_SECRET", "AMO_LONG_LIVED_TOKEN"),
    "webhook": ("AMO_WEBHOOK_SECRET", "AMO_WEBHOOK_SECRET_PREVIOUS"),
    "main-backend": ("MAIN_BACKEND_API_KEY", "MAIN_BACKEND_OUTBOUND_API_KEY", "MAIN_BACKEND_SIGNING_SECRET"),
}
SECRET_OF = {variable: secret for secret, variables in SECRETS.items() for variable in variables}


def stack_name(stage: str) -> str:
    return f"{APP}-{stage}"


def resource_prefix(stage: str) -> str:
    """Prefix of the stage's tables and queues (TABLE_PREFIX, the template's TablePrefix)."""
    return f"amocrm-{stage}-"


def secrets_prefix(stage: str) -> str:
    return f"{APP}/{stage}/"


def secret_reference(variable: str, prefix: str) -> str:
    """What a deployed stage's variable holds instead of the secret (chalicelib/secrets.py)."""
    return f"secretsmanager:{prefix}{SECRET_OF[variable]}#{variable}"


def chalice_config() -> dict[str, Any]:
    return json.loads(CONFIG_FILE.read_text())


def _settings(stage_entry: dict[str, Any]) -> dict[str, str]:
    return stage_entry.get("environment_variables") or {}


def deployed_stages(config: dict[str, Any] | None = None) -> list[str]:
    stages = (config or chalice_config()).get("stages", {})
    return sorted(name for name, entry in stages.items() if _settings(entry).get("AMO_BASE_URL"))


def function_setting(stage: str, function: str, setting: str, config: dict[str, Any] | None = None) -> Any:
    """A per-function value (lambda_timeout, reserved_concurrency …) as Chalice resolves it for the stage."""
    from chalice.config import Config

    resolved = Config(chalice_stage=stage, function_name=function, config_from_disk=config or chalice_config())
    return getattr(resolved, setting)


@dataclass(frozen=True)
class Queue:
    suffix: str  # the name after the stage's prefix
    consumer: str  # logical id of the function its event source invokes
    receives: int  # receives before the dead-letter queue
    max_age: int  # seconds the oldest message may wait before the stuck-consumer alarm fires
    url_variable: str  # the environment variable that hands its URL to the code
    batch_label: str  # what its consumer calls its messages (queue_batch.run's `what`, the Queue dimension)


QUEUES = {
    # a continuation waits only while both continue-sync slots run (each up to 15 minutes)
    "SyncQueue": Queue("sync", "ContinueSync", 3, 1800, "SYNC_QUEUE_URL", "sync"),
    # webhook events are applied within seconds; amoCRM's changes should show within minutes
    "WebhookQueue": Queue("webhooks", "ProcessWebhooks", 5, 600, "WEBHOOK_QUEUE_URL", "webhook"),
    # the first receives back off 30 s, 60 s …; SQS leaves a message received 3 times out of the
    # age metric, so a single failing notification does not keep it high
    "NotifyQueue": Queue("notifications", "DeliverNotifications", 20, 900, "NOTIFY_QUEUE_URL", "notification"),
}
WEBHOOK_ROUTE = "/integrations/amo-crm/webhook"  # amoCRM disables a hook that answers slower than 2 s
QUEUE_ENV = {queue_id: queue.url_variable for queue_id, queue in QUEUES.items()}


@dataclass(frozen=True)
class Function:
    name: str  # as in .chalice/config.json (`lambda_functions`) and app.py
    secrets: tuple[str, ...] = ()
    sends: tuple[str, ...] = ()
    consumes: str | None = None
    reads_dead_letters: bool = False
    schedule: bool = False  # invoked by EventBridge: a failed run is healed by the next one

    @property
    def policy_file(self) -> str:
        return f"policy-{self.name.replace('_', '-')}.json"


# The API serves every route, so it reads every secret: the webhook route needs only the webhook
# secret, but Chalice puts all routes in one function. Consumers and schedules read only theirs.
FUNCTIONS = {
    "APIHandler": Function(
        "api_handler",
        ("amocrm", "webhook", "main-backend"),
        ("WebhookQueue", "SyncQueue", "NotifyQueue"),
        reads_dead_letters=True,
    ),
    "ContinueSync": Function("continue-sync", ("amocrm",), ("SyncQueue", "NotifyQueue"), consumes="SyncQueue"),
    "IncrementalSync": Function("incremental-sync", ("amocrm",), ("SyncQueue", "NotifyQueue"), schedule=True),
    "ProcessWebhooks": Function("process-webhooks", ("amocrm",), ("SyncQueue", "NotifyQueue"), consumes="WebhookQueue"),
    "DeliverNotifications": Function("deliver-notifications", ("main-backend",), consumes="NotifyQueue"),
    "NotificationSweeper": Function("notification-sweeper", ("main-backend",), schedule=True),
    "RefreshToken": Function("refresh-token", ("amocrm",), schedule=True),
}
