"""The shared amoCRM budget: several processes (budgets sharing one moto table) on virtual time.

The virtual clock is tests/amo/virtual_time.py; the budget's assumptions (skewed clocks, mixed
margins, a table outage, 429s and blocks) are tests/amo/test_budget_assumptions.py.
"""

import pytest

from chalicelib.amo.budget import BULK, GENERAL, INTERACTIVE, RESERVED, BudgetUnavailable
from chalicelib.amo.budget.tuning import CLAIM_HORIZON_SECONDS
from chalicelib.amo.errors import AmoBlocked, AmoRateLimited
from chalicelib.models import RateBudget
from chalicelib.services.budget_store import DynamoBudgetStore
from tests.amo.virtual_time import VirtualDate, VirtualTime, budget, max_in_rolling_second, sender

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def test_four_processes_of_three_threads_never_exceed_seven_per_rolling_second_and_use_the_budget(atomic_moto):
    vt = VirtualTime()
    processes = [budget(vt) for _ in range(4)]
    sends: list[float] = []

    vt.run(*[sender(p, sends, 15, vt=vt) for p in processes for _ in range(3)])

    assert len(sends) == 180
    assert max_in_rolling_second(sends) <= 7
    busy = max(sends) - min(sends)
    assert len(sends) / busy >= 6.0  # the budget is not wasted
    calls = sum(p.store_calls for p in processes)
    assert calls / len(sends) < 2.0  # four processes contending cost more calls; see the fleet benchmark


def test_one_process_pays_well_under_one_table_call_per_request(atomic_moto):
    vt = VirtualTime()
    limiter = budget(vt)
    sends: list[float] = []
    vt.run(*[sender(limiter, sends, 20, vt=vt) for _ in range(6)])
    assert max_in_rolling_second(sends) <= 7
    # six callers taking turns mostly claim one or two slots at a time, plus a state read a second
    assert limiter.store_calls / len(sends) <= 0.75


def test_slots_claimed_by_a_process_that_died_stall_nobody_for_long(atomic_moto):
    vt = VirtualTime()
    dead, alive = budget(vt), budget(vt)
    sends: list[float] = []
    vt.run(*[sender(dead, [], 1, vt=vt) for _ in range(4)])  # claims slots ahead, then never sends again
    started = vt.now
    vt.run(sender(alive, sends, 7, vt=vt), sender(alive, sends, 7, vt=vt))
    # 14 requests: two seconds of budget, plus what the dead held
    assert max(sends) - started <= CLAIM_HORIZON_SECONDS + 2.0


def test_an_unreachable_table_falls_back_to_a_conservative_local_pace_without_failing_a_call():
    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise BudgetUnavailable("ResourceNotFoundException")

            return fail

    vt = VirtualTime()
    limiter = budget(vt, store=Down())
    sends: list[float] = []
    vt.run(*[sender(limiter, sends, 5, vt=vt) for _ in range(2)])
    assert len(sends) == 10
    assert max_in_rolling_second(sends) <= 2  # a quarter of the rate, never unlimited
    assert limiter.describe()["mode"].startswith("this process only")


def test_a_pause_seen_by_one_process_holds_the_others(atomic_moto):
    vt = VirtualTime()
    first, second = budget(vt), budget(vt)
    vt.run(sender(first, [], 1, vt=vt))
    paused_at = vt.now
    first.rate_limited(2.0)
    sends: list[float] = []
    vt.run(sender(second, sends, 3, vt=vt))
    assert min(sends) >= paused_at + 2.0


def test_a_long_pause_fails_fast_instead_of_holding_the_caller(atomic_moto):
    vt = VirtualTime()
    first, second = budget(vt), budget(vt)
    first.rate_limited(60.0)
    with pytest.raises(AmoRateLimited, match="cools down"):
        vt.run(sender(second, [], 1, vt=vt))


def test_a_block_stops_every_process_is_counted_once_and_shows_in_describe(atomic_moto, caplog):
    vt = VirtualTime()
    first, second = budget(vt), budget(vt)
    first.block(300.0)
    second.block(300.0)  # the same episode, seen by another process
    with pytest.raises(AmoBlocked, match="blocked"):
        vt.run(sender(second, [], 1, vt=vt))
    state = RateBudget.get(RateBudget.STATE_KEY)
    assert state.blocked_count == 1
    assert caplog.text.count("amoCRM blocked this integration") == 1


def test_interactive_work_keeps_its_share_while_a_sync_uses_the_rest(atomic_moto):
    vt = VirtualTime()
    sync, api = budget(vt), budget(vt)
    bulk_sends: list[float] = []
    waits: list[float] = []

    def interactive():
        vt.sleep(2.0)  # the sync is in full swing
        for _ in range(3):  # create-lead: three amoCRM calls one after another
            asked = vt.clock()
            api.acquire(INTERACTIVE)
            waits.append(vt.clock() - asked)

    vt.run(*[sender(sync, bulk_sends, 12, BULK, vt) for _ in range(4)], interactive)

    assert sum(waits) <= 1.2, waits
    assert max_in_rolling_second(bulk_sends + [0.0] * 0) <= 7
    alone = [t for t in bulk_sends if t < min(bulk_sends) + 1.8]
    assert len(alone) >= 10  # before anyone else wanted in, the sync had the whole budget


