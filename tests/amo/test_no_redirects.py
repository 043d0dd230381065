"""Tokens and the client secret go only to AMO_BASE_URL over https (issue 13, item 16)."""

import pytest

from chalicelib import settings, wiring
from chalicelib.amo.errors import AmoError
from tests.fixtures import HOST, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

ELSEWHERE = "https://collector.example.net/steal"


def test_a_redirect_from_the_token_endpoint_is_not_followed(amo):
    store_tokens("access-1", "refresh-secret-1", expires_in=-10)
    amo.post(f"{HOST}/oauth2/access_token", status=307, headers={"Location": ELSEWHERE})
    amo.post(ELSEWHERE, status=200, json={"access_token": "x", "refresh_token": "y", "expires_in": 86400})

    with pytest.raises(AmoError):
        wiring.token_store().get_access_token()

    assert [c.request.url for c in amo.calls if c.request.url.startswith(ELSEWHERE)] == []


def test_a_redirect_from_an_api_call_is_not_followed(amo):
    store_tokens("access-1", "refresh-1")
    amo.get(f"{HOST}/api/v4/account", status=302, headers={"Location": ELSEWHERE})
    amo.get(ELSEWHERE, status=200, json={})

    with pytest.raises(AmoError):
        wiring.amo().account.get()

    assert [c.request.url for c in amo.calls if c.request.url.startswith(ELSEWHERE)] == []


@pytest.mark.parametrize(
    "url,accepted",
    [
        ("https://example.amocrm.ru", True),
        ("http://example.amocrm.ru", False),
        ("http://127.0.0.1:8001", True),  # a sandbox on this machine
        ("http://localhost:8001", True),
        ("http://10.0.0.5:8001", False),
    ],
)
def test_amo_base_url_must_be_https_except_towards_this_machine(monkeypatch, url, accepted):
    monkeypatch.setenv("AMO_BASE_URL", url)
    if accepted:
        assert settings.amo_base_url() == url
    else:
        with pytest.raises(settings.ConfigError, match="https"):
            settings.amo_base_url()
