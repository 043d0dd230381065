"""The shared secret in the webhook URL: which deliveries it lets in, and how it is shown.

amoCRM signs nothing (reference §9.5), so `?secret=…` in the subscribed URL is what proves a
delivery is amoCRM's. amoCRM counts every non-2xx answer towards disabling the hook, and every
delivery and pending retry keeps the URL it was sent to, so:
- during a rotation the previous secret (AMO_WEBHOOK_SECRET_PREVIOUS) is accepted as well
  (docs/operating.md, "Rotating the webhook secret");
- a wrong or missing secret is a 401 (a stranger, or an old URL nobody deleted), counted as
  `WebhookUnauthorized` so a burst of them pages before amoCRM disables the hook;
- when no secret is configured at all, deliveries cannot be told from anyone's: they are
  answered 200 and not applied (`SecretNotSet`), counted as `WebhookSecretMissing` (it pages).
  A 503 would not keep them either: amoCRM gives up after its retries and disables the hook for
  every event, while the scheduled incremental sync heals what the ignored deliveries named. A
  secret that is set but cannot be read (Secrets Manager unreachable) is a ConfigError: 503, a
  retry is what is wanted then.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from chalicelib import metrics, settings
from chalicelib.services.errors import Unauthenticated

log = logging.getLogger(__name__)

PLACEHOLDER = "<AMO_WEBHOOK_SECRET>"


class SecretNotSet(Exception):
    """No webhook secret is configured: the delivery is acknowledged and not applied."""


def authenticate(query: Mapping[str, str]) -> None:
    """Pass when the delivery carries the current secret, or the previous one during a rotation.
    Without a secret, a local run that asked for it (ENABLE_DEV_ENDPOINTS=true, never deployed)
    takes every delivery; anywhere else SecretNotSet is raised."""
    current = settings.amo_webhook_secret()
    if not current:
        if settings.dev_endpoints_enabled() and not settings.deployed():
            return
        metrics.count("WebhookSecretMissing")
        log.error("AMO_WEBHOOK_SECRET is not set: a webhook delivery was acknowledged and not applied")
        raise SecretNotSet("AMO_WEBHOOK_SECRET is not set, so webhooks cannot be authenticated")
    presented = (query.get("secret") or "").encode()
    if hmac.compare_digest(presented, current.encode()):
        return
    previous = settings.amo_webhook_secret_previous()
    if previous and hmac.compare_digest(presented, previous.encode()):
        metrics.count("WebhookPreviousSecret")  # the rotation is not over while this is counted
        return
    metrics.count("WebhookUnauthorized")
    raise Unauthenticated("missing or wrong webhook secret")


def with_secret(url: str, secret: str | None = None) -> str:
    """The URL with `secret=<the current secret>` (or the one given) as its only secret."""
    secret = settings.amo_webhook_secret() if secret is None else secret
    if not secret:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "secret"] + [("secret", secret)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="<>" if secret == PLACEHOLDER else "")))


def without_secret(url: str) -> str:
    """The URL with no `secret`: two subscriptions that differ only in it are one destination."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "secret"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def masked(url: str) -> str:
    """The URL with its `secret` query value hidden, however it is encoded."""
    parts = urlsplit(url)
    query = [(k, "***" if k == "secret" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    hidden = urlunsplit(parts._replace(query=urlencode(query, safe="*")))
    for secret in (settings.amo_webhook_secret(), settings.amo_webhook_secret_previous()):
        for form in {secret, quote(secret, safe=""), quote_plus(secret)} if secret else ():
            hidden = hidden.replace(form, "***")
    return hidden
