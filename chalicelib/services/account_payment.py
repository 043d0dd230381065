"""An amoCRM account that is not paid (402 "Аккаунт не оплачен", reference §3.5, §13): an account
state, not a fault of one request, so it is remembered and acted on as one.

Any 402 from amoCRM's data API marks the account (a `SyncState` item; the webhooks API's 402 on
a lower plan is another matter, see webhook_manual.py). While it is marked:
- the scheduled sync does not run: one probe (a narrow leads list) per schedule asks whether
  amoCRM answers again, and the mark is cleared when it does;
- webhook events are held in the queue (re-sent with a delay, never dead-lettered) until then;
- routes answer 402 with a message that says so (web.py), and `status` / `GET test` say so;
- `AmoAccountUnpaid` is counted when the account is marked and at each probe that still finds it
  unpaid, which keeps its alarm on until the account is paid.
"""

from __future__ import annotations

import logging
import time

from chalicelib import metrics
from chalicelib.amo.api import AmoApi
from chalicelib.amo.errors import AmoPaymentRequired
from chalicelib.amo.filters import ListFilter
from chalicelib.models import SyncState

log = logging.getLogger(__name__)

KEY = "payment"
PROBE_WINDOW_SECONDS = 60  # the probe lists leads changed in the last minute: usually nothing


def _state() -> SyncState | None:
    try:
        return SyncState.get(KEY, consistent_read=True)
    except SyncState.DoesNotExist:
        return None


def unpaid_since() -> int | None:
    """When the account was first seen unpaid, or None while it is not marked."""
    state = _state()
    result = (state.last_result or {}) if state else {}
    since = result.get("unpaidSince")
    return int(since) if isinstance(since, (int, float)) and not isinstance(since, bool) else None


def record_unpaid(where: str, now: float | None = None) -> None:
    """amoCRM answered 402 to `where`: mark the account (once) and count it."""
    metrics.count("AmoAccountUnpaid")
    if unpaid_since() is not None:
        return
    log.error("amoCRM answered 402 (account not paid) to %s: scheduled syncs stop until it answers again", where)
    state = SyncState(entity=KEY, last_result={"unpaidSince": int(now or time.time()), "noticedOn": where})
    state.touch()
    state.save()


def clear() -> None:
    if unpaid_since() is None:
        return
    log.warning("amoCRM answers again: the account is paid; scheduled syncs resume")
    SyncState(entity=KEY).delete()


def probe(amo: AmoApi, now: float | None = None) -> bool:
    """One narrow request: True (and the mark cleared) when amoCRM answers it, False (counted)
    while it still answers 402. Any other failure is raised: it says nothing about payment."""
    moment = int(now or time.time())
    try:
        amo.leads.page(1, ListFilter(updated_from=moment - PROBE_WINDOW_SECONDS, updated_to=moment))
    except AmoPaymentRequired:
        record_unpaid("the payment probe", now)
        return False
    clear()
    return True


def describe() -> dict:
    """What `status` and `GET test` show: nothing while the account is not marked."""
    since = unpaid_since()
    if since is None:
        return {}
    return {
        "accountUnpaid": True,
        "payment": (
            f"amoCRM answers 402 'account not paid' since {since} (unix time): scheduled syncs are paused and "
            "webhook events held until a probe finds the account paid again"
        ),
    }
