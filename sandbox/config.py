"""The sandbox's switches: set at start (`python -m sandbox …`, `Config(...)`) or through
`POST /_sandbox/config`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.errors import problem


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

    def update(self, body: Any) -> dict:
        """Apply `POST /_sandbox/config`: every key must exist; values take the key's type."""
        if not isinstance(body, dict):
            raise problem(400, "Bad Request", "config body must be an object")
        for key, value in body.items():
            if not hasattr(self, key):
                raise problem(400, "Bad Request", f"unknown config key {key}")
            current = getattr(self, key)
            if isinstance(current, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            setattr(self, key, type(current)(value))
        return vars(self)
