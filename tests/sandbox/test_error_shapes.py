"""Accounts answer invalid writes in different 400 shapes (reference §3.5, §13), and a missing
single entity with 204 or 404 (§5.2): `error_shape` and `missing_entity_status` pick them."""

import pytest


def test_validation_errors_stay_the_default(api):
    body = api("POST", "/api/v4/tasks", json=[{"text": "t"}]).json()
    assert body["validation-errors"][0]["errors"][0]["path"] == "complete_till"
    assert body["detail"] == "Request validation failed"


def test_errors_map_is_keyed_by_the_entity_id(sandbox, api, control):
    control("/config", {"error_shape": "errors-map"})
    lead_id = sorted(sandbox.leads)[0]
    response = api("PATCH", "/api/v4/leads", json=[{"id": lead_id, "price": "много"}])
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "Invalid request body" and body["status"] == 400
    assert body["errors"] == {str(lead_id): "price: This value should be of type int."}
    assert "validation-errors" not in body


def test_errors_map_keys_new_entities_by_request_id(api, control):
    control("/config", {"error_shape": "errors-map"})
    body = api("POST", "/api/v4/contacts", json=[{"name": 5, "request_id": "c1"}]).json()
    assert body["errors"] == {"c1": "name: This value should be of type string."}


def test_errors_array_lists_every_error_with_total_items_zero(sandbox, api, control):
    control("/config", {"error_shape": "errors-array"})
    body = api("PATCH", "/api/v4/leads", json=[{"id": 1, "name": "x"}]).json()
    assert body == {
        "_total_items": 0,
        "errors": [{"title": "Entity not found", "status": 400, "detail": "id: Lead not found"}],
    }
    tasks = api("POST", "/api/v4/tasks", json=[{"complete_till": 1}]).json()
    assert tasks["errors"][0]["detail"] == "text: This field is missing."


@pytest.mark.parametrize("path", ["/api/v4/leads/1", "/api/v4/contacts/1", "/api/v4/tasks/1"])
def test_missing_entity_is_204_by_default_and_404_when_switched(api, control, path):
    assert api("GET", path).status_code == 204
    control("/config", {"missing_entity_status": 404})
    response = api("GET", path)
    assert response.status_code == 404
    assert response.json()["title"] == "Not Found"


def test_missing_entity_status_takes_only_204_or_404(control):
    assert control("/config", {"missing_entity_status": 410}).status_code == 400
    assert control("/config", {"error_shape": "xml"}).status_code == 400
