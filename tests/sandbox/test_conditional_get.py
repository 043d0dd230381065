"""`If-Modified-Since` on single-entity GETs (Kommo's limitations page recommends it, reference
§3.1, §13): 304 with no body while the entity is unchanged."""

from email.utils import formatdate

import pytest

ENTITIES = [("leads", "leads"), ("contacts", "contacts"), ("tasks", "tasks")]


@pytest.mark.parametrize("path, table", ENTITIES)
def test_unchanged_entity_answers_304_without_a_body(sandbox, api, path, table):
    entity_id = sorted(getattr(sandbox, table))[0]
    updated_at = getattr(sandbox, table)[entity_id]["updated_at"]
    for since in (updated_at, updated_at + 60):
        response = api(
            "GET", f"/api/v4/{path}/{entity_id}", headers={"If-Modified-Since": formatdate(since, usegmt=True)}
        )
        assert response.status_code == 304 and response.content == b""


@pytest.mark.parametrize("path, table", ENTITIES)
def test_entity_changed_after_the_date_answers_200(sandbox, api, path, table):
    entity_id = sorted(getattr(sandbox, table))[0]
    updated_at = getattr(sandbox, table)[entity_id]["updated_at"]
    response = api(
        "GET", f"/api/v4/{path}/{entity_id}", headers={"If-Modified-Since": formatdate(updated_at - 1, usegmt=True)}
    )
    assert response.status_code == 200 and response.json()["id"] == entity_id


def test_a_change_after_a_304_answers_200_again(sandbox, api, control):
    lead_id = sorted(sandbox.leads)[0]
    since = {"If-Modified-Since": formatdate(sandbox.leads[lead_id]["updated_at"], usegmt=True)}
    assert api("GET", f"/api/v4/leads/{lead_id}", headers=since).status_code == 304
    control("/trigger-webhook", {"entity": "leads", "action": "update", "id": lead_id})
    assert api("GET", f"/api/v4/leads/{lead_id}", headers=since).status_code == 200


def test_an_unreadable_date_is_ignored(sandbox, api):
    lead_id = sorted(sandbox.leads)[0]
    assert api("GET", f"/api/v4/leads/{lead_id}", headers={"If-Modified-Since": "yesterday"}).status_code == 200
