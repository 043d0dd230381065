"""How long the configured long-lived token (AMO_LONG_LIVED_TOKEN) has left.

Kommo's long-lived tokens are JWTs that are never refreshed: when one expires, every amoCRM
call fails until someone issues a new one. The refresh-token schedule reports the days left
as the metric `LongLivedTokenDaysLeft`, and the template alarms below 14 days. The token is
read, never verified (amoCRM does that) and never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time

from chalicelib import metrics, settings
from chalicelib.services.token_store import TokenStore

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0


def expires_at(token: str) -> float | None:
    """The `exp` claim of a JWT, or None when the token is not a JWT with one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def report(now: float | None = None) -> float | None:
    """Days the long-lived token has left (reported as a metric); None when there is none."""
    token = settings.amo_long_lived_token()
    if not token:
        return None
    exp = expires_at(token)
    if exp is None:
        log.warning("AMO_LONG_LIVED_TOKEN is not a JWT with an expiry; its lifetime cannot be watched")
        return None
    days = round((exp - (now or time.time())) / SECONDS_PER_DAY, 2)
    metrics.measure("LongLivedTokenDaysLeft", days)
    (log.warning if days < 14 else log.info)("the long-lived amoCRM token expires in %.1f days", days)
    return days


def keep_alive(store: TokenStore) -> dict:
    """The refresh-token schedule: keep the OAuth refresh token alive, and watch the long-lived token."""
    result = store.keep_alive()
    days = report()
    return result if days is None else {**result, "longLivedTokenDaysLeft": days}