def test_interactive_work_piling_up_during_a_sync_uses_the_whole_budget_and_the_sync_still_moves(atomic_moto):
    vt = VirtualTime()
    sync, api = budget(vt), budget(vt)
    bulk_sends: list[float] = []
    interactive_sends: list[float] = []
    vt.run(
        *[sender(sync, bulk_sends, 20, BULK, vt) for _ in range(3)],
        *[sender(api, interactive_sends, 10, INTERACTIVE, vt) for _ in range(6)],
    )
    both = sorted(bulk_sends + interactive_sends)
    assert max_in_rolling_second(both) <= 7
    start, end = min(both) + 2.0, min(max(bulk_sends), max(interactive_sends))  # both busy, shares known
    span = end - start
    assert sum(start <= t < end for t in both) / span >= 6.0  # nothing wasted
    assert sum(start <= t < end for t in interactive_sends) / span >= 2.0  # at least the reserved share
    assert sum(start <= t < end for t in bulk_sends) / span >= 0.5  # the sync slows down, never stops


def test_what_a_slow_sync_leaves_unused_goes_to_interactive_work(atomic_moto):
    vt = VirtualTime()
    sync, api = budget(vt), budget(vt)
    bulk_sends: list[float] = []
    interactive_sends: list[float] = []

    def slow_sync():  # busy writing what it read: asks amoCRM only twice a second
        for _ in range(16):
            sync.acquire(BULK)
            bulk_sends.append(vt.clock())
            vt.sleep(0.5)

    vt.run(slow_sync, *[sender(api, interactive_sends, 12, INTERACTIVE, vt) for _ in range(6)])
    both = sorted(bulk_sends + interactive_sends)
    end = min(max(bulk_sends), max(interactive_sends))
    start = min(both) + 2.0
    assert max_in_rolling_second(both) <= 7
    assert sum(start <= t < end for t in both) / (end - start) >= 6.0  # nothing is left unused


def test_a_slow_table_does_not_make_a_caller_claim_past_its_own_slot(atomic_moto):
    """Claims that take 40 ms (a busy table) while a sync sends back to back: a caller whose
    slot is nearer than a claim takes sends first and claims afterwards, so no slot is dropped
    and the sync keeps the full pace (claiming first dropped about one slot in seven)."""
    vt = VirtualTime()
    store = DynamoBudgetStore()
    real_claim = store.claim

    def slow_claim(*args, **kwargs):
        vt.sleep(0.04)
        return real_claim(*args, **kwargs)

    store.claim = slow_claim  # type: ignore[method-assign]
    limiter = budget(vt, store)
    sends: list[float] = []

    vt.run(sender(limiter, sends, 20, BULK, vt=vt))

    assert max_in_rolling_second(sends) <= 7
    full_pace = 1 / limiter.plan.width
    assert (len(sends) - 1) / (max(sends) - min(sends)) >= 0.97 * full_pace


def test_a_table_that_times_out_during_a_pause_falls_back_instead_of_failing_the_call(atomic_moto, monkeypatch):
    """A timeout is a botocore error whose `response` is None: PynamoDB's own error-code lookup
    raised AttributeError on it, which escaped the fallback and failed the 429's caller."""
    from botocore.exceptions import ReadTimeoutError
    from pynamodb.exceptions import UpdateError

    def timed_out(self, *args, **kwargs):
        raise UpdateError("Failed to update item", ReadTimeoutError(endpoint_url="http://dynamodb"))

    monkeypatch.setattr(RateBudget, "update", timed_out)
    with pytest.raises(BudgetUnavailable):
        DynamoBudgetStore().pause(2_000_000_010.0, "a test")
    vt = VirtualTime()
    limiter = budget(vt)
    limiter.rate_limited(1.0)  # does not raise: this process paces itself for a while
    assert limiter.describe()["mode"].startswith("this process only")


@pytest.mark.parametrize("lane", [INTERACTIVE, BULK])
def test_a_process_claims_before_it_reads_the_state_and_still_sends_nothing_during_a_pause(atomic_moto, lane):
    """The first request of a process waits for one table call less (the claim goes first); its
    slots are not used before the shared state is read, so another process's pause holds."""
    vt = VirtualTime()
    budget(vt).rate_limited(3.0)
    paused_at = vt.now
    store, calls = VirtualDate(vt), []
    for name in ("claim", "state", "signal"):
        method = getattr(store, name)
        setattr(store, name, lambda *a, _m=method, _n=name, **k: calls.append(_n) or _m(*a, **k))
    sends: list[float] = []

    vt.run(sender(budget(vt, store), sends, 2, lane, vt=vt))

    assert calls[0] == "claim" and calls[1] in ("state", "signal")
    assert min(sends) >= paused_at + 3.0


