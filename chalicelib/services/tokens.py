"""OAuth token lifecycle: code exchange, refresh, connection status.

amoCRM refresh tokens are single-use: refreshing returns a new pair and revokes the old
refresh token. Two invocations that both refresh with the same token leave one of them
holding a revoked token, and the integration is dead until a person re-authorizes. So a
refresh happens only under a lease on the token item (a conditional write): exactly one
invocation calls amoCRM, the others poll the item until the new pair appears. The new pair
is written before it is handed to anyone.
"""
from __future__ import annotations

import logging
import random
import re
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

from pynamodb.exceptions import PynamoDBException

from chalicelib import settings
from chalicelib.amo import oauth
from chalicelib.amo.client import AmoClient
from chalicelib.amo.errors import AmoError, AmoTokenRevoked
from chalicelib.amo.oauth import StaticToken, TokenPair
from chalicelib.locking import is_conflict, retry_on_conflict
from chalicelib.models import AmoToken, OAuthState
from chalicelib.services import gateway
from chalicelib.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotConnected,
    ReauthorizationRequired,
)

log = logging.getLogger(__name__)

REFRESH_BEFORE_EXPIRY_SECONDS = 300
LEASE_SECONDS = 40  # longer than the token endpoint's connect + read timeouts
STATE_TTL_SECONDS = 1800
_AMO_HOST = re.compile(r"^([a-z0-9-]+)\.(amocrm\.ru|amocrm\.com|kommo\.com)$")

_clock: Callable[[], float] = time.time
_sleep: Callable[[float], None] = time.sleep


def _now() -> float:
    return _clock()


def load_token() -> AmoToken | None:
    try:
        return AmoToken.get(AmoToken.SINGLETON_KEY, consistent_read=True)
    except AmoToken.DoesNotExist:
        return None


def _usable(token: AmoToken | None) -> AmoToken:
    if token is None or not token.access_token:
        raise NotConnected("amoCRM is not connected: install the integration so amoCRM calls the callback")
    if token.needs_reauth:
        raise ReauthorizationRequired("amoCRM needs re-authorization: "
                                      + (token.last_error or "the refresh token is no longer valid"))
    return token


def _expiring(token: AmoToken) -> bool:
    return (token.expires_at or 0) - _now() <= REFRESH_BEFORE_EXPIRY_SECONDS


# -- access token (the TokenSource the amoCRM client uses) ------------------------------------

def get_access_token() -> str:
    """A valid access token, refreshed first when it expires within 5 minutes."""
    token = _usable(load_token())
    if not _expiring(token):
        return token.access_token
    return _refresh_under_lease(still_needed=_expiring)


def refresh_token(force: bool = True) -> dict:
    """Refresh now (the schedule and the CLI call this so the refresh token never lapses)."""
    started = _now()
    if force:
        _refresh_under_lease(still_needed=lambda t: (t.last_refreshed_at or 0) < started)
    else:
        get_access_token()
    token = _usable(load_token())
    return {"refreshed": True, "expiresAt": int(token.expires_at or 0)}


def keep_alive() -> dict:
    """Scheduled refresh: refresh when connected; when not, say why instead of failing."""
    try:
        return refresh_token(force=True)
    except (NotConnected, ReauthorizationRequired) as error:
        log.warning("scheduled token refresh skipped: %s", error)
        return {"refreshed": False, "reason": str(error)}


class StoredTokens:
    """TokenSource backed by the token item."""

    def access_token(self) -> str:
        return get_access_token()

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return _refresh_under_lease(still_needed=lambda t: t.access_token == rejected_token)


stored_tokens = StoredTokens()


def _refresh_under_lease(still_needed: Callable[[AmoToken], bool]) -> str:
    """Refresh once across all concurrent invocations; everyone gets the resulting token.

    `still_needed(token)` tells, on every re-read, whether the stored token still needs a
    refresh; when another invocation has refreshed meanwhile it is False and we use its result.
    """
    owner = uuid.uuid4().hex
    deadline = _now() + LEASE_SECONDS + 5
    while True:
        token = _usable(load_token())
        if not still_needed(token):
            return token.access_token
        lease_free = (token.refresh_lease_until or 0) < _now()
        if lease_free and _take_lease(token, owner):
            break
        if _now() > deadline:
            raise AmoError("timed out waiting for another invocation to refresh the amoCRM token")
        _sleep(0.05 + random.random() * 0.1)
    return _refresh_holding_lease(token, owner)


def _take_lease(token: AmoToken, owner: str) -> bool:
    until = _now() + LEASE_SECONDS
    try:
        token.update(actions=[AmoToken.refresh_lease_owner.set(owner),
                              AmoToken.refresh_lease_until.set(until)],
                     condition=(AmoToken.refresh_lease_until.does_not_exist()
                                | (AmoToken.refresh_lease_until < _now())))
        return True
    except PynamoDBException as error:
        if is_conflict(error):
            return False
        raise


