"""`Idempotency-Key` for writes: a retried request with the same key gets the first result.

The rules, as a payments engineer would have them:
- The key is claimed with a conditional put before the work starts, marked in progress until
  the claiming invocation's own deadline. A retry meanwhile gets 409; once that deadline has
  passed (the invocation died), a retry may take the key over and run the work again.
- The work reports its side effect the moment it happens (`checkpoint`, e.g. the id amoCRM
  gave the new lead); from then on the key is never released: a retry gets the stored result,
  even if the rest of the work failed.
- A failure that may have had an effect we could not see (amoCRM's answer to the POST was
  lost) keeps the key too: retries get 409 "outcome unknown; do not retry with a new key".
- A failure before any side effect releases the key, so the caller can simply retry.
- Records expire after RETENTION; an expired record is treated as absent even before
  DynamoDB's TTL removes it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.amo.errors import AmoUnavailable
from chalicelib.locking import wrote
from chalicelib.models import IdempotencyRecord
from chalicelib.services.errors import Conflict, InvalidInput

RETENTION = timedelta(hours=24)
DEFAULT_RUN_SECONDS = 60.0  # how long an attempt may hold the key when it does not know its deadline
MAX_KEY_LENGTH = 200

Checkpoint = Callable[[dict], None]


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
        return work(lambda result: None)
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters")
    record_key = f"{scope}:{key}"
    fingerprint = _fingerprint(scope, request)
    running_until = time.time() + (time_left() if time_left else DEFAULT_RUN_SECONDS)
    record = _claim(record_key, fingerprint, running_until)
    if record is None:
        return _replay(record_key, fingerprint)

    def checkpoint(result: dict) -> None:
        record.update(actions=[IdempotencyRecord.state.set("applied"), IdempotencyRecord.response.set(result)])

    try:
        result = work(checkpoint)
    except Exception as error:
        if record.state == "applied":
            return record.response  # the side effect happened: the caller gets what it needs
        if isinstance(error, AmoUnavailable) and error.outcome_unknown:
            record.update(actions=[IdempotencyRecord.state.set("unknown")])
        else:
            record.delete()
        raise
    record.update(actions=[IdempotencyRecord.state.set("done"), IdempotencyRecord.response.set(result)])
    return result


def _claim(record_key: str, fingerprint: str, running_until: float) -> IdempotencyRecord | None:
    """The record to run under, or None when another attempt holds (or held) the key."""
    now = datetime.now(UTC)
    record = IdempotencyRecord(
        key=record_key,
        request_hash=fingerprint,
        state="in_progress",
        running_until=running_until,
        expires_at=now + RETENTION,
    )
    record.touch()
    # a new key, or one whose record has expired (TTL deletes lazily), or a dead attempt's
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
    return record if claimed else None


def _replay(record_key: str, fingerprint: str) -> dict:
    stored = IdempotencyRecord.get(record_key, consistent_read=True)
    if stored.request_hash != fingerprint:
        raise InvalidInput("Idempotency-Key was already used for a different request")
    if stored.state in ("done", "applied"):
        return stored.response
    if stored.state == "unknown":
        raise OutcomeUnknown(
            "an earlier request with this Idempotency-Key may have been applied in amoCRM, but "
            "its answer was lost: do not retry with a new key; check amoCRM first"
        )
    raise Conflict("a request with this Idempotency-Key is still in progress; retry shortly")
