"""Pipelines, mapping, users and roles against the sandbox over HTTP."""
import pytest

pytestmark = pytest.mark.e2e


def test_sync_pipelines_then_map_and_auto_apply(service):
    status, synced = service.call("POST", "sync-pipelines")
    assert status == 200 and synced["synced"] == 2 and synced["errors"] == []

    _, listed = service.call("GET", "pipelines")
    assert [p["name"] for p in listed["data"]] == ["Воронка", "Sales"]
    sales = listed["data"][1]["id"]
    _, stages = service.call("GET", f"pipelines/{sales}/stages")
    names = [s["name"] for s in stages["data"]]
    assert names[0] == "Incoming leads" and names[-2:] == ["Closed - won", "Closed - lost"]

    negotiation = next(s for s in stages["data"] if s["name"] == "Negotiation")
    status, mapped = service.call("PUT", f"stages/{negotiation['id']}/mapping", {"mappedStatus": "CLOSED"})
    assert status == 200 and mapped["data"]["mapping_source"] == "manual"

    _, suggestions = service.call("GET", "mapping/suggestions")
    by_name = {(s["pipelineId"], s["stageName"]): s for s in suggestions["data"]}
    assert by_name[(sales, "Decision making")]["suggestedStatus"] == "IN_PROGRESS"

    _, applied = service.call("POST", "mapping/auto-apply", {"minConfidence": 0})
    assert applied["errors"] == []
    _, stages = service.call("GET", f"pipelines/{sales}/stages")
    assert all(s["mapped_status"] for s in stages["data"])
    negotiation = next(s for s in stages["data"] if s["name"] == "Negotiation")
    assert negotiation["mapped_status"] == "CLOSED"  # the manual mapping survived
    assert negotiation["mapping_source"] == "manual"

    status, again = service.call("POST", "sync-pipelines")
    assert again["stagesWritten"] == 0


def test_sync_users_and_roles(service):
    status, result = service.call("POST", "sync-users")
    assert status == 200 and result == {"synced": 5, "errors": []}
    _, listed = service.call("GET", "users")
    assert listed["count"] == 5 and all(u["email"] for u in listed["data"])
    assert any(u["role_id"] for u in listed["data"])
    _, roles = service.call("POST", "sync-roles")
    assert roles["synced"] == 3


def test_non_admin_users_sync_reports_the_reason(service):
    service.sandbox("POST", "/_sandbox/config", {"non_admin": True})
    try:
        status, result = service.call("POST", "sync-users")
    finally:
        service.sandbox("POST", "/_sandbox/config", {"non_admin": False})
    assert status == 200 and result["synced"] == 0
    assert "administrator" in result["errors"][0]["message"]