def _refresh_holding_lease(token: AmoToken, owner: str) -> str:
    try:
        pair = oauth.refresh(_oauth_client(), gateway.oauth_credentials(), token.refresh_token)
    except AmoTokenRevoked as error:
        log.error("amoCRM refused the refresh token; re-authorization required (%s)", error.status)
        token.update(actions=[AmoToken.needs_reauth.set(True),
                              AmoToken.last_error.set("amoCRM refused the refresh token (revoked or "
                                                      "already used); re-authorize the integration"),
                              AmoToken.refresh_lease_owner.remove(),
                              AmoToken.refresh_lease_until.remove()],
                     add_version_condition=False)
        raise ReauthorizationRequired("amoCRM refused the refresh token; re-authorize the integration") from None
    except Exception:
        _release_lease(token, owner)
        raise
    _store_refreshed_pair(token, pair)
    log.info("amoCRM access token refreshed; expires at %d", pair.expires_at)
    return pair.access_token


def _store_refreshed_pair(token: AmoToken, pair: TokenPair) -> None:
    """Persist the freshly rotated pair. No version condition: this pair is now the only valid
    one, so it must win even if the lease expired meanwhile. Transient DynamoDB errors are
    retried, because losing this write would lose the account."""
    actions = [AmoToken.access_token.set(pair.access_token),
               AmoToken.refresh_token.set(pair.refresh_token),
               AmoToken.expires_at.set(pair.expires_at),
               AmoToken.last_refreshed_at.set(_now()),
               AmoToken.needs_reauth.set(False),
               AmoToken.last_error.remove(),
               AmoToken.refresh_lease_owner.remove(),
               AmoToken.refresh_lease_until.remove()]
    for attempt in range(5):
        try:
            token.update(actions=actions, add_version_condition=False)
            return
        except PynamoDBException:
            if attempt == 4:
                raise
            log.warning("saving the refreshed amoCRM token failed; retrying")
            _sleep(0.2 * (attempt + 1))


def _release_lease(token: AmoToken, owner: str) -> None:
    try:
        token.update(actions=[AmoToken.refresh_lease_owner.remove(),
                              AmoToken.refresh_lease_until.remove()],
                     condition=AmoToken.refresh_lease_owner == owner, add_version_condition=False)
    except PynamoDBException:
        log.warning("could not release the token refresh lease; it expires by itself")


def _oauth_client() -> AmoClient:
    """The shared client, used unauthenticated for /oauth2 calls (same session and limiter)."""
    return gateway.amo_client()


# -- authorization: callback and API-key exchange ---------------------------------------------

def issue_state(state: str | None = None, purpose: str = "authorize") -> str:
    """Record a state value as issued by us (single use, expires after 30 minutes)."""
    state = state or secrets.token_urlsafe(24)
    record = OAuthState(state=state, purpose=purpose)
    record.expires_at = datetime.fromtimestamp(_now() + STATE_TTL_SECONDS, timezone.utc)
    record.touch()
    record.save()
    return state


def _consume_state(state: str) -> None:
    try:
        record = OAuthState.get(state, consistent_read=True)
    except OAuthState.DoesNotExist:
        raise Forbidden("unknown or already used state") from None
    expires_at = record.expires_at.timestamp() if record.expires_at else 0
    try:
        record.delete(condition=OAuthState.state.exists())
    except PynamoDBException as error:
        if is_conflict(error):
            raise Forbidden("unknown or already used state") from None
        raise
    if expires_at < _now():
        raise Forbidden("state has expired; start the authorization again")


def expected_subdomain() -> str | None:
    """`<sub>` when AMO_BASE_URL's host is `<sub>.amocrm.ru|amocrm.com|kommo.com`, else None."""
    match = _AMO_HOST.match((urlsplit(settings.amo_base_url()).hostname or "").lower())
    return match.group(1) if match else None


def exchange_api_key_for_code(login: str, api_key: str, state: str | None = None) -> dict:
    """Ask amoCRM to send an authorization code to our callback (with a state we issued)."""
    state = issue_state(state, purpose="exchange_api_key")
    oauth.exchange_api_key(_oauth_client(), gateway.oauth_credentials(), login, api_key, state)
    return {"message": "amoCRM will deliver an authorization code to the callback", "state": state}


