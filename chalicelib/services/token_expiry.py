"""How long the long-lived token (AMO_LONG_LIVED_TOKEN, or one stored with the CLI) has left.

Kommo's long-lived tokens are JWTs that are never refreshed: when one expires, every amoCRM
call fails until someone issues a new one. The refresh-token schedule and `status` report the
days left as the metric `LongLivedTokenDaysLeft` (the template alarms below 14 days); under
14 days they also log a warning and count `LongLivedTokenExpiringSoon`. The token is read,
never verified (amoCRM does that) and never logged.
"""

from __future__ import annotations

import logging
import time

from chalicelib import metrics
from chalicelib.amo.oauth import jwt_expires_at
from chalicelib.services import token_store
from chalicelib.services.token_store import TokenStore

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0
WARN_DAYS = 14
expires_at = jwt_expires_at


def report(now: float | None = None) -> float | None:
    """Days the long-lived token has left (reported as a metric); None when there is none."""
    token = token_store.long_lived_token()
    if not token:
        return None
    exp = expires_at(token)
    if exp is None:
        log.warning("the long-lived amoCRM token is not a JWT with an expiry; its lifetime cannot be watched")
        return None
    days = round((exp - (now or time.time())) / SECONDS_PER_DAY, 2)
    metrics.measure("LongLivedTokenDaysLeft", days)
    if days < WARN_DAYS:
        metrics.count("LongLivedTokenExpiringSoon")
        log.warning("the long-lived amoCRM token expires in %.1f days: issue a new one before then", days)
    else:
        log.info("the long-lived amoCRM token expires in %.1f days", days)
    return days


def keep_alive(store: TokenStore) -> dict:
    """The refresh-token schedule: keep the OAuth refresh token alive, and watch the long-lived token."""
    result = store.keep_alive()
    days = report()
    return result if days is None else {**result, "longLivedTokenDaysLeft": days}
