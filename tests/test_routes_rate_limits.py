"""amoCRM's rate limits as the routes answer them (reference §1.7, §3.4): an odd Retry-After
never turns into a 500 or a pause without end, and exchange_api_key's own quota (once per 5
minutes per user and integration) answers 429 "try again in 5 minutes" without holding back
anything else."""

import json

import pytest

from tests import fixtures
from tests.conftest import API_KEY
from tests.fixtures import HAL, HOST, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

P = "/integrations/amo-crm"
HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
HTML_429 = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"  # noqa: E501


@pytest.mark.parametrize("retry_after", ["inf", "1e300", "99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_an_absurd_retry_after_neither_fails_the_routes_nor_stops_them(client, amo, retry_after):
    """Regression (issue 23): `inf` / `1e300` made every amoCRM route answer 500 (OverflowError in
    time.gmtime) until the container was recycled; `99999999999` or a date in 9999 stopped them."""
    store_tokens()
    amo.get(f"{HOST}/api/v4/account", status=429, body=HTML_429, headers={"Retry-After": retry_after})
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    first = client.http.get(f"{P}/test", headers=HEADERS)
    second = client.http.get(f"{P}/test", headers=HEADERS)

    assert first.status_code == 200 and second.status_code == 200
    assert second.json_body["connected"] is True


def test_exchange_api_keys_429_answers_try_again_in_5_minutes_and_holds_nothing_else_back(client, amo):
    """Regression (issue 24 item 4): the 429 was retried and paused every amoCRM call."""
    store_tokens()
    amo.post(f"{HOST}/oauth2/exchange_api_key", status=429, body=HTML_429, headers={"Content-Type": "text/html"})
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)

    body = json.dumps({"login": "manager@example.com", "api_key": "a-legacy-api-key"})
    response = client.http.post(f"{P}/exchange-api-key", headers=HEADERS, body=body)

    assert response.status_code == 429
    assert "try again in 5 minutes" in response.json_body["Message"]
    assert "a-legacy-api-key" not in response.body.decode()
    assert len([call for call in amo.calls if "exchange_api_key" in call.request.url]) == 1
    started = __import__("time").monotonic()
    assert client.http.get(f"{P}/test", headers=HEADERS).json_body["connected"] is True
    assert __import__("time").monotonic() - started < 0.5  # no cool-down for the rest of the API
