"""Digital-pipeline robot webhooks (reference §9.4, §13): a stage change carries only ids, no
timestamps and no other fields, plus account id and subdomain."""

from urllib.parse import parse_qsl

COMPACT_KEYS = {
    "leads[status][0][id]",
    "leads[status][0][status_id]",
    "leads[status][0][pipeline_id]",
    "leads[status][0][old_status_id]",
    "leads[status][0][old_pipeline_id]",
    "account[id]",
    "account[subdomain]",
}


def status_bodies(receiver):
    return [dict(parse_qsl(body)) for _, body, _ in receiver.bodies if "leads%5Bstatus%5D" in body]


def test_trigger_in_compact_format_posts_only_the_stage_ids(sandbox, api, control, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    lead_id = sorted(sandbox.leads)[0]
    old = dict(sandbox.leads[lead_id])
    fired = control(
        "/trigger-webhook", {"entity": "leads", "action": "status", "id": lead_id, "format": "compact"}
    ).json()
    [pairs] = status_bodies(receiver)
    assert set(pairs) == COMPACT_KEYS
    assert pairs["leads[status][0][id]"] == str(lead_id)
    assert pairs["leads[status][0][status_id]"] == str(fired["status_id"])
    assert pairs["leads[status][0][old_status_id]"] == str(old["status_id"])
    assert (
        pairs["leads[status][0][old_pipeline_id]"] == pairs["leads[status][0][pipeline_id]"] == str(old["pipeline_id"])
    )
    assert pairs["account[subdomain]"] == "sandbox"
    assert fired["deliveries"][-1]["format"] == "compact"


def test_compact_config_sends_each_stage_change_in_its_own_body(sandbox, api, control, receiver):
    control("/config", {"webhook_format": "compact"})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead", "update_lead"]})
    lead_ids = [i for i in sorted(sandbox.leads) if sandbox.leads[i]["status_id"] != 142][:2]
    api("PATCH", "/api/v4/leads", json=[{"id": i, "status_id": 142} for i in lead_ids])
    sandbox.dispatcher.flush()
    bodies = status_bodies(receiver)
    assert sorted(int(b["leads[status][0][id]"]) for b in bodies) == lead_ids
    assert all(set(b) == COMPACT_KEYS for b in bodies)
    updates = [dict(parse_qsl(body)) for _, body, _ in receiver.bodies if "leads%5Bupdate%5D" in body]
    assert updates and "leads[update][0][last_modified]" in updates[0]  # other events stay full


def test_full_format_stays_the_default(sandbox, api, control, receiver):
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    [pairs] = status_bodies(receiver)
    assert "leads[status][0][updated_at]" in pairs and "account[_links][self]" in pairs


def test_trigger_format_is_checked(control):
    assert control("/trigger-webhook", {"entity": "leads", "action": "status", "format": "tiny"}).status_code == 400
    assert control("/trigger-webhook", {"entity": "leads", "action": "update", "format": "compact"}).status_code == 400


def test_compact_root_lead_sends_the_robots_body_under_lead(sandbox, api, control, receiver):
    """Kommo's robot page names the root `lead` (reference §9.4): a consumer must accept both."""
    assert control("/config", {"compact_root": "lead"}).status_code == 200
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    fired = control("/trigger-webhook", {"entity": "leads", "action": "status", "format": "compact"}).json()
    pairs = dict(receiver.pairs())
    assert set(pairs) == {key.replace("leads[", "lead[", 1) for key in COMPACT_KEYS}
    assert pairs["lead[status][0][id]"] == str(fired["id"])


def test_compact_root_leaves_full_webhooks_under_leads(sandbox, api, control, receiver):
    control("/config", {"compact_root": "lead"})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    control("/trigger-webhook", {"entity": "leads", "action": "status"})
    assert "leads[status][0][id]" in dict(receiver.pairs())
    assert control("/config", {"compact_root": "deals"}).status_code == 400


def test_status_webhooks_can_come_without_pipeline_id(sandbox, api, control, receiver):
    """The official `leads[status]` example carries no pipeline_id (reference §9.3)."""
    assert control("/config", method="GET").json()["status_webhook_pipeline_id"] is True
    control("/config", {"status_webhook_pipeline_id": False})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead", "update_lead"]})
    lead_id = sorted(sandbox.leads)[0]
    control("/trigger-webhook", {"entity": "leads", "action": "status", "id": lead_id})
    pairs = dict(receiver.pairs())
    assert "leads[status][0][pipeline_id]" not in pairs
    assert pairs["leads[status][0][status_id]"] and pairs["leads[status][0][old_status_id]"]
    assert "leads[update][0][pipeline_id]" in pairs  # other events keep it


def test_without_pipeline_id_a_pipeline_change_still_says_the_old_pipeline(sandbox, api, control, receiver):
    control("/config", {"status_webhook_pipeline_id": False})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    lead_id = sorted(sandbox.leads)[0]
    old = sandbox.leads[lead_id]["pipeline_id"]
    other = next(p for p in sandbox.pipelines if p != old)
    control("/trigger-webhook", {"entity": "leads", "action": "status", "id": lead_id, "pipeline_id": other})
    pairs = dict(receiver.pairs())
    assert "leads[status][0][pipeline_id]" not in pairs and pairs["leads[status][0][old_pipeline_id]"] == str(old)


def test_the_robots_format_keeps_pipeline_id_whatever_the_switch(sandbox, api, control, receiver):
    control("/config", {"status_webhook_pipeline_id": False})
    api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    control("/trigger-webhook", {"entity": "leads", "action": "status", "format": "compact"})
    assert set(dict(receiver.pairs())) == COMPACT_KEYS
