"""An account that ignores filters (reference §13) is noticed on the first page of an
incremental run, shown in `status`, and read in full at most every few hours, never every run."""

import time

import pytest

from chalicelib import wiring
from chalicelib.amo.filters import ListFilter
from chalicelib.models import Lead, SyncState
from chalicelib.services import connection, guests, sync
from chalicelib.services.sync import account_filters
from tests import fixtures
from tests.fixtures import HAL, HOST, contact, lead
from tests.services.test_leads_sync import amo_data, stored

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

__all__ = ["amo_data"]


def lead_list_requests(fake):
    return fake.requests_to("/api/v4/leads")


def last_full_run_hours_ago(hours):
    state = SyncState.get("leads")
    state.last_success_started_at = state.cursor = time.time() - hours * 3600  # on both clocks (no skew here)
    state.save()


def incremental():
    return sync.sync_leads_from_amo(wiring.amo(), limit=0, incremental=True)


def marked_account(amo_data):
    """A synced account whose filters are ignored, seen by two incremental runs: marked."""
    old = int(time.time()) - 30 * 86400
    amo_data.leads = [lead(i, updated_at=old) for i in range(1, 4)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.ignore_filters = True
    incremental()
    incremental()
    assert account_filters.ignored()


@pytest.mark.parametrize(
    "updated,expected",
    [(100, False), (200, False), (150, False), (205, False), (99, True), (206, True)],
)
def test_a_page_is_checked_against_both_bounds_with_a_few_seconds_past_to_tolerated(updated, expected):
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

    result = incremental()

    assert result["synced"] == 1 and account_filters.current() == {}


def test_one_run_that_sees_a_filter_ignored_does_not_mark_the_account_a_second_run_does(amo_data):
    old = int(time.time()) - 30 * 86400
    amo_data.leads = [lead(i, updated_at=old) for i in range(1, 4)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.ignore_filters = True
    amo_data.leads.append(lead(4, updated_at=int(time.time()) - 5))

    first = incremental()

    assert first["status"] == "skipped" and first["reason"] == "account ignores filters"
    assert not account_filters.ignored() and account_filters.current()["pending"]["on"] == "leads updated_at"
    assert incremental()["status"] == "skipped"
    assert account_filters.ignored()


def test_a_sighting_is_forgotten_when_the_next_filtered_run_holds_only_what_it_asked(amo_data):
    old = int(time.time()) - 30 * 86400
    amo_data.leads = [lead(i, updated_at=old) for i in range(1, 4)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    amo_data.ignore_filters = True
    incremental()
    amo_data.ignore_filters = False  # it was one odd answer
    amo_data.leads.append(lead(4, updated_at=int(time.time()) - 5))

    result = incremental()

    assert result["synced"] == 1 and stored(4).amo_lead_id == 4
    assert account_filters.current() == {}


def test_a_marked_account_asks_one_small_filtered_question_before_each_skipped_run(amo_data):
    marked_account(amo_data)
    amo_data.urls.clear()

    results = [incremental() for _ in range(3)]

    assert all(r["status"] == "skipped" for r in results)
    probes = lead_list_requests(amo_data)
    assert len(probes) == 3  # one each, never a page of the account
    assert all("limit=1&" in url or url.endswith("limit=1") for url in probes)
    assert all("filter%5Bupdated_at%5D%5Bto%5D=2" in url for url in probes)


def test_the_mark_is_lifted_when_the_probe_finds_filters_working_and_the_run_goes_on(amo_data):
    marked_account(amo_data)
    amo_data.ignore_filters = False
    amo_data.leads.append(lead(4, updated_at=int(time.time()) - 5))

    result = incremental()

    assert result["synced"] == 1 and stored(4).amo_lead_id == 4
    assert account_filters.current() == {}


def test_after_the_interval_an_incremental_run_is_one_unfiltered_full_run(amo_data):
    marked_account(amo_data)
    amo_data.leads.append(lead(4, updated_at=int(time.time()) - 5))
    last_full_run_hours_ago(account_filters.FULL_SYNC_INTERVAL / 3600 + 0.1)
    amo_data.urls.clear()

    result = incremental()

    assert result["synced"] == 4 and stored(4).amo_lead_id == 4
    full_run = lead_list_requests(amo_data)[1:]  # after the probe
    assert full_run and all("updated_at" not in url for url in full_run)
    assert time.time() - SyncState.get("leads").last_success_started_at < 60  # the next one waits again


def test_a_full_run_for_the_mark_waits_its_interval_even_when_it_did_not_complete(amo_data):
    """A full run whose window is held (a lead that kept changing) must not make every later
    run a full run: the interval counts from the full run's start."""
    marked_account(amo_data)
    last_full_run_hours_ago(5)
    assert "synced" in incremental() and account_filters.current()["lastFullRunAt"] > time.time() - 60
    last_full_run_hours_ago(5)  # as if that run had not completed
    amo_data.urls.clear()

    assert incremental()["status"] == "skipped"
    assert len(lead_list_requests(amo_data)) == 1  # the probe only


def test_the_first_incremental_run_on_such_an_account_falls_back_when_no_full_run_is_recent(amo_data):
    amo_data.ignore_filters = True
    old = int(time.time()) - 30 * 86400
    amo_data.leads = [lead(i, updated_at=old) for i in range(1, 3)]
    sync.sync_leads_from_amo(wiring.amo(), limit=0)
    last_full_run_hours_ago(5)
    amo_data.leads.append(lead(3, updated_at=int(time.time()) - 5))

    result = incremental()

    assert result["synced"] == 3 and not account_filters.ignored()  # one sighting


def test_status_says_whether_the_account_ignores_filters(amo_data, amo):
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    assert "filters" not in connection.get_connection_status(wiring.amo())
    with account_filters.run_scope():
        account_filters.record_ignored("contacts by id")
    assert "ignored once (on contacts by id" in connection.get_connection_status(wiring.amo())["filters"]
    with account_filters.run_scope():
        assert account_filters.record_ignored("leads updated_at")

    status = connection.get_connection_status(wiring.amo())

    assert "ignored by this account" in status["filters"] and "every 4 h" in status["filters"]


def test_without_the_id_filter_contacts_are_read_one_by_one_up_to_a_limit_never_listed(amo_data, monkeypatch):
    """Listing every contact is the "uncontrolled iteration through all data" amoCRM restricts
    (reference §3.4): missing contacts are read by id, and past the limit their leads wait."""
    monkeypatch.setattr(guests, "MAX_SINGLE_READS", 2)
    amo_data.ignore_filters = True
    amo_data.contacts = {cid: contact(cid, name=f"Гість {cid}") for cid in range(501, 511)}  # 10: more than 3 asked
    amo_data.leads = [lead(i, contact_ids=(500 + i,)) for i in (1, 2, 3)]

    result = sync.sync_leads_from_amo(wiring.amo(), limit=0)

    assert result["synced"] == 2 and [e["id"] for e in result["errors"]] == [3]
    assert result["errors"][0]["transient"]  # the window is held: a later run syncs it
    listed = amo_data.requests_to("/api/v4/contacts")
    assert len(listed) == 1 and "filter%5Bid%5D" in listed[0]  # the one batch that showed the filter ignored
    assert sorted(u.rsplit("/", 1)[1].split("?")[0] for u in amo_data.urls if "/contacts/" in u) == ["501", "502"]
    assert (stored(1).guest_name, stored(2).guest_name) == ("Гість 501", "Гість 502")
    with pytest.raises(Lead.DoesNotExist):
        stored(3)

    assert sync.sync_leads_from_amo(wiring.amo(), limit=0)["synced"] == 3  # the next run reads the rest
    assert stored(3).guest_name == "Гість 503"
