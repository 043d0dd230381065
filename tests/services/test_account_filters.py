"""An account that ignores filters (reference §13) is noticed on the first page of an
incremental run, shown in `status`, and read in full at most every few hours, never every run."""

import time

import pytest

from chalicelib import wiring
from chalicelib.amo.filters import ListFilter
from chalicelib.models import SyncState
from chalicelib.services import connection, sync
from chalicelib.services.sync import account_filters
from tests import fixtures
from tests.fixtures import HAL, HOST, lead
from tests.services.test_leads_sync import amo_data, stored

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

__all__ = ["amo_data"]


def lead_list_requests(fake):
    return fake.requests_to("/api/v4/leads")


def last_full_run_hours_ago(hours):
    state = SyncState.get("leads")
    state.last_success_started_at = time.time() - hours * 3600
    state.save()


@pytest.mark.parametrize(
    "updated,expected",
    [(100, False), (200, False), (150, False), (99, True), (201, True)],
)
def test_a_page_is_checked_against_both_bounds(updated, expected):
    where = ListFilter(updated_from=100, updated_to=200)
    items = [{"id": 1, "updated_at": updated}]
    if expected:
        with pytest.raises(account_filters.FiltersIgnored):
            account_filters.check_page(where, items)
    else:
        account_filters.check_page(where, items)
    account_filters.check_page(ListFilter(), items)  # no filter asked: nothing to check


def test_filters_that_work_leave_no_mark(amo_data):
    amo_data.leads = [lead(1, updated_at=int(time.time()) - 30 * 86400)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.leads.append(lead(2, updated_at=int(time.time()) - 5))

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0, incremental=True)

    assert result["synced"] == 1 and not account_filters.ignored()


def test_an_ignored_filter_is_noticed_and_the_full_reread_waits_for_its_interval(amo_data):
    old = int(time.time()) - 30 * 86400
    amo_data.leads = [lead(i, updated_at=old) for i in range(1, 4)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.ignore_filters = True
    amo_data.leads.append(lead(4, updated_at=int(time.time()) - 5))

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0, incremental=True)

    assert result["status"] == "skipped" and result["reason"] == "account ignores filters"
    assert account_filters.ignored()
    requests_before = len(lead_list_requests(amo_data))
    assert sync.sync_leads_from_amo(wiring.amo(), limit=0, incremental=True)["status"] == "skipped"
    assert len(lead_list_requests(amo_data)) == requests_before  # not even one page asked


def test_after_the_interval_an_incremental_run_is_one_unfiltered_full_run(amo_data):
    old = int(time.time()) - 30 * 86400
    amo_data.leads = [lead(i, updated_at=old) for i in range(1, 4)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.ignore_filters = True
    sync.sync_leads_from_amo(wiring.amo(), limit=0, incremental=True)
    amo_data.leads.append(lead(4, updated_at=int(time.time()) - 5))
    last_full_run_hours_ago(account_filters.FULL_SYNC_INTERVAL / 3600 + 0.1)
    amo_data.urls.clear()

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0, incremental=True)

    assert result["synced"] == 4 and stored(4).amo_lead_id == 4
    assert all("updated_at" not in url for url in lead_list_requests(amo_data))
    assert time.time() - SyncState.get("leads").last_success_started_at < 60  # the next one waits again


def test_the_first_incremental_run_on_such_an_account_falls_back_when_no_full_run_is_recent(amo_data):
    amo_data.ignore_filters = True
    old = int(time.time()) - 30 * 86400
    amo_data.leads = [lead(i, updated_at=old) for i in range(1, 3)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    last_full_run_hours_ago(5)
    amo_data.leads.append(lead(3, updated_at=int(time.time()) - 5))

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0, incremental=True)

    assert result["synced"] == 3 and account_filters.ignored()


def test_status_says_the_account_ignores_filters(amo_data, amo):
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    assert "filters" not in connection.get_connection_status(wiring.amo())
    account_filters.record_ignored("contacts by id")

    status = connection.get_connection_status(wiring.amo())

    assert "ignored by this account" in status["filters"] and "every 4 h" in status["filters"]
