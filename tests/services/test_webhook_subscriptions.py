"""Webhook subscriptions in amoCRM (reference §9.6, §13): every event we handle is subscribed,
a subscription amoCRM disabled is noticed and enabled again, and `status` shows it."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib import wiring
from chalicelib.services import admin, webhooks
from tests.fixtures import HAL, HOST, PROBLEM, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

URL = "https://api.example.com/api/integrations/amo-crm/webhook"
DESTINATION = f"{URL}?secret=test-webhook-secret"  # as subscribed: with the webhook secret


class AmoWebhooks:
    """amoCRM's `/api/v4/webhooks` for one account: GET (204 when none), POST, DELETE by destination."""

    def __init__(self, mock, repost_reenables=True):
        self.hooks: dict[str, dict] = {}
        self.repost_reenables = repost_reenables
        self.sent: list[str] = []
        pattern = re.compile(rf"{re.escape(HOST)}/api/v4/webhooks(\?.*)?$")
        for method in ("GET", "POST", "DELETE"):
            mock.add_callback(method, pattern, getattr(self, method.lower()))

    def get(self, request):
        self.sent.append("GET")
        wanted = parse_qs(urlsplit(request.url).query).get("filter[destination]")
        found = [h for h in self.hooks.values() if not wanted or h["destination"] == wanted[0]]
        if not found:
            return 204, {}, ""
        body = {"_total_items": len(found), "_embedded": {"webhooks": found}}
        return 200, HAL, json.dumps(body)

    def post(self, request):
        self.sent.append("POST")
        body = json.loads(request.body)
        old = self.hooks.get(body["destination"])
        disabled = bool(old and old["disabled"] and not self.repost_reenables)
        self.hooks[body["destination"]] = {
            "id": 839656,
            "destination": body["destination"],
            "created_at": 1575539157,
            "updated_at": 1575539157,
            "account_id": 30896271,
            "created_by": 8375357,
            "sort": body.get("sort", 10),
            "disabled": disabled,
            "settings": body["settings"],
        }
        return 200, HAL, json.dumps(self.hooks[body["destination"]])

    def delete(self, request):
        self.sent.append("DELETE")
        self.hooks.pop(json.loads(request.body)["destination"], None)
        return 204, {}, ""


@pytest.fixture
def hooks(amo):
    store_tokens()
    return AmoWebhooks(amo)


def test_restore_and_responsible_lead_are_subscribed():
    assert {"restore_lead", "responsible_lead"} <= set(webhooks.SUBSCRIBED_EVENTS)


def test_a_disabled_subscription_is_enabled_again_by_a_repost(hooks):
    webhooks.register(wiring.amo(), url=URL, own_url=URL)
    hooks.hooks[DESTINATION]["disabled"] = True
    hooks.sent.clear()

    result = webhooks.register(wiring.amo(), url=URL, own_url=URL)

    assert result["reenabled"] is True and "re-enabled" in result["message"]
    assert hooks.hooks[DESTINATION]["disabled"] is False
    assert hooks.sent == ["GET", "POST", "GET", "GET"]  # the last: subscriptions with an old secret


def test_when_a_repost_leaves_it_disabled_it_is_deleted_and_created_anew(hooks):
    webhooks.register(wiring.amo(), url=URL, own_url=URL)
    hooks.hooks[DESTINATION]["disabled"] = True
    hooks.repost_reenables = False
    hooks.sent.clear()

    result = webhooks.register(wiring.amo(), url=URL, own_url=URL)

    assert result["reenabled"] is True
    assert hooks.sent == ["GET", "POST", "GET", "DELETE", "POST", "GET", "GET"]
    assert (
        hooks.hooks[DESTINATION]["disabled"] is False
        and hooks.hooks[DESTINATION]["settings"] == webhooks.SUBSCRIBED_EVENTS
    )


def test_an_enabled_complete_subscription_is_left_alone(hooks):
    webhooks.register(wiring.amo(), url=URL, own_url=URL)
    hooks.sent.clear()
    assert webhooks.register(wiring.amo(), url=URL, own_url=URL)["message"] == "webhook already registered"
    assert hooks.sent == ["GET", "GET"]


def test_status_shows_a_disabled_subscription_and_missing_events(hooks, monkeypatch):
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "s3cr3t")
    destination = f"{URL}?secret=s3cr3t"
    hooks.hooks[destination] = {"destination": destination, "disabled": True, "settings": ["add_lead"]}
    hooks.hooks["https://other.example.com/x"] = {"destination": "https://other.example.com/x", "disabled": True}

    shown = webhooks.subscription_status(wiring.amo())

    assert shown["webhooks"] == [
        {
            "destination": f"{URL}?secret=***",
            "disabled": True,
            "missingEvents": sorted(set(webhooks.SUBSCRIBED_EVENTS) - {"add_lead"}),
        }
    ]
    assert "re-enables" in shown["webhookWarning"]
    assert "s3cr3t" not in json.dumps(shown)


