"""The stored OAuth tokens and their refresh: the `TokenSource` every amoCRM call uses.

amoCRM refresh tokens are single-use: refreshing returns a new pair and revokes the old
refresh token. Two invocations that both refresh with the same token leave one of them
holding a revoked token, and the integration is dead until a person re-authorizes. So:
- a refresh happens only under a lease on the token item (a conditional write): exactly one
  invocation calls amoCRM, the others poll the item until the new pair appears;
- the new pair is written before it is handed to anyone; if DynamoDB refuses that write even
  after retries, this process keeps the pair, uses it, and writes it again on every later
  call until the write succeeds (the only copy of a valid refresh token must not be dropped);
  each write holds only while the stored pair is still the one this process refreshed (or its
  own, written by an attempt whose answer was lost): a pair stored meanwhile by someone else (an
  operator's reconnection) wins, and the kept pair is dropped;
- a refusal by amoCRM marks the connection for re-authorization only if this invocation
  still owns the lease and the stored refresh token is still the one it sent: otherwise
  someone else refreshed meanwhile, and their pair is used;
- the lease covers one token call in its worst case (every attempt waiting for the rate budget
  and its timeouts, Retry-After between attempts: TOKEN_CALL_WORST_SECONDS); a rename takes up to
  three such calls (refresh, domain lookup, refresh on the new host), and the lease is extended
  before each later one, so another invocation never takes it while this one may still send the
  refresh token. An invocation that finds its lease taken stops and waits for the new pair.

A refresh that amoCRM answers 401/404 because the account was renamed is retried on the
account's new domain (OAuth.refresh_following_rename); the new domain and subdomain are stored
with the pair, and every later call follows them (the connection's AccountHost).

A long-lived token (Kommo private integrations: AMO_LONG_LIVED_TOKEN, or one stored by the
CLI, which is an item with no refresh token) is never refreshed: its expiry is its JWT's
`exp`, and a 401 means a person must issue a new one (reference §13).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib import metrics, settings
from chalicelib.amo.budget import MAX_WAIT_SECONDS
from chalicelib.amo.errors import AmoError, AmoTokenRevoked
from chalicelib.amo.oauth import TOKEN_TIMEOUTS, AccountDomain, OAuth, TokenPair, jwt_api_domain, jwt_expires_at
from chalicelib.amo.retry import RetryPolicy
from chalicelib.locking import is_conflict, retry_on_conflict, wrote
from chalicelib.models import AmoToken
from chalicelib.services.errors import NotConnected, ReauthorizationRequired

log = logging.getLogger(__name__)

REFRESH_BEFORE_EXPIRY_SECONDS = 300
# 3 attempts, at most 5 s apart (a token POST that may have been sent is never re-sent).
TOKEN_RETRY = RetryPolicy(max_attempts=3, max_retry_after=5.0)
# One token call at its slowest: before every attempt the rate budget may hold it (a longer
# pause is refused at once), then the attempt may take its connect and read timeouts.
TOKEN_CALL_WORST_SECONDS = (
    TOKEN_RETRY.max_attempts * (MAX_WAIT_SECONDS + TOKEN_TIMEOUTS.connect + TOKEN_TIMEOUTS.read)
    + (TOKEN_RETRY.max_attempts - 1) * TOKEN_RETRY.max_retry_after
)
LEASE_SECONDS = TOKEN_CALL_WORST_SECONDS + 10  # and the lease's own DynamoDB writes
# how long an invocation waits for another's refresh: a rename's three calls, each under the lease
WAIT_FOR_REFRESH_SECONDS = 3 * LEASE_SECONDS + 5
SAVE_ATTEMPTS = 6


class LeaseLost(Exception):
    """Another invocation holds the refresh lease now: this one must not send the refresh token."""


def load_token() -> AmoToken | None:
    try:
        return AmoToken.get(AmoToken.SINGLETON_KEY, consistent_read=True)
    except AmoToken.DoesNotExist:
        return None


LONG_LIVED_REFUSED = "amoCRM refused the long-lived token (expired or revoked): issue and store a new one"


def is_long_lived(token: AmoToken | None) -> bool:
    """A stored long-lived token: an access token without a refresh token."""
    return token is not None and bool(token.access_token) and not token.refresh_token


def long_lived_token() -> str | None:
    """The long-lived token in use, if any: AMO_LONG_LIVED_TOKEN first, else a stored one."""
    configured = settings.amo_long_lived_token()
    if configured:
        return configured
    token = load_token()
    return token.access_token if is_long_lived(token) and token is not None else None


def usable(token: AmoToken | None) -> AmoToken:
    if token is None or not token.access_token:
        raise NotConnected("amoCRM is not connected: install the integration so amoCRM calls the callback")
    if token.needs_reauth:
        metrics.count("NeedsReauthorization")
        raise ReauthorizationRequired(
            "amoCRM needs re-authorization: " + (token.last_error or "the refresh token is no longer valid")
        )
    return token


def apply_pair(token: AmoToken, pair: TokenPair, now: float) -> None:
    token.access_token = pair.access_token
    token.refresh_token = pair.refresh_token
    token.expires_at = pair.expires_at
    token.last_refreshed_at = now
    token.needs_reauth = False
    token.last_error = None
    token.refresh_lease_owner = None
    token.refresh_lease_until = None
    token.touch()


def save(change: Callable[[AmoToken | None], AmoToken]) -> None:
    """Read, change and write the token item under its version (retried when someone else won)."""

    def attempt() -> None:
        current = load_token()
        token = change(current)
        token.save(condition=AmoToken.pk.does_not_exist() if current is None else None)

    retry_on_conflict(attempt)


def record_account(account_id: int, subdomain: str | None, create: bool = False) -> None:
    """Remember the tokens' account if none is known yet (`create`: even with no token item)."""
    token = load_token()
    if token is None and create:
        save(lambda current: current or AmoToken(account_id=account_id, subdomain=subdomain))
    elif token is not None and not token.account_id:
        # PynamoDB writes None to a null=True attribute as NULL; its `set` annotation leaves None out.
        subdomain_action = AmoToken.subdomain.set(subdomain)  # type: ignore[arg-type]
        token.update(actions=[AmoToken.account_id.set(account_id), subdomain_action], add_version_condition=False)


