"""Typed amoCRM failures. The gateway raises these; the HTTP edge maps them to status codes once."""

from __future__ import annotations

from typing import Any


class AmoError(Exception):
    """Base for every amoCRM failure. `status` is amoCRM's HTTP status, when there was one."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


class AmoAuthError(AmoError):
    """401: the access token was rejected even after one refresh, or OAuth credentials are wrong."""


class AmoTokenRevoked(AmoAuthError):
    """The refresh token (or authorization code) is spent, revoked or invalid: re-authorize."""


class AmoForbidden(AmoError):
    """403 with a JSON body: the token's user lacks the rights (e.g. users/roles need an admin)."""


class AmoBlocked(AmoError):
    """403 with nginx's HTML page: the account or IP is blocked for API abuse; only support lifts it."""


class AmoPaymentRequired(AmoError):
    """402: "Аккаунт не оплачен", the account is not paid (reference §3.5, §13): an account state,
    not a fault of the request; it lasts until someone pays. `/api/v4/webhooks` also answers 402
    (or 403) on a plan that does not include it (§9.5)."""


class AmoValidationError(AmoError):
    """400: amoCRM rejected the input; `validation_errors` is amoCRM's `validation-errors` list."""

    @property
    def validation_errors(self) -> list:
        return self.detail if isinstance(self.detail, list) else []


class AmoNotFound(AmoError):
    """A 404 whose problem detail names the entity ("Lead not found"): the entity does not exist."""


class AmoRateLimited(AmoError):
    """429 persisted through every retry."""


class AmoUnavailable(AmoError):
    """5xx, timeouts or connection failures persisted through every retry, or a write's outcome
    is unknown: `outcome_unknown` is True when a write may have been applied by amoCRM."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None, outcome_unknown: bool = False):
        super().__init__(message, status, detail)
        self.outcome_unknown = outcome_unknown


class AmoUnknownPath(AmoUnavailable):
    """A 404 that names no entity (an unknown path, an account that is not on this host, an HTML
    page): a transport or connection error, never proof that an entity is gone (reference §3.5)."""


class AmoNotModified(Exception):
    """304 to a conditional GET: the entity has not changed since the version the caller holds.
    Not an AmoError: it is an answer, not a failure."""
