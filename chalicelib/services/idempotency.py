"""`Idempotency-Key` for writes: a retried request with the same key gets the first result.

The key is claimed with a conditional put before the work starts; the result is stored when
it succeeds. A retry while the first request still runs gets a 409; a failed first attempt
releases the key so the caller can try again.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from pynamodb.exceptions import PynamoDBException

from chalicelib.locking import is_conflict
from chalicelib.models import IdempotencyRecord
from chalicelib.services.errors import Conflict, InvalidInput

RETENTION = timedelta(hours=24)


def _fingerprint(scope: str, request: Any) -> str:
    return hashlib.sha256(json.dumps([scope, request], sort_keys=True, default=str).encode()).hexdigest()


def run_once(scope: str, key: str | None, request: Any, work: Callable[[], dict]) -> dict:
    """Run `work` once per (scope, key); without a key it simply runs."""
    if not key:
        return work()
    if len(key) > 200:
        raise InvalidInput("Idempotency-Key must be at most 200 characters")
    record_key = f"{scope}:{key}"
    fingerprint = _fingerprint(scope, request)
    record = IdempotencyRecord(key=record_key, request_hash=fingerprint,
                               expires_at=datetime.now(timezone.utc) + RETENTION)
    record.touch()
    try:
        record.save(condition=IdempotencyRecord.key.does_not_exist())
    except PynamoDBException as error:
        if not is_conflict(error):
            raise
        return _replay(record_key, fingerprint)
    try:
        result = work()
    except Exception:
        record.delete()
        raise
    record.update(actions=[IdempotencyRecord.state.set("done"), IdempotencyRecord.response.set(result)])
    return result


def _replay(record_key: str, fingerprint: str) -> dict:
    stored = IdempotencyRecord.get(record_key, consistent_read=True)
    if stored.request_hash != fingerprint:
        raise InvalidInput("Idempotency-Key was already used for a different request")
    if stored.state != "done":
        raise Conflict("a request with this Idempotency-Key is still in progress; retry shortly")
    return stored.response
