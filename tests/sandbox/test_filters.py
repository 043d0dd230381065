"""Accounts differ in API filtering (reference §13): enrolled, not enrolled, or range filters
that need both bounds. `filters` in the config picks one."""

import time

import pytest

FUTURE = int(time.time()) + 3600


def ids_of(response, key):
    return [item["id"] for item in response.json()["_embedded"][key]]


@pytest.mark.parametrize("entity", ["leads", "contacts"])
def test_on_filters_by_ids_and_by_a_single_bound(sandbox, api, control, entity):
    assert control("/config", {"filters": "on"}).status_code == 200
    wanted = sorted(getattr(sandbox, entity))[5:7]
    by_id = api("GET", f"/api/v4/{entity}", params=[("filter[id][]", i) for i in wanted])
    assert ids_of(by_id, entity) == wanted
    assert api("GET", f"/api/v4/{entity}", params={"filter[updated_at][from]": FUTURE}).status_code == 204
    assert api("GET", f"/api/v4/{entity}", params={"filter[updated_at][to]": FUTURE}).status_code == 200


@pytest.mark.parametrize("entity", ["leads", "contacts"])
def test_ignored_filters_answer_the_first_page_of_everything(sandbox, api, control, entity):
    control("/config", {"filters": "ignored"})
    wanted = sorted(getattr(sandbox, entity))[5:7]
    by_id = api("GET", f"/api/v4/{entity}", params=[("filter[id][]", i) for i in wanted] + [("limit", 4)])
    assert ids_of(by_id, entity) == sorted(getattr(sandbox, entity))[:4]
    single = api("GET", f"/api/v4/{entity}", params={"filter[id]": wanted[0], "limit": 4})
    assert ids_of(single, entity) == sorted(getattr(sandbox, entity))[:4]
    ranged = api(
        "GET", f"/api/v4/{entity}", params={"filter[updated_at][from]": FUTURE, "filter[updated_at][to]": FUTURE + 10}
    )
    assert ranged.status_code == 200


@pytest.mark.parametrize("entity", ["leads", "contacts"])
def test_range_only_answers_204_to_one_bound_and_filters_with_both(sandbox, api, control, entity):
    control("/config", {"filters": "range-only"})
    assert api("GET", f"/api/v4/{entity}", params={"filter[updated_at][from]": 0}).status_code == 204
    assert api("GET", f"/api/v4/{entity}", params={"filter[updated_at][to]": FUTURE}).status_code == 204
    both = api(
        "GET",
        f"/api/v4/{entity}",
        params={"filter[updated_at][from]": 0, "filter[updated_at][to]": FUTURE, "limit": 250},
    )
    assert both.status_code == 200 and len(both.json()["_embedded"][entity]) == len(getattr(sandbox, entity))
    wanted = sorted(getattr(sandbox, entity))[2:4]
    assert ids_of(api("GET", f"/api/v4/{entity}", params=[("filter[id][]", i) for i in wanted]), entity) == wanted


def test_filters_switch_rejects_an_unknown_mode(control):
    response = control("/config", {"filters": "sometimes"})
    assert response.status_code == 400 and "filters must be one of" in response.json()["detail"]
