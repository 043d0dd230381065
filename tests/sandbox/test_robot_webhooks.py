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