def exchange_code(code: str, state: str | None = None, referer: str | None = None) -> dict:
    """Handle the OAuth redirect: exchange the code, identify the account, store the tokens.

    Every check happens before anything is written, so a rejected or failed callback never
    replaces tokens that already work.
    """
    if state:
        _consume_state(state)
    _check_referer(referer)
    try:
        pair = oauth.exchange_code(_oauth_client(), gateway.oauth_credentials(), code)
    except AmoTokenRevoked:
        raise InvalidInput("amoCRM rejected the authorization code (expired, used or not issued "
                           "for this integration)") from None
    account = _oauth_client().using(StaticToken(pair.access_token)).get("/api/v4/account") or {}
    account_id = account.get("id")
    subdomain = account.get("subdomain")
    if not isinstance(account_id, int):
        raise AmoError("amoCRM /api/v4/account did not return an account id")
    wanted = expected_subdomain()
    if wanted and subdomain != wanted:
        raise Forbidden(f"the authorized account '{subdomain}' is not the configured account '{wanted}'")
    domain = _account_domain(referer, subdomain)
    _save_connection(pair, account_id, subdomain, domain)
    log.info("amoCRM connected: account %s (%s)", account_id, domain)
    return {"message": "amoCRM connected", "accountId": account_id, "domain": domain}


def _check_referer(referer: str | None) -> None:
    if not referer:
        return
    host = (urlsplit(referer if "//" in referer else "//" + referer).hostname or "").lower()
    match = _AMO_HOST.match(host)
    wanted = expected_subdomain()
    if match and wanted and match.group(1) != wanted:
        raise Forbidden(f"callback comes from account '{match.group(1)}', not the configured '{wanted}'")


def _account_domain(referer: str | None, subdomain: str | None) -> str:
    if referer:
        host = urlsplit(referer if "//" in referer else "//" + referer).hostname
        if host:
            return host.lower()
    return urlsplit(settings.amo_base_url()).netloc or (subdomain or "")


def _save_connection(pair: TokenPair, account_id: int, subdomain: str | None, domain: str) -> None:
    def attempt() -> None:
        token = load_token()
        if token is None:
            token = AmoToken()
            condition: Any = AmoToken.pk.does_not_exist()
        else:
            condition = None
            if token.account_id and token.account_id != account_id:
                raise Conflict(f"already connected to amoCRM account {token.account_id}; "
                               "disconnect it before connecting account "
                               f"{account_id}")
        _apply_pair(token, pair)
        token.account_id = account_id
        token.subdomain = subdomain
        token.domain = domain
        token.save(condition=condition)

    retry_on_conflict(attempt)


def _apply_pair(token: AmoToken, pair: TokenPair) -> None:
    token.access_token = pair.access_token
    token.refresh_token = pair.refresh_token
    token.expires_at = pair.expires_at
    token.last_refreshed_at = _now()
    token.needs_reauth = False
    token.last_error = None
    token.refresh_lease_owner = None
    token.refresh_lease_until = None
    token.touch()


def set_tokens(access_token: str, refresh_token_value: str, expires_in: int = 86400) -> dict:
    """Development only: store a token pair by hand (keeps the known account, if any)."""
    pair = TokenPair(access_token, refresh_token_value, int(_now()) + expires_in)

    def attempt() -> None:
        token = load_token() or AmoToken()
        _apply_pair(token, pair)
        token.save()

    retry_on_conflict(attempt)
    _learn_account()
    return {"message": "tokens stored"}


def _learn_account() -> None:
    """Best effort after hand-stored tokens: record which account they belong to, so webhooks
    can be checked against it. A failure here leaves the account unknown, nothing else."""
    try:
        account = gateway.amo_client().get("/api/v4/account") or {}
    except Exception as error:  # the tokens are stored either way; `test` will show the problem
        log.warning("could not read the account for the stored tokens: %s", type(error).__name__)
        return
    if isinstance(account.get("id"), int):
        token = load_token()
        if token is not None and not token.account_id:
            token.update(actions=[AmoToken.account_id.set(account["id"]),
                                  AmoToken.subdomain.set(account.get("subdomain"))], add_version_condition=False)


def disconnect() -> dict:
    """Forget the stored tokens so another account can be connected."""
    token = load_token()
    if token is not None:
        token.delete(add_version_condition=False)
    return {"message": "amoCRM disconnected"}


# -- status -------------------------------------------------------------------------------------

def get_connection_status() -> dict:
    """`connected` is true only when a live amoCRM call with the stored token succeeded."""
    token = load_token()
    has_tokens = bool(token and token.access_token)
    status: dict[str, Any] = {
        "connected": False,
        "hasTokens": has_tokens,
        "domain": token.domain if token else None,
        "accountId": token.account_id if token else None,
        "needsReauthorization": bool(token and token.needs_reauth),
    }
    if token is not None and token.expires_at:
        status["expiresAt"] = int(token.expires_at)
    if not has_tokens:
        status["error"] = "not connected: install the integration in amoCRM"
        return status
    try:
        account = gateway.amo_client().get("/api/v4/account") or {}
    except (AmoError, NotConnected, ReauthorizationRequired) as error:
        status["error"] = str(error)
        status["needsReauthorization"] = isinstance(error, ReauthorizationRequired)
        return status
    status["connected"] = True
    status["accountId"] = account.get("id", status["accountId"])
    return status
