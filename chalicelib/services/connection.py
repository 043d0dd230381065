"""Connecting amoCRM: OAuth state, the callback, the API-key exchange, hand-set tokens, status.

Every check of a callback happens before anything is written, so a rejected or failed
callback never replaces tokens that already work. Once an account is connected, only a
callback carrying a state we issued (GET connect, exchange-api-key) may replace its tokens,
and only with tokens of the same account: a code someone else obtained (another user of the
account, say) cannot take the connection over. The stored domain is the account's own host,
never what the caller's `referer` claims.

The pin is the account id, not its name: an account can be renamed (reference §1.6). Before any
account is connected, AMO_BASE_URL's subdomain names the account to accept; once one is, its id
decides, and its stored subdomain (which follows a rename) is the name callbacks are checked
against.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from chalicelib import settings
from chalicelib.amo import domains
from chalicelib.amo.account import AccountInfo
from chalicelib.amo.api import AmoApi
from chalicelib.amo.errors import AmoAuthError, AmoError, AmoPaymentRequired, AmoTokenRevoked
from chalicelib.amo.oauth import TokenPair, jwt_expires_at
from chalicelib.locking import wrote
from chalicelib.models import AmoToken, OAuthState
from chalicelib.services import account_payment, token_expiry, token_store
from chalicelib.services.errors import Conflict, Forbidden, InvalidInput, NotConnected, ReauthorizationRequired
from chalicelib.services.sync import account_filters, deletions

log = logging.getLogger(__name__)

STATE_TTL_SECONDS = 1800


# -- state --------------------------------------------------------------------------------------


def issue_state(state: str | None = None, purpose: str = "authorize") -> str:
    """Record a state value as issued by us (single use, expires after 30 minutes). A state the
    caller chose never replaces one already issued (that would revive or hijack it)."""
    state = state or secrets.token_urlsafe(24)
    record = OAuthState(state=state, purpose=purpose)
    record.expires_at = datetime.fromtimestamp(time.time() + STATE_TTL_SECONDS, UTC)
    record.touch()
    if not wrote(lambda: record.save(condition=OAuthState.state.does_not_exist())):
        raise Conflict("this state is already in use; choose another or leave it out")
    return state


def consume_state(state: str) -> None:
    try:
        record = OAuthState.get(state, consistent_read=True)
    except OAuthState.DoesNotExist:
        raise Forbidden("unknown or already used state") from None
    expires_at = record.expires_at.timestamp() if record.expires_at else 0
    if not wrote(lambda: record.delete(condition=OAuthState.state.exists())):
        raise Forbidden("unknown or already used state")
    if expires_at < time.time():
        raise Forbidden("state has expired; start the authorization again")


# -- the account ----------------------------------------------------------------------------------


def expected_subdomain() -> str | None:
    """The connected account's stored subdomain (it follows a rename); before any account is
    connected, `<sub>` of AMO_BASE_URL's host when it is an amoCRM host, else None."""
    token = token_store.load_token()
    if token is not None and token.account_id and token.subdomain:
        return token.subdomain
    return domains.subdomain_of(domains.host_of(settings.amo_base_url()))


def _check_account(account: AccountInfo, what: str) -> None:
    """The account must be the connected one (by id: names change) or, before any is connected,
    the one AMO_BASE_URL names. Another id is refused by `_save_connection` (Conflict)."""
    token = token_store.load_token()
    if token is not None and token.account_id:
        return
    wanted = expected_subdomain()
    if wanted and account.subdomain != wanted:
        raise Forbidden(f"the {what} account '{account.subdomain}' is not the configured account '{wanted}'")


def _referer_host(referer: str | None) -> str:
    if not referer:
        return ""
    try:
        return (urlsplit(referer if "//" in referer else "//" + referer).hostname or "").lower()
    except ValueError:  # not a host at all
        return ""


def _check_referer(referer: str | None) -> None:
    """Refuse early a callback from another account's host; once an account is connected its
    name may have changed, so only its id (checked after the exchange) decides."""
    named = domains.subdomain_of(_referer_host(referer))
    token = token_store.load_token()
    if token is not None and token.account_id:
        return
    wanted = expected_subdomain()
    if named and wanted and named != wanted:
        raise Forbidden(f"callback comes from account '{named}', not the configured '{wanted}'")


