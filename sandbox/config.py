"""The sandbox's switches: set at start (`python -m sandbox …`, `Config(...)`) or through
`POST /_sandbox/config`. Switches that model differences between real amoCRM accounts keep the
behaviour the sandbox always had as their default."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sandbox.errors import problem

CHOICES: dict[str, tuple] = {
    "filters": ("on", "ignored", "range-only"),
    "webhook_format": ("full", "compact"),
    "error_shape": ("validation-errors", "errors-map", "errors-array"),
    "missing_entity_status": (204, 404),
    "oversized_limit": ("replace", "reject"),
    "complex_duplicates": ("off", "on"),
    "webhooks_api": ("ok", "payment_required", "forbidden"),
    "compact_root": ("leads", "lead"),
    "events_api": ("ok", "forbidden"),
}
BOOLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
# numeric switches that make no sense below zero
NON_NEGATIVE = ("block_after_429s", "edit_between_pages", "webhook_retry_scale")


@dataclass
class Config:
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    redirect_uri: str = ""
    account_id: int = 30896271
    subdomain: str = "sandbox"
    api_key: str = "sandbox-api-key"
    token_lifetime: int = 86400
    rate_limit: float = 7.0
    latency_ms: float = 0.0
    error_rate_429: float = 0.0
    error_rate_503: float = 0.0
    blocked: bool = False
    non_admin: bool = False
    task_key: str = "task"
    webhook_url: str = ""
    public_url: str = ""
    # on: every list filter works; ignored: the account is not enrolled in API filtering (filters
    # are dropped silently); range-only: a range filter with one bound answers 204
    filters: str = "on"
    # full: account webhooks for stage changes; compact: the digital-pipeline robot's format
    webhook_format: str = "full"
    retry_after: int | None = None  # seconds sent in Retry-After with every 429 (None: no header)
    rate_limited_until: float = 0.0  # unix time: until then every API request answers 429
    webhook_timeout: float = 2.0  # a webhook answered later than this counts as invalid
    webhook_disable_after: int = 100  # more invalid answers than this within the window disable a hook
    webhook_disable_window: float = 7200.0
    repost_reenables: bool = True  # re-POSTing a disabled hook's destination enables it again
    error_shape: str = "validation-errors"  # the 400 body for invalid leads, contacts and tasks
    missing_entity_status: int = 204  # a single GET of an entity that does not exist
    # 429s within a rolling 60 s after which the account blocks itself (`blocked`, HTML 403 on
    # every request, the token endpoint too) until `blocked: false`; 0 never blocks (§3.4, §13)
    block_after_429s: int = 20
    # a `limit` above the maximum (250, events 100): replace: served with 50, no error (§3.3);
    # reject: 400
    oversized_limit: str = "replace"
    # /leads/complex duplicate control: on answers an existing contact's open lead, merged (§5.4)
    complex_duplicates: str = "off"
    unpaid: bool = False  # every API request but the token endpoint answers 402 (§3.5)
    webhooks_api: str = "ok"  # /api/v4/webhooks on a lower plan: payment_required (402), forbidden (403)
    # the events log's answer depends on the token user's rights (§10.1); forbidden: a 403 problem+json
    events_api: str = "ok"
    status_webhook_pipeline_id: bool = True  # false: full leads[status] items without pipeline_id (§9.3)
    compact_root: str = "leads"  # the compact (robot) body's root key; Kommo's page says `lead` (§9.4)
    webhook_retry_scale: float = 1.0  # redelivery delays (5 min, 15 min, 15 min, 1 h) times this (§9.5)
    edit_between_pages: int = 0  # after page 1 of a leads list, this many of its leads get edited
    # the shared API host named in the tokens' `api_domain` claim, the only host that answers
    # /oauth2/account/current/subdomain (§1.6); "" = the sandbox's address under another name
    api_domain: str = ""

    def update(self, body: Any) -> dict:
        """Apply `POST /_sandbox/config`: every key must exist; values take the key's type."""
        if not isinstance(body, dict):
            raise problem(400, "Bad Request", "config body must be an object")
        types = {f.name: str(f.type) for f in fields(self)}  # already strings: `from __future__ import annotations`
        changes = {}
        for key, value in body.items():
            if key not in types:
                raise problem(400, "Bad Request", f"unknown config key {key}")
            changes[key] = _coerce(key, types[key], value)
        for key, value in changes.items():
            setattr(self, key, value)
        return vars(self)


def _coerce(key: str, type_: str, value: Any) -> Any:
    optional = type_.endswith("| None")
    if optional and value in (None, ""):
        return None
    kind = type_.split("|")[0].strip()
    try:
        if kind == "bool":
            coerced = value if isinstance(value, bool) else BOOLS[str(value).lower()]
        else:
            coerced = {"int": int, "float": float, "str": str}[kind](value)
    except (TypeError, ValueError, KeyError):
        raise problem(400, "Bad Request", f"{key} must be of type {type_}") from None
    if key in NON_NEGATIVE and coerced < 0:
        raise problem(400, "Bad Request", f"{key} must be >= 0")
    if key in CHOICES and coerced not in CHOICES[key]:
        raise problem(400, "Bad Request", f"{key} must be one of {', '.join(map(str, CHOICES[key]))}")
    return coerced
