"""Pages as amoCRM serves them (reference §3.3, §5.1, §13): a `limit` above the maximum is
served as 50 without an error, HAL links repeat the query with only `page` changed, lists can be
ordered, and `edit_between_pages` moves leads under an offset-paged reader."""

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from sandbox import seed


@pytest.fixture
def many(sandbox, control):
    control("/seed", {"leads": 120, "contacts": 12, "tasks": 10})
    return sandbox


def query_of(href):
    return parse_qsl(urlsplit(href).query)


def test_a_limit_above_250_is_served_as_50_without_an_error(many, api):
    for limit in (251, 1000):
        response = api("GET", "/api/v4/leads", params={"limit": limit})
        assert response.status_code == 200 and len(response.json()["_embedded"]["leads"]) == 50
    assert len(api("GET", "/api/v4/leads", params={"limit": 250}).json()["_embedded"]["leads"]) == 120


def test_oversized_limit_reject_restores_the_400(many, api, control):
    assert control("/config", {"oversized_limit": "reject"}).status_code == 200
    assert api("GET", "/api/v4/leads", params={"limit": 251}).status_code == 400
    assert control("/config", {"oversized_limit": "clamp"}).status_code == 400


def test_next_and_prev_keep_filters_limit_and_with_and_change_only_page(many, api, token):
    params = [
        ("filter[pipeline_id]", str(next(iter(many.pipelines)))),
        ("filter[updated_at][from]", "0"),
        ("with", "contacts"),
        ("order[id]", "desc"),
        ("limit", "10"),
        ("page", "2"),
    ]
    body = api("GET", "/api/v4/leads", params=params).json()
    asked = [pair for pair in params if pair[0] != "page"]
    for name, page in (("self", "2"), ("next", "3"), ("prev", "1")):
        got = query_of(body["_links"][name]["href"])
        assert [pair for pair in got if pair[0] != "page"] == asked
        assert dict(got)["page"] == page
    assert "filter[pipeline_id]=" in body["_links"]["next"]["href"]  # brackets as amoCRM writes them
    following = requests.get(
        body["_links"]["next"]["href"], headers={"Authorization": f"Bearer {token['access_token']}"}
    ).json()
    assert all(lead["pipeline_id"] == int(params[0][1]) for lead in following["_embedded"]["leads"])
    assert "contacts" in following["_embedded"]["leads"][0]["_embedded"]


@pytest.mark.parametrize("entity", ["leads", "contacts"])
@pytest.mark.parametrize("key", ["updated_at", "created_at", "id"])
def test_lists_can_be_ordered(many, api, entity, key):
    for direction in ("asc", "desc"):
        items = api("GET", f"/api/v4/{entity}", params={f"order[{key}]": direction, "limit": 250}).json()
        pairs = [(item[key], item["id"]) for item in items["_embedded"][entity]]
        assert pairs == sorted(pairs, reverse=direction == "desc")
    assert api("GET", f"/api/v4/{entity}", params={f"order[{key}]": "sideways"}).status_code == 400


def test_edit_between_pages_makes_an_offset_reader_skip_leads(many, api, control):
    """An incremental reader with a fixed window pages by offset; leads edited after page 1 leave
    the window and every later lead moves back: the reader never sees some of them."""
    assert control("/config", {"edit_between_pages": 3}).json()["edit_between_pages"] == 3
    window = {"filter[updated_at][from]": 0, "filter[updated_at][to]": seed.BASE_TIME + 10**6, "limit": 50}
    seen, page = [], 1
    while (response := api("GET", "/api/v4/leads", params={**window, "page": page})).status_code == 200:
        seen += [lead["id"] for lead in response.json()["_embedded"]["leads"]]
        page += 1
    edited = seen[:3]
    assert all(many.leads[i]["updated_at"] > seed.BASE_TIME + 10**6 for i in edited)
    missed = set(many.leads) - set(seen)
    assert len(missed) == 3  # leads 51–53 slid onto page 1 after it was read
    assert (
        api("GET", "/api/v4/leads", params={"order[updated_at]": "desc", "limit": 3}).json()["_embedded"]["leads"][0][
            "id"
        ]
        in edited
    )


def test_edit_between_pages_is_off_by_default(many, api):
    before = {i: lead["updated_at"] for i, lead in many.leads.items()}
    api("GET", "/api/v4/leads")
    assert {i: lead["updated_at"] for i, lead in many.leads.items()} == before