def test_status_without_admin_rights_or_plan_says_registration_is_manual(amo):
    store_tokens()
    amo.get(f"{HOST}/api/v4/webhooks", status=403, json={"title": "Forbidden", "status": 403}, headers=PROBLEM)
    shown = webhooks.subscription_status(wiring.amo())
    assert shown["registration"] == "manual" and "Advanced or Enterprise plan" in shown["webhooks"]


def test_status_on_another_amocrm_failure_says_the_subscription_is_unknown(amo):
    store_tokens()
    amo.get(f"{HOST}/api/v4/webhooks", status=400, json={"title": "Bad Request", "status": 400}, headers=PROBLEM)
    assert webhooks.subscription_status(wiring.amo()) == {"webhooks": "unknown (AmoValidationError)"}


def test_the_cli_status_report_carries_the_subscription(hooks, amo):
    from tests import fixtures

    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    webhooks.register(wiring.amo(), url=URL, own_url=URL)
    hooks.hooks[DESTINATION]["disabled"] = True

    report = admin.status(wiring.amo)

    assert report["connection"]["webhooks"][0]["disabled"] is True


def test_a_rotation_registers_the_new_secret_and_deletes_the_old_subscription(hooks, monkeypatch):
    webhooks.register(wiring.amo(), url=URL, own_url=URL)  # subscribed with the old secret
    hooks.hooks["https://other.example.com/hook?secret=x"] = {"destination": "https://other.example.com/hook?secret=x"}
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "new-secret")
    monkeypatch.setenv("AMO_WEBHOOK_SECRET_PREVIOUS", "test-webhook-secret")

    result = webhooks.register(wiring.amo(), url=URL, own_url=URL)

    assert set(hooks.hooks) == {f"{URL}?secret=new-secret", "https://other.example.com/hook?secret=x"}
    assert result["message"] == "webhook registered" and result["retired"] == [f"{URL}?secret=***"]
    assert "new-secret" not in json.dumps(result) and "test-webhook-secret" not in json.dumps(result)
    assert hooks.sent[-4:] == ["GET", "POST", "GET", "DELETE"]  # the new one first, then the old one goes


@pytest.mark.parametrize("status", [402, 403])
def test_on_a_plan_without_the_webhooks_api_register_answers_the_manual_steps(amo, monkeypatch, status):
    store_tokens()
    refused = {"title": "Payment Required", "status": status, "detail": "not available on this plan"}
    for method in ("GET", "POST", "DELETE"):
        amo.add(method, re.compile(rf"{re.escape(HOST)}/api/v4/webhooks(\?.*)?$"), status=status, json=refused)
    amo.get(re.compile(rf"{re.escape(HOST)}/api/v4/leads(\?.*)?$"), status=204)  # the account itself is paid

    result = webhooks.register(wiring.amo(), url=URL, own_url=URL)

    assert result["registration"] == "manual" and "Advanced or Enterprise plan" in result["message"]
    assert result["destination"] == f"{URL}?secret=<AMO_WEBHOOK_SECRET>"
    steps = " ".join(result["steps"])
    assert "Settings → Integrations" in steps and "Web hooks" in steps
    assert "Lead: stage changed (status_lead)" in steps and "Task: deleted (delete_task)" in steps
    assert all(webhook_manual_label in steps for webhook_manual_label in webhooks.SUBSCRIBED_EVENTS)
    assert "test-webhook-secret" not in json.dumps(result)
    removed = webhooks.unregister(wiring.amo(), URL, URL)
    assert removed["registration"] == "manual" and "Delete the webhook" in " ".join(removed["steps"])
    assert webhooks.subscription_status(wiring.amo())["registration"] == "manual"


def test_the_cli_prints_the_manual_steps_one_per_line(amo, monkeypatch, capsys):
    from chalicelib import cli

    store_tokens()
    monkeypatch.setenv("WEBHOOK_PUBLIC_URL", URL)
    hooks_api = re.compile(rf"{re.escape(HOST)}/api/v4/webhooks(\?.*)?$")
    amo.get(hooks_api, status=403, json={"status": 403}, headers=PROBLEM)

    assert cli.main(["register-webhook"]) == 0

    printed = capsys.readouterr().out
    assert "register the webhook by hand" in printed and "\n  1. Sign in to amoCRM" in printed
    assert "test-webhook-secret" not in printed
