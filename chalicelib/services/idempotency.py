"""`Idempotency-Key` for writes: a retried request with the same key gets the first result.

The rules, as a payments engineer would have them (one record per key, states in order):
- `in_progress`: the key is claimed with a conditional put before the work starts, under a claim
  id of this attempt, until the attempt's own deadline. A retry meanwhile gets 409; once that
  deadline has passed (the attempt died before sending anything), a retry may take it over.
- `sending`: written, still as the claim's owner, right before the side effect (the POST to
  amoCRM) leaves. From here the key is never released on a failure that may have let the
  effect through, and never taken over: an attempt taken over while it waited sends nothing.
- `applied`: the work reports its side effect the moment it happens (`checkpoint`, e.g. the id
  amoCRM gave the new lead); a retry gets the stored result, even if the rest of the work failed.
- `unknown`: the effect may have happened but we could not see it (amoCRM's answer was lost or
  cut off): retries get 409 "outcome unknown; do not retry with a new key". A `sending` record
  whose attempt's deadline has passed means the same.
- A failure that provably happened before the effect (refused by amoCRM with a 4xx, never
  reached it, our own storage before the POST) releases the key, so the caller can retry.
- A record that cannot be written (DynamoDB busy) errs towards "unknown", never towards a
  second effect; once the effect's result is known the caller gets it even if recording it failed.
- Records expire after RETENTION; an expired record is treated as absent even before
  DynamoDB's TTL removes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.update import Action

from chalicelib import metrics
from chalicelib.amo.errors import AmoError, AmoUnavailable, AmoUnknownPath
from chalicelib.locking import wrote
from chalicelib.models import IdempotencyRecord
from chalicelib.services.checkpoints import Checkpoint
from chalicelib.services.errors import Conflict, InvalidInput, ServiceError

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=24)
DEFAULT_RUN_SECONDS = 60.0  # how long an attempt may hold the key when it does not know its deadline
MAX_KEY_LENGTH = 200
CHECKPOINT_WRITES = 3  # tries to record a side effect that has happened before giving up on it


class OutcomeUnknown(Conflict):
    """An earlier attempt may have changed amoCRM but its answer was lost."""


def _fingerprint(scope: str, request: Any) -> str:
    return hashlib.sha256(json.dumps([scope, request], sort_keys=True, default=str).encode()).hexdigest()


def run_once(
    scope: str,
    *,
    key: str | None,
    request: Any,
    work: Callable[[Checkpoint], dict],
    time_left: Callable[[], float] | None = None,
) -> dict:
    """Run `work(checkpoint)` once per (scope, key); without a key it simply runs."""
    if not key:
        return work(Checkpoint())
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters")
    record_key = f"{scope}:{key}"
    fingerprint = _fingerprint(scope, request)
    seconds = time_left or (lambda: DEFAULT_RUN_SECONDS)
    claim = Claim.take(record_key, fingerprint=fingerprint, running_until=time.time() + seconds())
    if claim is None:
        return _replay(record_key, fingerprint)
    claim.seconds = seconds
    checkpoint = Checkpoint(claim)
    try:
        result = work(checkpoint)
    except Exception as error:
        if checkpoint.result is not None:
            return checkpoint.result  # the side effect happened: the caller gets what it needs
        if _outcome_unknown(error) or (checkpoint.sent and not _not_applied(error)):
            claim.mark_unknown()
        else:
            claim.release()
        raise
    claim.mark_done(result)
    return result


def _outcome_unknown(error: Exception) -> bool:
    return isinstance(error, AmoUnavailable) and error.outcome_unknown


def _not_applied(error: Exception) -> bool:
    """True when a failure after `sending()` proves the side effect did not happen: amoCRM
    refused it (a 4xx), it never reached amoCRM, or our own storage failed before the POST."""
    if isinstance(error, AmoUnknownPath):
        return True  # a 404 naming no entity: amoCRM applied nothing (reference §3.5)
    if isinstance(error, AmoUnavailable):
        return not error.outcome_unknown and error.status is None
    if isinstance(error, AmoError):
        return error.status is None or 400 <= error.status < 500
    return isinstance(error, (PynamoDBException, ServiceError))


class Claim:
    """One attempt's hold on a key: every write after the claim is conditional on its claim id,
    so an attempt that lost the key (taken over after its deadline) can change nothing."""

    def __init__(self, record: IdempotencyRecord):
        self.record = record
        self.seconds: Callable[[], float] = lambda: DEFAULT_RUN_SECONDS

    @classmethod
    def take(cls, record_key: str, *, fingerprint: str, running_until: float) -> Claim | None:
        """The claim to run under, or None when another attempt holds (or held) the key."""
        now = datetime.now(UTC)
        record = IdempotencyRecord(
            key=record_key,
            request_hash=fingerprint,
            state="in_progress",
            claim_id=uuid.uuid4().hex,
            running_until=running_until,
            expires_at=now + RETENTION,
        )
        record.touch()
        # a new key, or one whose record has expired (TTL deletes lazily), or a dead attempt's
        # that had not started sending
        claimed = wrote(
            lambda: record.save(
                condition=IdempotencyRecord.key.does_not_exist()
                | (IdempotencyRecord.expires_at < now)
                | (
                    (IdempotencyRecord.state == "in_progress")
                    & (IdempotencyRecord.running_until < time.time())
                    & (IdempotencyRecord.request_hash == fingerprint)
                )
            )
        )
        # a lost answer re-sent by the SDK finds our own claim in place: it is still ours
        return cls(record) if claimed or cls._stored_claim(record_key) == record.claim_id else None

    @staticmethod
    def _stored_claim(record_key: str) -> str | None:
        try:
            return IdempotencyRecord.get(record_key, consistent_read=True).claim_id
        except IdempotencyRecord.DoesNotExist:
            return None

    def _ours(self) -> Any:
        return IdempotencyRecord.claim_id == self.record.claim_id

    def mark_sending(self) -> None:
        """Before the side effect: still ours and not started, or nothing is sent."""
        actions: list[Action] = [
            IdempotencyRecord.state.set("sending"),
            IdempotencyRecord.running_until.set(time.time() + self.seconds()),
        ]
        condition = self._ours() & (IdempotencyRecord.state == "in_progress")
        if wrote(lambda: self.record.update(actions=actions, condition=condition)):
            return
        stored = IdempotencyRecord.get(self.record.key, consistent_read=True)
        if stored.claim_id != self.record.claim_id or stored.state != "sending":  # else our own re-sent write
            raise Conflict("a request with this Idempotency-Key is still in progress; retry shortly")

    def mark_applied(self, result: dict) -> None:
        """The effect happened; recording it is tried a few times and never fails the work."""
        actions: list[Action] = [IdempotencyRecord.state.set("applied"), IdempotencyRecord.response.set(result)]
        for attempt in range(CHECKPOINT_WRITES):
            try:
                self.record.update(actions=actions, condition=self._ours())
                return
            except PynamoDBException as error:
                if attempt + 1 == CHECKPOINT_WRITES:
                    metrics.count("IdempotencyCheckpointFailures")
                    log.error("Idempotency-Key %s: the side effect is not recorded (%s)", self.record.key, error)
                    return
                time.sleep(0.05 * 2**attempt)

    def mark_done(self, result: dict) -> None:
        actions: list[Action] = [IdempotencyRecord.state.set("done"), IdempotencyRecord.response.set(result)]
        self._best_effort("done", lambda: self.record.update(actions=actions, condition=self._ours()))

    def mark_unknown(self) -> None:
        actions: list[Action] = [IdempotencyRecord.state.set("unknown")]
        self._best_effort("unknown", lambda: self.record.update(actions=actions, condition=self._ours()))

    def release(self) -> None:
        """Nothing happened: the caller may retry at once (if this fails, at the claim's deadline)."""
        self._best_effort("released", lambda: self.record.delete(condition=self._ours()))

    def _best_effort(self, what: str, write: Callable[[], object]) -> None:
        try:
            write()
        except PynamoDBException as error:
            log.warning("Idempotency-Key %s not marked %s (%s)", self.record.key, what, error)


def _replay(record_key: str, fingerprint: str) -> dict:
    stored = IdempotencyRecord.get(record_key, consistent_read=True)
    if stored.request_hash != fingerprint:
        raise InvalidInput("Idempotency-Key was already used for a different request")
    if stored.state in ("done", "applied"):
        return stored.response
    if stored.state == "unknown" or (stored.state == "sending" and (stored.running_until or 0) < time.time()):
        raise OutcomeUnknown(
            "an earlier request with this Idempotency-Key may have been applied in amoCRM, but "
            "its answer was lost: do not retry with a new key; check amoCRM first"
        )
    raise Conflict("a request with this Idempotency-Key is still in progress; retry shortly")
