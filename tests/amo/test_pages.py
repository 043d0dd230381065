"""PageFetcher: pages in order with several requests in flight, stopping where amoCRM's list ends."""

import random
import threading
import time

import pytest

from chalicelib.amo.budget import ADMITTED
from chalicelib.amo.pages import Page, PageFetcher, embedded, next_href


class FakeList:
    """A list of `total` items in pages of `size`; records which pages were asked for and how
    many requests ran at once."""

    def __init__(self, total, size=3, latency=0.0, fail_on=None):
        self.total, self.size, self.latency, self.fail_on = total, size, latency, fail_on
        self.asked: list[int] = []
        self.company: dict[int, int] = {}  # page: how many requests ran when it started, itself included
        self.events: list[tuple[str, int]] = []  # ("start" | "end", page) in the order they happened
        self.running = 0
        self.max_running = 0
        self.lock = threading.Lock()

    def fetch(self, number):
        with self.lock:
            self.asked.append(number)
            self.running += 1
            self.company[number] = self.running
            self.events.append(("start", number))
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self.latency)
            if number == self.fail_on:
                raise RuntimeError(f"page {number} failed")
            start = (number - 1) * self.size
            items = [{"id": i} for i in range(start, min(start + self.size, self.total))]
            return Page(number, items, start + self.size < self.total)
        finally:
            with self.lock:
                self.running -= 1
                self.events.append(("end", number))

    def started_after_end_of(self, later, earlier):
        return self.events.index(("start", later)) > self.events.index(("end", earlier))


def ids(pages):
    return [item["id"] for page in pages for item in page.items]


def test_every_page_comes_in_order_and_the_fetcher_is_exhausted():
    data = FakeList(total=10)
    fetcher = PageFetcher(data.fetch)
    assert ids(fetcher.pages()) == list(range(10))
    assert fetcher.exhausted


def test_slow_pages_are_fetched_several_at_a_time_but_never_more_than_the_window():
    data = FakeList(total=30, latency=0.05)
    fetcher = PageFetcher(data.fetch, latency=lambda: 0.05, interval=0.01, max_window=4)
    assert ids(fetcher.pages()) == list(range(30))
    assert 2 <= data.max_running <= 4


class ScramblingLimiter:
    """Admits one request at a time, to whichever thread asks first after a random delay (as
    threads waking from the GIL do), and reports each admission as the client does."""

    def __init__(self):
        self.lock = threading.Lock()
        self.admitted: list[int] = []

    def fetch_through(self, data):
        def fetch(number):
            time.sleep(random.uniform(0, 0.004))
            with self.lock:
                self.admitted.append(number)
                hook = ADMITTED.get()
                if hook is not None:
                    hook()
            return data.fetch(number)

        return fetch


def test_in_turn_pages_are_admitted_in_page_order_and_still_overlap_on_the_wire():
    random.seed(7)
    data, limiter = FakeList(total=60, latency=0.02), ScramblingLimiter()
    fetcher = PageFetcher(limiter.fetch_through(data), latency=lambda: 0.02, interval=0.005, max_window=5, in_turn=True)
    assert ids(fetcher.pages()) == list(range(60))
    assert limiter.admitted == sorted(limiter.admitted)
    assert data.max_running >= 2


def test_without_in_turn_a_scrambled_limiter_admits_pages_out_of_order():
    """What in_turn prevents: the same limiter without it lets later pages overtake."""
    random.seed(7)
    data, limiter = FakeList(total=60, latency=0.02), ScramblingLimiter()
    fetcher = PageFetcher(limiter.fetch_through(data), latency=lambda: 0.02, interval=0.005, max_window=5)
    assert ids(fetcher.pages()) == list(range(60))
    assert limiter.admitted != sorted(limiter.admitted)


def test_initial_window_requests_several_pages_before_any_latency_is_known():
    data = FakeList(total=30, latency=0.05)
    list(PageFetcher(data.fetch, initial_window=3).pages())  # latency() never reports anything
    assert data.max_running == 3
    data = FakeList(total=30, latency=0.05)
    list(PageFetcher(data.fetch).pages())
    assert data.max_running == 1


def test_requests_past_the_end_are_few():
    data = FakeList(total=9, latency=0.02)  # pages 1-3, page 3 has no next link
    fetcher = PageFetcher(data.fetch, latency=lambda: 0.02, interval=0.01, max_window=4)
    list(fetcher.pages())
    assert max(data.asked) <= 3 + 4  # at most one window of speculative requests