def test_the_counters_keep_their_stored_names_so_old_and_new_containers_count_the_same_slots(atomic_moto):
    """During a rolling deploy, containers that still write `p` and `g` share the table."""
    store = DynamoBudgetStore()
    assert store.claim(5, {RESERVED: (1, 0), GENERAL: (2, 0)}, 2_000_000_060.0) == {RESERVED: 1, GENERAL: 2}
    stored = RateBudget._get_connection().get_item("block#5")["Item"]
    assert stored["p"] == {"N": "1"} and stored["g"] == {"N": "2"}


def test_the_tables_clock_is_dynamodbs_date_header():
    import time

    from chalicelib.services.budget_store import DynamoBudgetStore

    second = DynamoBudgetStore().state().server_second
    assert second is not None and abs(second - time.time()) <= 2


def test_a_clock_is_measured_to_ten_milliseconds_in_about_two_seconds_of_probes_timed_on_the_tables_tick():
    from chalicelib.amo.budget.clock import TableClock

    true = [1_000_000.0]
    offset = -0.3131  # this host is 313 ms ahead
    clock = TableClock(lambda: true[0] - offset, trusted=False)
    started = true[0]
    while not clock.settled():
        true[0] += clock.next_probe(clock.local()) - clock.local()  # wait for the planned moment
        sent = clock.local()
        true[0] += 0.004  # the request on its way …
        server = int(true[0])
        true[0] += 0.004  # … and the answer
        clock.learn(sent, received=clock.local(), server_second=server, probe=True)
    assert abs(clock.offset - offset) <= 0.01
    assert true[0] - started <= 2.2 and clock.probes <= 20


def test_slots_claimed_ahead_let_the_first_request_go_without_a_table_call_on_its_way(atomic_moto):
    """A sync claims while it writes its lease (services/sync/lease.py): its first request then
    finds a slot in hand and the shared state known."""
    vt = VirtualTime()
    limiter = budget(vt)
    vt.run(lambda: limiter.claim_ahead(BULK))
    ahead = limiter.store_calls
    sends: list[float] = []

    vt.run(sender(limiter, sends, 1, BULK, vt=vt))

    assert ahead >= 2  # the claim and the state (read or signalled)
    assert limiter.store_calls == ahead and len(sends) == 1


def test_slots_claimed_ahead_are_not_used_during_another_process_pause_nor_past_the_rate(atomic_moto):
    vt = VirtualTime()
    budget(vt).rate_limited(3.0)  # another process met a 429: a cool-down of at least 3 s
    paused_at = vt.now
    early, other = budget(vt), budget(vt)
    vt.run(lambda: early.claim_ahead(BULK))
    sends: list[float] = []

    vt.run(sender(early, sends, 10, BULK, vt=vt), sender(other, sends, 10, vt=vt))

    assert min(sends) >= paused_at + 3.0
    assert max_in_rolling_second(sends) <= 7


def test_claiming_ahead_twice_claims_once(atomic_moto):
    vt = VirtualTime()
    limiter = budget(vt)
    vt.run(lambda: limiter.claim_ahead(BULK))
    calls = limiter.store_calls
    vt.run(lambda: limiter.claim_ahead(BULK))
    assert limiter.store_calls == calls


def test_a_sync_that_starts_on_another_margin_sends_in_the_slots_it_claimed_ahead(atomic_moto):
    """The deployment's margin (0.3 here: an operator's CLI, whose clock is measured, asks for
    more) is not the one a new process is configured with. Claiming ahead reads the state
    first, so the slots lie on the stored schedule and the first request goes in the first of
    them; claimed on the configured margin they were dropped, a second claim was made and the
    request waited a slot more."""
    vt = VirtualTime()
    vt.run(sender(budget(vt, margin=0.3), [], 1, vt=vt))
    vt.now += 5.0
    limiter = budget(vt)
    started = vt.now
    vt.run(lambda: limiter.claim_ahead(BULK))
    ahead = limiter.store_calls
    sends: list[float] = []

    vt.run(sender(limiter, sends, 1, BULK, vt=vt))

    assert limiter.plan.margin.margin == 0.3
    assert ahead == 2 and limiter.store_calls == ahead  # the state (a signal), the claim: nothing more
    assert sends[0] - started <= 1.3 / 7 + 0.1  # the first slot on the stored grid past the claim


def test_an_unexpected_error_while_claiming_ahead_never_stalls_the_requests_after_it(atomic_moto):
    """The sync does its start-up work again when it fails (services/sync/lease.py); a claiming
    flag left set by the failure made every later acquire wait for ever."""
    vt = VirtualTime()
    store = VirtualDate(vt)
    signal = store.signal
    store.signal = lambda *args, **kwargs: (_ for _ in ()).throw(ValueError("an odd answer"))
    limiter = budget(vt, store)
    with pytest.raises(ValueError):
        vt.run(lambda: limiter.claim_ahead(BULK))
    store.signal = signal
    sends: list[float] = []

    vt.run(sender(limiter, sends, 2, BULK, vt=vt))

    assert len(sends) == 2
