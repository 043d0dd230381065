"""Users (with roles) and roles mirrored from amoCRM; admin-only lists."""

import pytest

from chalicelib import wiring
from chalicelib.models import AmoUser
from chalicelib.services import users
from tests import fixtures
from tests.fixtures import HAL, HOST, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def users_page(items, page, has_next):
    links = {"self": {"href": f"{HOST}/api/v4/users?page={page}&limit=250&with=role"}}
    if has_next:
        links["next"] = {"href": f"{HOST}/api/v4/users?page={page + 1}&limit=250&with=role"}
    return {"_total_items": len(items), "_page": page, "_page_count": 2, "_links": links, "_embedded": {"users": items}}


def test_sync_users_pages_through_and_keeps_the_role(amo):
    store_tokens()
    amo.get(
        f"{HOST}/api/v4/users",
        json=users_page(
            [fixtures.user(1, "Олена Шевченко", (3141, "Manager")), fixtures.user(2, "Иван Петров")], 1, True
        ),
        headers=HAL,
    )
    amo.get(
        f"{HOST}/api/v4/users", json=users_page([fixtures.user(3, "Anna Smith", is_admin=True)], 2, False), headers=HAL
    )

    result = users.sync_users(wiring.amo())

    assert result == {"synced": 3, "errors": []}
    assert AmoUser.get(1).role_id == 3141
    assert "with=role" in amo.calls[0].request.url
    listed = users.get_users(100, None)
    assert [u["name"] for u in listed["data"]] == ["Anna Smith", "Иван Петров", "Олена Шевченко"]


def test_users_no_longer_in_amocrm_are_removed(amo):
    store_tokens()
    AmoUser(id=99, name="Gone").save()
    amo.get(f"{HOST}/api/v4/users", json=users_page([fixtures.user(1, "Kept")], 1, False), headers=HAL)
    users.sync_users(wiring.amo())
    assert [u.id for u in AmoUser.scan()] == [1]
