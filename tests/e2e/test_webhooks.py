"""Webhooks end to end: registration points the sandbox at the service; a stage change in
the sandbox reaches the (stand-in) Main Backend as exactly one notification."""
import pytest

pytestmark = pytest.mark.e2e


def test_registration_is_idempotent_and_hides_the_secret(service):
    status, first = service.call("POST", "webhook/register")
    assert status == 200 and first["destination"].endswith("/integrations/amo-crm/webhook?secret=***")
    status, second = service.call("POST", "webhook/register")
    assert second["message"] == "webhook already registered"


def test_a_stage_change_in_amocrm_reaches_the_main_backend_once(service):
    service.call("POST", "webhook/register")
    service.call("POST", "sync-pipelines")
    service.call("POST", "mapping/auto-apply", {"minConfidence": 0})
    service.call("POST", "sync-leads?limit=0")
    service.sandbox("POST", "/_sandbox/main-backend/config", {"clear": True})
    leads = service.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]
    target = next(l for l in leads if l["status_id"] not in (142, 143))

    _, fired = service.sandbox("POST", "/_sandbox/trigger-webhook",
                               {"entity": "leads", "action": "status", "id": target["id"], "status_id": 142})

    assert fired["deliveries"][-1]["status"] == 200
    body = fired["deliveries"][-1]["body"]
    assert "leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142" in body
    _, received = service.sandbox("GET", "/_sandbox/main-backend/notifications")
    mine = [n for n in received["notifications"] if n["body"]["amoLeadId"] == target["id"]]
    assert len(mine) == 1  # the lead was NEW or IN_PROGRESS before, so its status changed
    note = mine[0]
    assert note["body"]["status"] == "CLOSED" and note["body"]["stageId"] == 142
    assert note["body"]["previousStatus"] in ("NEW", "IN_PROGRESS")
    assert note["headers"]["idempotency-key"] == note["body"]["eventId"]
    assert note["headers"]["x-api-key"] == service.stack.api_key
    _, lead = service.call("GET", f"leads/{target['id']}")
    assert lead["status"] == "CLOSED" and lead["amo_status_id"] == 142


def test_a_repeated_delivery_does_not_notify_twice(service):
    service.call("POST", "webhook/register")
    service.sandbox("POST", "/_sandbox/main-backend/config", {"clear": True})
    service.call("POST", "sync-leads?limit=0")
    leads = service.sandbox("GET", "/_sandbox/export/leads")[1]["leads"]
    target = [l for l in leads if l["status_id"] not in (142, 143)][-1]
    _, fired = service.sandbox("POST", "/_sandbox/trigger-webhook",
                               {"entity": "leads", "action": "status", "id": target["id"], "status_id": 143})
    body = fired["deliveries"][-1]["body"]
    import urllib.request
    request = urllib.request.Request(fired["deliveries"][-1]["destination"], data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    _, received = service.sandbox("GET", "/_sandbox/main-backend/notifications")
    assert [n["body"]["amoLeadId"] for n in received["notifications"]].count(target["id"]) == 1


def test_a_webhook_without_the_secret_is_refused(service):
    import urllib.error
    import urllib.request
    request = urllib.request.Request(f"{service.stack.api_url}/webhook", data=b"leads[delete][0][id]=1",
                                     method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
