"""What the generated infrastructure is built from: the functions, their queues and secrets.

One entry per Lambda function of app.py (its logical id in Chalice's template and its name in
.chalice/config.json), with what its role needs beyond the tables every function uses: the
queues it sends to, the queue it consumes, and the Secrets Manager secrets it reads. Which
setting lives in which secret is SECRET_OF; deployed stages refer to them by name
(`secretsmanager:<SecretsPrefix><secret>#<VARIABLE>`, see chalicelib/secrets.py).
"""

from __future__ import annotations

from dataclasses import dataclass

STAGE_PREFIX = "amocrm-prod-"
SECRETS_PREFIX = "amocrm-integration/prod/"
METRICS_NAMESPACE = "AmoCrmIntegration"
RUNTIME = "python3.11"  # the Lambda runtime, pinned: packages are built for it (scripts/package.py checks)

# secret (name after SecretsPrefix) -> the settings it holds
SECRETS = {
    "amocrm": ("AMO_CLIENT_ID", "AMO_CLIENT_SECRET", "AMO_LONG_LIVED_TOKEN"),
    "webhook": ("AMO_WEBHOOK_SECRET",),
    "main-backend": ("MAIN_BACKEND_API_KEY", "MAIN_BACKEND_OUTBOUND_API_KEY", "MAIN_BACKEND_SIGNING_SECRET"),
}
SECRET_OF = {variable: secret for secret, variables in SECRETS.items() for variable in variables}

# logical id: (queue name suffix, consumer function, receives before the dead-letter queue)
QUEUES = {
    "SyncQueue": ("sync", "ContinueSync", 3),
    "WebhookQueue": ("webhooks", "ProcessWebhooks", 5),
    "NotifyQueue": ("notifications", "DeliverNotifications", 20),
}
QUEUE_ENV = {"SyncQueue": "SYNC_QUEUE_URL", "WebhookQueue": "WEBHOOK_QUEUE_URL", "NotifyQueue": "NOTIFY_QUEUE_URL"}


@dataclass(frozen=True)
class Function:
    name: str  # as in .chalice/config.json (`lambda_functions`) and app.py
    secrets: tuple[str, ...] = ()
    sends: tuple[str, ...] = ()
    consumes: str | None = None
    reads_dead_letters: bool = False

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
    "IncrementalSync": Function("incremental-sync", ("amocrm",), ("SyncQueue", "NotifyQueue")),
    "ProcessWebhooks": Function("process-webhooks", ("amocrm",), ("SyncQueue", "NotifyQueue"), consumes="WebhookQueue"),
    "DeliverNotifications": Function("deliver-notifications", ("main-backend",), consumes="NotifyQueue"),
    "NotificationSweeper": Function("notification-sweeper", ("main-backend",)),
    "RefreshToken": Function("refresh-token", ("amocrm",)),
}
