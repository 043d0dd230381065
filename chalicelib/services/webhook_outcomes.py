"""What became of a webhook delivery and of each event in it: the one vocabulary of the activity
log's `outcome` and of the `WebhookDeliveries` / `WebhookEvents` metrics' `Outcome` dimension.

Members are strings (StrEnum), so what is stored and reported is the value itself."""

from __future__ import annotations

from enum import StrEnum


class EventOutcome(StrEnum):
    """Applying one event."""

    APPLIED = "applied"  # the mirror changed
    STALE = "stale"  # we hold something newer than the event
    UNCHANGED = "unchanged"  # a status event for the stage and time we already hold
    CURRENT = "current"  # amoCRM has nothing newer than what we hold (its 304, or our own version)
    IGNORED = "ignored"  # an entity or action we do not mirror (notes, companies, chats …)
    DUPLICATE = "duplicate"  # this event was applied before
    FAILED = "failed"  # processing raised; recorded, retried by the queue
    STILL_EXISTS = "still_exists"  # a delete amoCRM contradicts (checked again later; see webhook_events)
    UNLINKED = "unlinked"  # a delete applied: our record kept, its link cleared
    ERASED = "erased"  # a contact's delete applied: its row and the guest fields it fed are gone
    UNKNOWN = "unknown"  # a delete of something we never held
    NOT_FOUND = "not_found"  # gone in amoCRM by the time we asked
    HELD = "held"  # amoCRM's account is not paid: queued again, applied once it answers


class DeliveryOutcome(StrEnum):
    """A whole delivery (one POST from amoCRM)."""

    QUEUED = "queued"  # its events went to the webhook queue
    INLINE = "inline"  # its events were applied before the answer (no queue: chalice local)
    IGNORED = "ignored"  # authentic but not for the connected account
    FOREIGN = "foreign"  # the metric's name for IGNORED: another account's delivery
    REJECTED = "rejected"  # not readable as a delivery at all
    SYNCED_INSTEAD = "synced_instead"  # too many events to apply one by one: an incremental sync runs
    UNAUTHENTICATED = "unauthenticated"  # acknowledged, not applied: no webhook secret is configured
    MALFORMED = "malformed"
    TOO_MANY_EVENTS = "too_many_events"
