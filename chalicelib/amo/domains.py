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


def base_url_for(configured: str, domain: str | None) -> str:
    """The base URL of an account whose current domain is `domain`: `https://<domain>` when
    both it and AMO_BASE_URL (`configured`) are amoCRM hosts, else AMO_BASE_URL itself."""
    configured = configured.rstrip("/")
    if domain and is_amo_host(domain) and is_amo_host(host_of(configured)):
        return f"https://{domain.lower()}"
    return configured
