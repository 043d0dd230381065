"""Failures a service reports to its caller; the HTTP edge maps each to one status code."""


class ServiceError(Exception):
    """Base class; the message is safe to show to the caller (no tokens, no secrets)."""


class InvalidInput(ServiceError):
    """The caller sent something malformed; the message names the field."""


class NotFound(ServiceError):
    """An id the caller named does not exist."""


class Forbidden(ServiceError):
    """The request is authentic but not allowed (e.g. a callback for the wrong account)."""


class Conflict(ServiceError):
    """The request clashes with the current state (e.g. another account is already connected)."""


class AmbiguousGuest(Conflict):
    """More than one contact matches a guest named by e-mail or phone: the caller must name one
    by its amoCRM id (the 409 lists them)."""

    def __init__(self, contact_ids: list[int]):
        super().__init__(f"{len(contact_ids)} contacts match; name one with amoContactId")
        self.contact_ids = contact_ids


class NotConnected(Conflict):
    """No amoCRM tokens are stored yet: install the integration first."""


class ReauthorizationRequired(Conflict):
    """The refresh token is spent or revoked: a person must re-authorize the integration."""


class NoProgress(ServiceError):
    """A continuation could not finish even one step in its time (a sync's page, a re-derivation's
    chunk): SQS retries it, then dead-letters it."""


class Unauthenticated(ServiceError):
    """The caller did not prove who it is (e.g. a webhook without the shared secret)."""
