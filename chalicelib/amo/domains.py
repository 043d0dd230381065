"""Which host an account's API calls go to.

amoCRM accounts live on `<subdomain>.amocrm.ru`, `.amocrm.com` or `.kommo.com` (reference §1.1),
and a subdomain can change when the account is renamed (§1.6). AMO_BASE_URL names the host at
deployment; the account's current domain is stored with its tokens. Calls follow the stored
domain only when both are amoCRM's own hosts: anything else (a loopback sandbox, a test host)
keeps AMO_BASE_URL, so a token is never sent to a host amoCRM did not name.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

AMO_HOST = re.compile(r"^([a-z0-9-]+)\.(amocrm\.ru|amocrm\.com|kommo\.com)$")


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def subdomain_of(host: str | None) -> str | None:
    """`<sub>` of an amoCRM host `<sub>.amocrm.ru|amocrm.com|kommo.com`, else None."""
    match = AMO_HOST.match((host or "").lower())
    return match.group(1) if match else None


def is_amo_host(host: str | None) -> bool:
    return subdomain_of(host) is not None


# amoCRM runs two platforms (reference §1.1): the Russian one (.amocrm.ru) and the international
# one, once .amocrm.com and now .kommo.com. An account lives on one of them, never moves across.
PLATFORMS = {"amocrm.ru": "amocrm.ru", "amocrm.com": "kommo", "kommo.com": "kommo"}


def platform_of(host: str | None) -> str | None:
    """The platform of an amoCRM host (`amocrm.ru` or `kommo`), else None."""
    match = AMO_HOST.match((host or "").lower())
    return PLATFORMS[match.group(2)] if match else None


def base_url_for(configured: str, domain: str | None) -> str:
    """The base URL of an account whose current domain is `domain`: `https://<domain>` when
    both it and AMO_BASE_URL (`configured`) are amoCRM hosts, else AMO_BASE_URL itself."""
    configured = configured.rstrip("/")
    if domain and is_amo_host(domain) and is_amo_host(host_of(configured)):
        return f"https://{domain.lower()}"
    return configured


API_HOST = re.compile(r"^[a-z0-9.-]+(:[0-9]{1,5})?$")


def shared_api_host(configured: str, api_domain: str | None) -> tuple[str, dict[str, str]] | None:
    """Where to ask `/oauth2/account/current/subdomain` (§1.6): the shared API host named in the
    access token's `api_domain` claim, never the account host that has just refused the refresh.
    Returns (base URL, extra headers), or None when no usable claim exists (then only a new
    authorization helps). Against amoCRM the claim must be an amoCRM host; against a sandbox
    (AMO_BASE_URL not amoCRM's) an amoCRM-named claim is sent to the sandbox with that `Host`,
    and a local name (`localhost:<port>`) is called as it is."""
    name = (api_domain or "").strip().lower()
    if not API_HOST.match(name):
        return None
    configured = configured.rstrip("/")
    claim_is_amo = is_amo_host(name.split(":")[0])
    if is_amo_host(host_of(configured)):
        return (f"https://{name}", {}) if claim_is_amo else None
    if claim_is_amo:
        return configured, {"Host": name}
    return f"{urlsplit(configured).scheme or 'http'}://{name}", {}
