"""Rotating the webhook secret against the sandbox's webhook subscriptions (reference §9.5, §13;
docs/operating.md "Rotating the webhook secret"): no delivery meets a 401 while both secrets are
accepted, and after `webhook/register` amoCRM sends only to the new URL. The secret is the
service's environment, which only the in-process backend can change mid-test."""

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.backends import WEBHOOK_SECRET, InProcess
from tests.e2e.test_real_accounts import move, open_leads, redeliver

NEW_SECRET = "rotated-webhook-secret"


@pytest.fixture(scope="module")
def backend():
    with InProcess() as backend:
        backend.call("POST", "webhook/register")
        yield backend


def secrets_sent_to(deliveries: list[dict]) -> list[str]:
    return [parse_qs(urlsplit(d["destination"]).query)["secret"][0] for d in deliveries]


def test_a_rotation_never_answers_amocrm_401_and_ends_on_the_new_url(backend, monkeypatch):
    lead = open_leads(backend)[0]
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", NEW_SECRET)
    monkeypatch.setenv("AMO_WEBHOOK_SECRET_PREVIOUS", WEBHOOK_SECRET)

    before = move(backend, lead["id"])["deliveries"]  # every delivery so far: amoCRM has only the old URL
    assert secrets_sent_to(before) == [WEBHOOK_SECRET] and before[-1]["status"] == 200

    status, registered = backend.call("POST", "webhook/register")
    assert status == 200 and registered["retired"] == [registered["destination"]]  # same URL, old secret
    after = move(backend, lead["id"])["deliveries"][len(before) :]
    assert secrets_sent_to(after) == [NEW_SECRET] and after[0]["status"] == 200

    # amoCRM's retry of an old delivery, arriving after the previous secret was dropped too early
    monkeypatch.delenv("AMO_WEBHOOK_SECRET_PREVIOUS")
    assert redeliver(backend, before[-1])[0] == 401
