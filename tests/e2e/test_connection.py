"""OAuth over real HTTP: install → connected; expired access token → transparent refresh."""
import pytest

pytestmark = pytest.mark.e2e


def test_install_connects_and_test_reports_connected(service):
    status, body = service.call("GET", "test")
    assert status == 200
    assert body["connected"] is True and body["hasTokens"] is True
    assert body["domain"] == "sandbox.amocrm.ru"


def test_protected_route_needs_the_api_key(service):
    status, _ = service.call("GET", "test", key=False)
    assert status == 401


def test_expired_access_token_is_refreshed_transparently(service):
    _, before = service.sandbox("GET", "/_sandbox/stats")
    service.sandbox("POST", "/_sandbox/expire-tokens")

    status, body = service.call("GET", "test")

    assert status == 200 and body["connected"] is True
    _, after = service.sandbox("GET", "/_sandbox/stats")
    assert after["refreshes"] == before["refreshes"] + 1


def test_second_install_of_the_same_account_keeps_working(service):
    service.stack.connect()
    status, body = service.call("GET", "test")
    assert body["connected"] is True
