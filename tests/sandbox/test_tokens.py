"""Access tokens are JWTs like amoCRM's; long-lived tokens of private integrations (reference
§1.5, §13) work until they expire and can never be refreshed."""

import base64
import json
import time

import requests

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def claims(token):
    header, payload, signature = token.split(".")
    assert signature and json.loads(base64.urlsafe_b64decode(header + "=="))["typ"] == "JWT"
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_issued_access_tokens_are_jwts_carrying_exp_account_and_api_domain(sandbox, token):
    payload = claims(token["access_token"])
    assert payload["exp"] - payload["iat"] == token["expires_in"] == 86400
    assert abs(payload["iat"] - time.time()) < 5
    assert payload["account_id"] == sandbox.config.account_id
    # the shared API host (reference §1.6), never the account host the token is used on
    assert payload["api_domain"] == sandbox.api_domain() != sandbox.base_url().split("://")[1]
    assert payload["jti"]


def test_refreshed_access_tokens_are_jwts_with_their_own_jti(sandbox, token):
    refreshed = requests.post(
        f"{sandbox.base_url()}/oauth2/access_token",
        json={**CLIENT, "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    ).json()
    assert claims(refreshed["access_token"])["jti"] != claims(token["access_token"])["jti"]


def test_long_lived_token_has_no_refresh_token_and_opens_the_api(sandbox, control):
    issued = control("/long-lived-token", {"lifetime": 3600}).json()
    assert set(issued) == {"access_token", "expires_at"}
    assert claims(issued["access_token"])["exp"] == issued["expires_at"]
    assert abs(issued["expires_at"] - (time.time() + 3600)) < 5
    response = requests.get(
        f"{sandbox.base_url()}/api/v4/account", headers={"Authorization": f"Bearer {issued['access_token']}"}
    )
    assert response.status_code == 200


def test_long_lived_token_is_refused_with_401_once_it_expires(sandbox, control):
    issued = control("/long-lived-token", {"lifetime": 1}).json()
    time.sleep(2.1)
    response = requests.get(
        f"{sandbox.base_url()}/api/v4/account", headers={"Authorization": f"Bearer {issued['access_token']}"}
    )
    assert response.status_code == 401 and response.json()["title"] == "Unauthorized"


def test_refresh_grant_with_a_long_lived_token_fails_like_a_revoked_refresh_token(sandbox, control):
    issued = control("/long-lived-token", {"lifetime": 3600}).json()
    response = requests.post(
        f"{sandbox.base_url()}/oauth2/access_token",
        json={**CLIENT, "grant_type": "refresh_token", "refresh_token": issued["access_token"]},
    )
    assert response.status_code == 401 and response.json()["hint"] == "Token has been revoked"


def test_long_lived_token_needs_a_positive_lifetime(control):
    assert control("/long-lived-token", {"lifetime": 0}).status_code == 400
    assert control("/long-lived-token", {"lifetime": "week"}).status_code == 400