def update_stored(actions: list, condition: Any = None) -> bool:
    """Apply `actions` to the stored token item (no version check: the condition says what
    must hold); False when there is no item any more."""
    token = load_token()
    if token is None:
        return False
    token.update(actions=actions, condition=condition, add_version_condition=False)
    return True


def disconnect() -> None:
    token = load_token()
    if token is not None:
        token.delete(add_version_condition=False)


class TokenStore:
    """TokenSource backed by the token item; refreshes through `oauth` under the lease."""

    def __init__(
        self, oauth: OAuth, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ):
        self.oauth = oauth
        self._clock = clock
        self._sleep = sleep
        self._unsaved: TokenPair | None = None  # a rotated pair DynamoDB has not accepted yet
        self._replaces: str | None = None  # the stored refresh token that pair was issued for
        self._moved: AccountDomain | None = None  # the renamed account's domain, saved with it

    # -- TokenSource ----------------------------------------------------------------------------

    def access_token(self) -> str:
        return self.get_access_token()

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        if settings.amo_long_lived_token() or is_long_lived(load_token()):
            return self._long_lived_refused(rejected_token)
        return self._refresh_under_lease(still_needed=lambda t: t.access_token == rejected_token)

    def _long_lived_refused(self, rejected_token: str) -> str:
        """No refresh: a stored token is marked for re-authorization (if it is the one refused)."""
        metrics.count("NeedsReauthorization")
        log.error("amoCRM refused the long-lived token; a new one must be issued")
        if not settings.amo_long_lived_token():
            if not wrote(
                lambda: update_stored(
                    [AmoToken.needs_reauth.set(True), AmoToken.last_error.set(LONG_LIVED_REFUSED)],
                    condition=AmoToken.access_token == rejected_token,
                )
            ):
                return usable(load_token()).access_token  # replaced meanwhile: use the new one
        raise ReauthorizationRequired(LONG_LIVED_REFUSED)

    # -- the service methods of SPEC §4 -----------------------------------------------------------

    def get_access_token(self) -> str:
        """A valid access token, refreshed when it expires within 5 minutes (long-lived: as is)."""
        configured = settings.amo_long_lived_token()
        if configured:
            return configured
        pending = self._unsaved
        if pending is not None and self._save_unsaved() is None:
            return pending.access_token
        token = self._load()
        if is_long_lived(token) or not self._expiring(token):
            return token.access_token
        return self._refresh_under_lease(still_needed=self._expiring)

    def refresh_token(self) -> dict:
        """Refresh now (the schedule and the CLI call this so the refresh token never lapses);
        a long-lived token is never refreshed: the answer says so and when it expires."""
        long_lived = long_lived_token()
        if long_lived:
            exp = int(jwt_expires_at(long_lived) or 0) or None
            return {"refreshed": False, "reason": "a long-lived token is never refreshed", "expiresAt": exp}
        started = self._clock()
        self._refresh_under_lease(still_needed=lambda t: (t.last_refreshed_at or 0) < started)
        token = usable(load_token())
        return {"refreshed": True, "expiresAt": int(token.expires_at or 0)}

    def keep_alive(self) -> dict:
        """Scheduled refresh: refresh when connected; when not, say why instead of failing (not
        connected yet is a state: counted as `NotConnected`, logged at INFO)."""
        try:
            return self.refresh_token()
        except NotConnected as error:
            metrics.count("NotConnected")
            log.info("scheduled token refresh skipped: %s", error)
            return {"refreshed": False, "reason": str(error)}
        except ReauthorizationRequired as error:
            log.warning("scheduled token refresh skipped: %s", error)
            return {"refreshed": False, "reason": str(error)}

    def _load(self) -> AmoToken:
        """The usable stored token; the connection's calls follow the account's stored domain."""
        token = usable(load_token())
        self.oauth.client.host.follow(token.domain)
        return token

    # -- the lease ------------------------------------------------------------------------------

    def _expiring(self, token: AmoToken) -> bool:
        return (token.expires_at or 0) - self._clock() <= REFRESH_BEFORE_EXPIRY_SECONDS

    def _refresh_under_lease(self, still_needed: Callable[[AmoToken], bool]) -> str:
        """Refresh once across all concurrent invocations; everyone gets the resulting token.

        `still_needed(token)` tells, on every re-read, whether the stored token still needs a
        refresh; when another invocation has refreshed meanwhile it is False and we use its result.
        """
        owner = uuid.uuid4().hex
        deadline = self._clock() + WAIT_FOR_REFRESH_SECONDS
        while True:
            token = self._load()
            if not still_needed(token):
                return token.access_token
            if (token.refresh_lease_until or 0) < self._clock() and self._take_lease(token, owner):
                try:
                    return self._refresh_holding_lease(token, owner)
                except LeaseLost:
                    log.warning("the token refresh lease was taken over mid-refresh; waiting for that refresh")
                    deadline = self._clock() + WAIT_FOR_REFRESH_SECONDS
            if self._clock() > deadline:
                raise AmoError("timed out waiting for another invocation to refresh the amoCRM token")
            self._sleep(0.05 + random.random() * 0.1)

    def _take_lease(self, token: AmoToken, owner: str) -> bool:
        now = self._clock()
        return wrote(
            lambda: token.update(
                actions=[
                    AmoToken.refresh_lease_owner.set(owner),
                    AmoToken.refresh_lease_until.set(now + LEASE_SECONDS),
                ],
                condition=(AmoToken.refresh_lease_until.does_not_exist() | (AmoToken.refresh_lease_until < now)),
            )
        )

    def _extend_lease(self, owner: str) -> None:
        """Another full token call's worth of lease, if it is still ours (else LeaseLost)."""
        until = self._clock() + LEASE_SECONDS
        try:
            if wrote(
                lambda: update_stored(
                    [AmoToken.refresh_lease_until.set(until)], condition=AmoToken.refresh_lease_owner == owner
                )
            ):
                return
        except PynamoDBException:
            log.warning("could not extend the token refresh lease; stopping rather than racing")
        raise LeaseLost("another invocation holds the token refresh lease now")

    def _refresh_holding_lease(self, token: AmoToken, owner: str) -> str:
        sent = token.refresh_token
        try:
            refreshed = self.oauth.refresh_following_rename(
                sent,
                account_id=token.account_id,
                domain=token.domain,
                api_domain=jwt_api_domain(token.access_token),
                before_next_call=lambda: self._extend_lease(owner),
            )
        except LeaseLost:
            raise
        except AmoTokenRevoked as error:
            metrics.count("TokenRefreshFailures")
            return self._refused(sent, owner, error)
        except Exception:
            metrics.count("TokenRefreshFailures")
            self._release_lease(owner)
            raise
        metrics.count("TokenRefreshes")
        pair, moved = refreshed.pair, refreshed.moved_to
        if moved is not None:
            metrics.count("AccountRenamed")
            log.warning(
                "amoCRM account %s was renamed: %s is now %s; every call follows it",
                moved.id,
                token.domain or token.subdomain,
                moved.domain,
            )
            self.oauth.client.host.follow(moved.domain)
        log.info("amoCRM access token refreshed; expires at %d", pair.expires_at)
        return self._store_rotated(pair, sent, moved)

    def _refused(self, sent: str, owner: str, error: AmoTokenRevoked) -> str:
        """amoCRM refused the refresh token we sent. Only if it is still the stored one, and the
        lease still ours, is the connection really dead; otherwise use the pair stored meanwhile."""
        if not wrote(
            lambda: update_stored(
                [
                    AmoToken.needs_reauth.set(True),
                    AmoToken.last_error.set(
                        "amoCRM refused the refresh token (revoked or already used); re-authorize the integration"
                    ),
                    AmoToken.refresh_lease_owner.remove(),
                    AmoToken.refresh_lease_until.remove(),
                ],
                condition=(AmoToken.refresh_lease_owner == owner) & (AmoToken.refresh_token == sent),
            )
        ):
            log.warning("amoCRM refused a refresh token that another invocation had already replaced")
            return usable(load_token()).access_token
        metrics.count("NeedsReauthorization")
        log.error("amoCRM refused the refresh token; re-authorization required (%s)", error.status)
        raise ReauthorizationRequired("amoCRM refused the refresh token; re-authorize the integration") from None

    def _store_rotated(self, pair: TokenPair, sent: str, moved: AccountDomain | None = None) -> str:
        """Persist the freshly rotated pair (and a renamed account's domain); the access token to
        use. No lease condition: this pair is now the only valid one, so it must win even if the
        lease expired meanwhile; only a pair someone else stored since (see _save_unsaved) beats it."""
        self._unsaved, self._replaces, self._moved = pair, sent, moved or self._moved
        for attempt in range(SAVE_ATTEMPTS):
            current = self._save_unsaved()
            if current is not None:
                return current
            self._sleep(min(2.0, 0.2 * 2**attempt))
        log.error(
            "saving the rotated amoCRM token pair failed %d times; this process keeps it and retries "
            "on its next amoCRM call",
            SAVE_ATTEMPTS,
        )
        return pair.access_token

    def _save_unsaved(self) -> str | None:
        """Write the kept pair if the stored refresh token is still the one it was issued for (or
        the pair's own: an earlier attempt landed and its answer was lost). The access token to use
        now, or None when DynamoDB refused the write (the pair is kept for the next call)."""
        pair, sent = self._unsaved, self._replaces
        if pair is None:
            return usable(load_token()).access_token
        try:
            landed = self._write_kept(pair, sent)
        except PynamoDBException:
            log.warning("saving the rotated amoCRM token pair failed; will retry")
            return None
        self._unsaved = self._replaces = self._moved = None
        if landed:
            return pair.access_token
        log.warning(
            "another amoCRM token pair was stored (or the tokens removed) while this process held an "
            "unsaved one, a reconnection say: the stored state wins and this process drops its pair"
        )
        return usable(load_token()).access_token

    def _write_kept(self, pair: TokenPair, sent: str | None) -> bool:
        """False when the stored pair is no longer the one `pair` replaces (nor `pair` itself)."""
        try:
            return update_stored(
                [
                    AmoToken.access_token.set(pair.access_token),
                    AmoToken.refresh_token.set(pair.refresh_token),
                    AmoToken.expires_at.set(pair.expires_at),
                    AmoToken.last_refreshed_at.set(self._clock()),
                    AmoToken.needs_reauth.set(False),
                    AmoToken.last_error.remove(),
                    AmoToken.refresh_lease_owner.remove(),
                    AmoToken.refresh_lease_until.remove(),
                    *_domain_actions(self._moved),
                ],
                condition=(AmoToken.refresh_token == sent) | (AmoToken.refresh_token == pair.refresh_token),
            )
        except PynamoDBException as error:
            if is_conflict(error):
                return False
            raise

    def _release_lease(self, owner: str) -> None:
        try:
            update_stored(
                [AmoToken.refresh_lease_owner.remove(), AmoToken.refresh_lease_until.remove()],
                condition=AmoToken.refresh_lease_owner == owner,
            )
        except PynamoDBException:
            log.warning("could not release the token refresh lease; it expires by itself")


def _domain_actions(moved: AccountDomain | None) -> list:
    if moved is None:
        return []
    return [AmoToken.domain.set(moved.domain), AmoToken.subdomain.set(moved.subdomain)]


def describe(token: AmoToken | None) -> dict[str, Any]:
    """What `status` shows about the tokens in use (never the tokens themselves)."""
    configured = settings.amo_long_lived_token()
    long_lived = bool(configured) or is_long_lived(token)
    expires_at = jwt_expires_at(configured) if configured else (token.expires_at if token else None)
    return {
        "hasTokens": bool(configured) or bool(token and token.access_token),
        "tokenType": "long_lived" if long_lived else "oauth",
        **({"tokenSource": "AMO_LONG_LIVED_TOKEN"} if configured else {}),
        "domain": token.domain if token else None,
        "accountId": token.account_id if token else None,
        "needsReauthorization": bool(token and token.needs_reauth and not configured),
        **({"expiresAt": int(expires_at)} if expires_at else {}),
    }
