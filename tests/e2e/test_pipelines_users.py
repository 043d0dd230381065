"""Pipelines, stage mapping, users and roles, read from the sandbox's account."""

SEEDED_STAGES = 14  # 2 pipelines × 7 stages


def test_pipelines_are_mirrored_mapped_by_hand_and_the_rest_auto_applied(backend):
    status, synced = backend.call("POST", "sync-pipelines")
    assert status == 200 and synced["synced"] == 2 and synced["errors"] == []

    _, listed = backend.call("GET", "pipelines")
    assert [p["name"] for p in listed["data"]] == ["Воронка", "Sales"] and listed["count"] == 2
    sales = listed["data"][1]["id"]
    assert isinstance(sales, int)
    _, stages = backend.call("GET", f"pipelines/{sales}/stages")
    names = [s["name"] for s in stages["data"]]
    assert names[0] == "Incoming leads" and names[-2:] == ["Closed - won", "Closed - lost"]

    negotiation = next(s for s in stages["data"] if s["name"] == "Negotiation")
    status, mapped = backend.call("PUT", f"stages/{negotiation['id']}/mapping", {"mappedStatus": "CLOSED"})
    assert status == 200
    assert (mapped["data"]["mapped_status"], mapped["data"]["mapping_source"]) == ("CLOSED", "manual")

    _, suggestions = backend.call("GET", "mapping/suggestions")
    assert suggestions["count"] == SEEDED_STAGES
    assert set(suggestions["data"][0]) >= {
        "stageId",
        "pipelineId",
        "stageName",
        "currentStatus",
        "suggestedStatus",
        "confidence",
    }
    by_name = {(s["pipelineId"], s["stageName"]): s for s in suggestions["data"]}
    assert by_name[(sales, "Decision making")]["suggestedStatus"] == "IN_PROGRESS"
    assert by_name[(sales, "Closed - lost")]["suggestedStatus"] == "CLOSED"

    _, applied = backend.call("POST", "mapping/auto-apply")
    assert applied["applied"] == SEEDED_STAGES - 1 and applied["errors"] == []  # all but the manual one
    _, stages = backend.call("GET", f"pipelines/{sales}/stages")
    assert all(s["mapped_status"] for s in stages["data"])
    negotiation = next(s for s in stages["data"] if s["name"] == "Negotiation")
    assert (negotiation["mapped_status"], negotiation["mapping_source"]) == ("CLOSED", "manual")
    assert backend.call("POST", "mapping/auto-apply")[1]["applied"] == 0  # nothing left unmapped

    _, again = backend.call("POST", "sync-pipelines")
    assert again["stagesWritten"] == 0  # nothing changed in amoCRM, nothing written


def test_users_and_roles_are_mirrored(backend):
    status, result = backend.call("POST", "sync-users")
    assert status == 200 and result == {"synced": 5, "errors": []}
    _, listed = backend.call("GET", "users")
    assert listed["count"] == 5 and all(u["email"] for u in listed["data"])
    assert [u["name"] for u in listed["data"]] == sorted(u["name"] for u in listed["data"])
    assert any(u["role_id"] for u in listed["data"])

    status, roles = backend.call("POST", "sync-roles")
    assert status == 200 and roles == {"synced": 3, "errors": []}
    _, listed = backend.call("GET", "roles")
    assert sorted(r["name"] for r in listed["data"]) == ["Manager", "Администратор", "Менеджер"]


def test_a_users_sync_by_a_non_admin_reports_the_reason_and_keeps_the_users(backend):
    backend.call("POST", "sync-users")
    backend.sandbox("POST", "/_sandbox/config", {"non_admin": True})
    try:
        status, result = backend.call("POST", "sync-users")
    finally:
        backend.sandbox("POST", "/_sandbox/config", {"non_admin": False})

    assert status == 200 and result["synced"] == 0
    assert "not an account administrator" in result["errors"][0]["message"]
    assert backend.call("GET", "users")[1]["count"] == 5