def _home_host() -> str:
    """Where the account is known to live: its stored domain, else AMO_BASE_URL's host."""
    token = token_store.load_token()
    if token is not None and domains.is_amo_host(token.domain):
        return str(token.domain).lower()
    return urlsplit(settings.amo_base_url()).netloc


def _account_domain(referer: str | None, subdomain: str | None) -> str:
    """The account's host: the referer's only when it is an amoCRM host of this very account on
    the platform the account lives on (its stored domain's, else AMO_BASE_URL's): it may tell a
    renamed account's host, never move the account to the other platform (`.kommo.com` for an
    `.amocrm.ru` account). Else the stored domain of this account, or the configured one."""
    host, home = _referer_host(referer), _home_host()
    named = domains.subdomain_of(host)
    if subdomain and named == subdomain.lower():
        home_platform = domains.platform_of(home)
        if home_platform is None or domains.platform_of(host) == home_platform:
            return host
        log.warning("callback referer %s ignored: the account lives on %s, not that platform", host, home)
    if subdomain and domains.subdomain_of(home) == subdomain.lower():
        return home
    return urlsplit(settings.amo_base_url()).netloc


def _may_connect_without_state() -> bool:
    token = token_store.load_token()
    return token is None or not (token.access_token or token.refresh_token) or bool(token.needs_reauth)


def consent_url() -> dict:
    """amoCRM's consent page for this integration with a fresh single-use state: how an operator
    connects, or reconnects an account that is already connected."""
    state = issue_state()
    match = domains.AMO_HOST.match(domains.host_of(settings.amo_base_url()))
    base = f"https://www.{match.group(2)}/oauth" if match else f"{settings.amo_base_url()}/oauth"
    query = urlencode({"client_id": settings.amo_client_id(), "state": state, "mode": "post_message"})
    return {"url": f"{base}?{query}", "state": state, "expiresInSeconds": STATE_TTL_SECONDS}


# -- the service methods of SPEC §4 ------------------------------------------------------------------


def exchange_api_key_for_code(amo: AmoApi, *, login: str, api_key: str, state: str | None = None) -> dict:
    """Ask amoCRM to send an authorization code to our callback (with a state we issued)."""
    state = issue_state(state, purpose="exchange_api_key")
    amo.oauth.exchange_api_key(login, api_key, state)
    return {"message": "amoCRM will deliver an authorization code to the callback", "state": state}


def exchange_code(amo: AmoApi, *, code: str, state: str | None = None, referer: str | None = None) -> dict:
    """Handle the OAuth redirect: exchange the code, identify the account, store the tokens."""
    if state:
        consume_state(state)
    elif not _may_connect_without_state():
        raise Forbidden(
            "amoCRM is already connected: a callback must carry a state issued by GET connect "
            "(or exchange-api-key) to replace its tokens"
        )
    _check_referer(referer)
    try:
        pair = amo.oauth.exchange_code(code)
    except AmoTokenRevoked:
        raise InvalidInput(
            "amoCRM rejected the authorization code (expired, used or not issued for this integration)"
        ) from None
    account = amo.with_access_token(pair.access_token).account.get()
    _check_account(account, "authorized")
    domain = _account_domain(referer, account.subdomain)
    _save_connection(pair, account_id=account.id, subdomain=account.subdomain, domain=domain)
    log.info("amoCRM connected: account %s (%s)", account.id, domain)
    return {"message": "amoCRM connected", "accountId": account.id, "domain": domain}


