"""Subscriptions get disabled the way amoCRM disables them (reference §9.5, §13), can be
re-enabled by a re-POST where the account allows it, and carry restore/responsible lead events."""

from urllib.parse import parse_qsl


def hook(api, receiver):
    return api("GET", "/api/v4/webhooks", params={"filter[destination]": receiver.url}).json()["_embedded"]["webhooks"][
        0
    ]


def fire(control, count=1):
    for _ in range(count):
        control("/trigger-webhook", {"entity": "leads", "action": "status"})


def test_a_hook_with_more_invalid_answers_than_allowed_is_disabled_and_gets_nothing(api, control, receiver):
    control("/config", {"webhook_disable_after": 3})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    receiver.status = 500
    fire(control, 3)
    assert hook(api, receiver)["disabled"] is False  # 3 invalid answers are not more than 3
    fire(control)
    assert hook(api, receiver)["disabled"] is True
    received = len(receiver.bodies)
    fire(control)
    assert len(receiver.bodies) == received


def test_a_slow_answer_is_invalid_even_with_status_200(api, control, receiver):
    control("/config", {"webhook_disable_after": 1, "webhook_timeout": 0.2})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    receiver.delay = 0.4
    fire(control, 2)
    deliveries = control("/webhook-deliveries", method="GET").json()["deliveries"]
    assert [(d["status"], d["valid"]) for d in deliveries[-2:]] == [(200, False), (200, False)]
    assert hook(api, receiver)["disabled"] is True


def test_disable_control_stops_deliveries_at_once(api, control, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    disabled = control("/webhooks/disable", {"destination": receiver.url})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    fire(control)
    assert receiver.bodies == []
    assert control("/webhooks/disable", {"destination": "http://127.0.0.1:9/none"}).status_code == 404


def test_repost_reenables_a_disabled_hook_by_default(api, control, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    control("/webhooks/disable", {"destination": receiver.url})
    reposted = api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    assert reposted.json()["disabled"] is False
    fire(control)
    assert len(receiver.bodies) == 1


def test_without_repost_reenables_only_delete_and_post_bring_it_back(api, control, receiver):
    control("/config", {"repost_reenables": False})
    first = api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]}).json()
    control("/webhooks/disable", {"destination": receiver.url})
    reposted = api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    assert reposted.json()["disabled"] is True
    fire(control)
    assert receiver.bodies == []
    api("DELETE", "/api/v4/webhooks", json={"destination": receiver.url})
    recreated = api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]}).json()
    assert recreated["disabled"] is False and recreated["id"] != first["id"]
    fire(control)
    assert len(receiver.bodies) == 1


def test_restore_and_responsible_reach_only_hooks_that_asked_for_them(sandbox, api, control, receiver, other_receiver):
    api(
        "POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["restore_lead", "responsible_lead"]}
    )
    api("POST", "/api/v4/webhooks", json={"destination": other_receiver.url, "settings": ["update_lead"]})
    lead_id = sorted(sandbox.leads)[3]
    control("/trigger-webhook", {"entity": "leads", "action": "delete", "id": lead_id})
    restored = control("/trigger-webhook", {"entity": "leads", "action": "restore"}).json()
    assert restored["id"] == lead_id
    assert api("GET", f"/api/v4/leads/{lead_id}").status_code == 200
    assert dict(receiver.pairs())["leads[restore][0][id]"] == str(lead_id)
    assert other_receiver.bodies == []

    moved = control("/trigger-webhook", {"entity": "leads", "action": "responsible", "id": lead_id}).json()
    pairs = dict(receiver.pairs())
    assert pairs["leads[responsible][0][responsible_user_id]"] == str(moved["responsible_user_id"])
    assert pairs["leads[responsible][0][old_responsible_user_id]"] == str(moved["old_responsible_user_id"])
    assert not any(key.startswith("leads[update]") for key in pairs)
    other = dict(parse_qsl(other_receiver.bodies[-1][1]))
    assert other["leads[update][0][responsible_user_id]"] == str(moved["responsible_user_id"])
    assert not any(key.startswith("leads[responsible]") for key in other)


def test_restore_needs_a_deleted_lead(sandbox, control):
    assert control("/trigger-webhook", {"entity": "leads", "action": "restore"}).status_code == 404
    live = sorted(sandbox.leads)[0]
    assert control("/trigger-webhook", {"entity": "leads", "action": "restore", "id": live}).status_code == 400


def test_a_disabled_subscription_gets_nothing_even_as_the_catch_all_webhook_url(api, control, receiver):
    control("/config", {"webhook_url": receiver.url})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    control("/webhooks/disable", {"destination": receiver.url})
    fire(control)
    assert receiver.bodies == []
