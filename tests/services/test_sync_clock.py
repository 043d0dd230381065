"""Sync windows on amoCRM's clock (amo/clock.py, services/sync/state.py): amoCRM filters on its own
`updated_at`, so the cursor and the window's top are on its clock, taken from its answers' `Date`."""

import time
from email.utils import formatdate

import pytest
import requests

from chalicelib.amo.clock import amo_clock
from chalicelib.models import SyncState
from chalicelib.services.sync import state

pytestmark = pytest.mark.usefixtures("aws")

OVERLAP = 600


def answered_at(stamp: float) -> requests.Response:
    response = requests.Response()
    response.headers["Date"] = formatdate(stamp, usegmt=True)
    return response


def test_amocrms_clock_comes_from_the_date_of_its_answers_and_is_ours_until_one_is_heard():
    clock = amo_clock()
    assert clock.offset is None and abs(clock.now() - time.time()) < 1
    clock.heard(answered_at(time.time() - 3600))
    assert -3601 <= clock.offset <= -3599  # to the second, never short of amoCRM's now
    clock.heard(requests.Response())  # no Date: what was heard stays
    assert clock.offset is not None and clock.offset < -3500


def test_a_cursor_is_on_amocrms_clock_and_never_past_the_top_of_the_window_read():
    amo_clock().heard(answered_at(time.time() - 3600))
    started = time.time()
    assert state.cursor_for(started, None) == pytest.approx(started - 3600, abs=2)
    assert state.cursor_for(started, int(started - 7200)) == int(started - 7200)


def test_a_state_written_before_cursors_is_moved_by_amocrms_offset_or_read_a_day_earlier():
    ours = time.time() - 900
    SyncState(entity="leads", last_success_started_at=ours).save()
    assert state.incremental_from("leads", OVERLAP) == int(ours - state.UNKNOWN_SKEW_SECONDS - OVERLAP)
    amo_clock().heard(answered_at(time.time() - 3600))
    assert state.incremental_from("leads", OVERLAP) == pytest.approx(ours - 3600 - OVERLAP, abs=2)
    SyncState(entity="leads", last_success_started_at=ours, cursor=ours - 3600).save()
    assert state.incremental_from("leads", OVERLAP) == int(ours - 3600 - OVERLAP)


def test_a_window_is_never_upside_down_when_amocrm_is_ahead_of_the_clock_standing_in_for_it():
    started = time.time()
    since = int(started + 3 * 3600)  # a cursor on amoCRM's clock, hours ahead; ours stands in (none heard)
    top = state.window_top(since, started, OVERLAP)
    assert top >= since + OVERLAP
    assert state.cursor_for(started, top) <= top