def store_long_lived_token(amo: AmoApi, access_token: str) -> dict:
    """Store a long-lived token (Kommo private integrations, reference §13): it must be a JWT
    that has not expired, amoCRM must accept it, and its account must be the pinned one. It is
    never refreshed; `status` shows when it expires."""
    exp = jwt_expires_at(access_token)
    if exp is None:
        raise InvalidInput("a long-lived token is a JWT with an expiry (exp); this is not one")
    if exp <= time.time():
        raise InvalidInput("this long-lived token has already expired")
    try:
        account = amo.with_access_token(access_token).account.get()
    except AmoAuthError:
        raise InvalidInput("amoCRM refused this token (revoked, expired or for another account)") from None
    _check_account(account, "token's")
    pair = TokenPair(access_token, "", int(exp))
    _save_connection(
        pair, account_id=account.id, subdomain=account.subdomain, domain=_account_domain(None, account.subdomain)
    )
    log.info("long-lived amoCRM token stored for account %s; expires at %d", account.id, int(exp))
    return {
        "message": "long-lived token stored; it is never refreshed",
        "accountId": account.id,
        "tokenType": "long_lived",
        "expiresAt": int(exp),
        "daysLeft": token_expiry.report(),
    }


def _save_connection(pair: TokenPair, *, account_id: int, subdomain: str | None, domain: str) -> None:
    def change(token: AmoToken | None) -> AmoToken:
        if token is not None and token.account_id and token.account_id != account_id:
            raise Conflict(
                f"already connected to amoCRM account {token.account_id}; disconnect it before "
                f"connecting account {account_id}"
            )
        token = token or AmoToken()
        token_store.apply_pair(token, pair, time.time())
        token.refresh_token = pair.refresh_token or None  # none: a long-lived token
        token.account_id, token.subdomain, token.domain = account_id, subdomain, domain
        return token

    token_store.save(change)


def set_tokens(amo: AmoApi, *, access_token: str, refresh_token_value: str, expires_in: int = 86400) -> dict:
    """Development only: store a token pair by hand (keeps the known account, if any)."""
    pair = TokenPair(access_token, refresh_token_value, int(time.time()) + expires_in)

    def change(token: AmoToken | None) -> AmoToken:
        token = token or AmoToken()
        token_store.apply_pair(token, pair, time.time())
        return token

    token_store.save(change)
    _learn_account(amo)
    return {"message": "tokens stored"}


def _learn_account(amo: AmoApi) -> None:
    """Best effort after hand-stored tokens: record which account they belong to, so webhooks
    can be checked against it. A failure here leaves the account unknown, nothing else."""
    try:
        account = amo.account.get()
    except Exception as error:  # the tokens are stored either way; `test` will show the problem
        log.warning("could not read the account for the stored tokens: %s", type(error).__name__)
        return
    token_store.record_account(account.id, account.subdomain)


def disconnect() -> dict:
    """Forget the stored tokens so another account can be connected."""
    token_store.disconnect()
    return {"message": "amoCRM disconnected"}


def get_connection_status(amo: AmoApi) -> dict:
    """`connected` is true only when a live amoCRM call with the stored token succeeded."""
    token = token_store.load_token()
    status: dict[str, Any] = {"connected": False, **token_store.describe(token), "budget": amo.budget()}
    if not status["hasTokens"]:
        status["error"] = "not connected: install the integration in amoCRM"
        return status
    try:
        account = amo.account.get()
        if account_payment.unpaid_since() is not None:
            account_payment.probe(amo)  # the account view may answer while the data API does not
    except AmoPaymentRequired:
        account_payment.record_unpaid("GET test")
        status["error"] = "the amoCRM account is not paid: amoCRM answers 402 'Аккаунт не оплачен'"
        status.update(account_payment.describe())
        return status
    except (AmoError, NotConnected, ReauthorizationRequired) as error:
        status["error"] = str(error)
        status["needsReauthorization"] = isinstance(error, ReauthorizationRequired)
        return status
    token = token_store.load_token()  # the call may have refreshed it, or followed a rename
    status.update({**token_store.describe(token), "connected": True, "accountId": account.id})
    status.update(account_filters.describe())
    status.update(account_payment.describe())
    status.update(deletions.describe())
    if status["tokenType"] == "long_lived":
        if token is None or not token.account_id:  # AMO_LONG_LIVED_TOKEN: webhooks need the account
            token_store.record_account(account.id, account.subdomain, create=True)
        status["daysLeft"] = token_expiry.report()
        if status["daysLeft"] is not None and status["daysLeft"] < token_expiry.WARN_DAYS:
            status["warning"] = f"the long-lived token expires in {status['daysLeft']:.1f} days: issue a new one"
    return status