def test_a_list_as_long_as_when_last_read_costs_no_request_past_its_end():
    data = FakeList(total=30, latency=0.05)  # ten pages
    fetcher = PageFetcher(
        data.fetch, latency=lambda: 0.05, interval=0.01, max_window=4, initial_window=4, expected_last_page=10
    )
    assert ids(fetcher.pages()) == list(range(30)) and fetcher.exhausted
    assert max(data.asked) == 10 and data.max_running == 4


def test_a_list_that_grew_pays_one_latency_past_the_expected_end_then_the_window_opens_again():
    data = FakeList(total=60, latency=0.05)  # twenty pages, ten expected
    fetcher = PageFetcher(
        data.fetch, latency=lambda: 0.05, interval=0.01, max_window=4, initial_window=4, expected_last_page=10
    )
    assert ids(fetcher.pages()) == list(range(60)) and fetcher.exhausted
    # page 11 is asked once page 10 said another follows, page 12 once page 11 said so too
    assert data.started_after_end_of(11, 10) and data.started_after_end_of(12, 11)
    assert max(data.company[n] for n in range(13, 21)) >= 3  # page 11 said more follow: the estimate was wrong


def test_a_list_that_shrank_ends_where_its_answers_say():
    data = FakeList(total=15, latency=0.02)  # five pages, ten expected
    fetcher = PageFetcher(data.fetch, latency=lambda: 0.02, interval=0.01, max_window=4, expected_last_page=10)
    assert ids(fetcher.pages()) == list(range(15)) and fetcher.exhausted
    assert max(data.asked) <= 5 + 4


def test_last_page_caps_what_is_requested():
    data = FakeList(total=100)
    fetcher = PageFetcher(data.fetch, last_page=2)
    assert ids(fetcher.pages()) == list(range(6))
    assert max(data.asked) == 2 and fetcher.exhausted


def test_should_stop_ends_before_the_next_page_is_started_and_says_where_to_resume():
    data = FakeList(total=30)
    fetcher = PageFetcher(data.fetch, first_page=2)
    seen = []
    for page in fetcher.pages(should_stop=lambda: len(seen) >= 2):
        seen.append(page.number)
    assert seen[:2] == [2, 3]
    assert not fetcher.exhausted and fetcher.next_to_yield == seen[-1] + 1


def test_a_failing_page_raises_to_the_caller_in_its_turn():
    data = FakeList(total=30, fail_on=3)
    got = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for page in PageFetcher(data.fetch).pages():
            got.append(page.number)
    assert got == [1, 2]


def test_an_empty_first_page_yields_nothing():
    assert list(PageFetcher(FakeList(total=0).fetch).pages()) == []


def test_hal_helpers_read_embedded_items_and_the_next_link():
    body = {"_embedded": {"leads": [{"id": 1}]}, "_links": {"next": {"href": "https://x/api/v4/leads?page=2"}}}
    assert embedded(body, "leads") == [{"id": 1}]
    assert next_href(body) == "https://x/api/v4/leads?page=2"
    assert embedded(None, "leads") == [] and embedded({"_embedded": []}, "leads") == []
    assert next_href({"_links": {}}) is None


class PacedLimiter:
    """Admits one request every `interval` seconds, in the order asked, and reports each
    admission as the client does (a hook that raises withdraws the request unsent)."""

    def __init__(self, interval):
        self.interval = interval
        self.lock = threading.Lock()
        self.next_slot = 0.0
        self.sent: dict[int, float] = {}

    def fetch_through(self, data):
        def fetch(number):
            with self.lock:
                slot = max(time.monotonic(), self.next_slot)
                self.next_slot = slot + self.interval
            time.sleep(max(0.0, slot - time.monotonic()))
            hook = ADMITTED.get()
            if hook is not None:
                hook()
            self.sent[number] = time.monotonic()
            return data.fetch(number)

        return fetch


def test_a_page_still_waiting_for_its_slot_when_the_last_page_arrives_is_never_sent():
    """Page 3 of 3 answers 0.12 s after it left; pages 4 and 5 left before that (nobody could
    know), page 6's slot comes after the answer: it is withdrawn, not sent for a 204."""
    data = FakeList(total=9, latency=0.12)
    answered: dict[int, float] = {}
    fetch = data.fetch

    def timed(number):
        page = fetch(number)
        answered[number] = time.monotonic()
        return page

    data.fetch = timed
    limiter = PacedLimiter(interval=0.05)
    fetcher = PageFetcher(
        limiter.fetch_through(data), latency=lambda: 0.12, interval=0.05, in_turn=True, initial_window=6
    )

    assert ids(fetcher.pages()) == list(range(9)) and fetcher.exhausted
    time.sleep(0.3)  # the workers still waiting for a slot when the caller was done have had theirs
    assert [n for n, sent in limiter.sent.items() if n > 3 and sent > answered[3]] == []
    assert max(limiter.sent) <= 5
