"""The shared limiter keeps amoCRM's rolling-second count at or under the rate (fake clock)."""

import threading

from chalicelib.amo.budget import RateLimiter


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def max_in_rolling_second(times):
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def test_burst_of_30_calls_stays_at_most_7_per_rolling_second():
    clock = FakeClock()
    limiter = RateLimiter(7, margin=0.05, clock=clock, sleep=clock.sleep)

    sends = [limiter.acquire() for _ in range(30)]

    assert max_in_rolling_second(sends) <= 7
    # paced with a small margin, not a second per call: 30 sends take about 30/7 s
    assert 29 / 7 < sends[-1] - sends[0] < 30 * 1.1 / 7


def test_jitter_up_to_the_margin_still_stays_within_the_limit():
    clock = FakeClock()
    limiter = RateLimiter(7, margin=0.08, clock=clock, sleep=clock.sleep)
    sends = [limiter.acquire() for _ in range(50)]
    arrivals = [t + (0.07 if i % 2 else 0.0) for i, t in enumerate(sends)]  # alternate slow requests
    assert max_in_rolling_second(arrivals) <= 7


def test_concurrent_callers_each_get_their_own_send_time_within_the_limit():
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(seconds):
        with lock:
            clock.now += seconds

    limiter = RateLimiter(7, margin=0.05, clock=clock, sleep=sleep)
    slots = []

    def worker():
        slot = limiter.acquire()
        with lock:
            slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(14)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(slots)) == 14
    assert max_in_rolling_second(slots) <= 7


def test_pause_pushes_back_every_later_slot():
    clock = FakeClock()
    limiter = RateLimiter(7, margin=0.05, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.pause(2.0)
    assert limiter.acquire() >= 1002.0


def test_a_caller_that_wakes_late_cannot_squeeze_an_eighth_request_into_a_second():
    clock = FakeClock()
    oversleeps = iter([0.12])  # the first wait overshoots, as a busy thread's would

    def sleep(seconds):
        clock.now += seconds + next(oversleeps, 0.0)

    limiter = RateLimiter(7, margin=0.02, clock=clock, sleep=sleep)
    sends = [limiter.acquire() for _ in range(40)]
    assert max_in_rolling_second(sends) <= 7
