"""Reading an `updated_at` window by keyset (reference §3.3, §5.1): an item edited while the
window is read leaves it, and no other item is ever skipped, whatever the page boundaries."""

import pytest

from chalicelib.amo.filters import ListFilter
from chalicelib.amo.keyset import KeysetPages, KeysetState, OrderIgnored
from chalicelib.amo.pages import Page

TO = 1000


class Account:
    """A list amoCRM-like: `[from, to]`, ordered by (updated_at, id), pages of `limit`; with
    `edit_first`, each page 1 served has its first item edited right after (updated_at → later)."""

    def __init__(self, times, *, limit=3, edit_first=False):
        self.items = dict(enumerate(times, start=1))
        self.limit, self.edit_first, self.requests = limit, edit_first, 0

    def fetch(self, number, where: ListFilter) -> Page:
        self.requests += 1
        window = sorted(
            ((t, i) for i, t in self.items.items() if where.updated_from <= t <= where.updated_to),
        )
        chunk = window[(number - 1) * self.limit : number * self.limit]
        page = Page(number, [{"id": i, "updated_at": t} for t, i in chunk], number * self.limit < len(window))
        if number == 1 and chunk and self.edit_first:
            self.items[chunk[0][1]] = TO + 10  # someone edits it: it leaves the window
        return page


def read(account, state=None):
    pages = KeysetPages(account.fetch, state or KeysetState(cursor=0, to=TO))
    return [item["id"] for page in pages.pages() for item in page.items], pages


@pytest.mark.parametrize(
    "times",
    [
        [10, 20, 30, 40, 50, 60, 70],  # one item a second
        [10, 10, 20, 20, 20, 30, 30, 40],  # ties across page boundaries
        [5] * 8 + [6, 7],  # one second holds more than a page
    ],
    ids=["distinct", "ties", "dense-second"],
)
def test_every_item_is_read_once_even_when_items_are_edited_between_pages(times):
    quiet, _ = read(Account(times))
    assert sorted(quiet) == list(range(1, len(times) + 1)) and len(set(quiet)) == len(quiet)

    busy = Account(times, edit_first=True)
    seen, pages = read(busy)

    assert set(seen) == set(range(1, len(times) + 1))  # the edited ones were read before their edit
    assert pages.exhausted and pages.state.done


def test_an_offset_reader_of_the_same_window_skips_an_item():
    """What the keyset reader avoids: page 2 of `[0, TO]` after page 1's first item left it."""
    account = Account([10, 20, 30, 40, 50, 60], edit_first=True)
    offset = [item["id"] for n in (1, 2) for item in account.fetch(n, ListFilter(updated_from=0, updated_to=TO)).items]
    assert 4 not in offset


def test_a_page_not_in_updated_at_order_is_refused():
    def fetch(number, where):
        return Page(number, [{"id": 1, "updated_at": 50}, {"id": 2, "updated_at": 10}], False)

    with pytest.raises(OrderIgnored):
        list(KeysetPages(fetch, KeysetState(cursor=0, to=TO)).pages())


def test_a_stopped_reading_resumes_from_its_saved_state_without_rereading():
    account = Account([10, 20, 30, 40, 50, 60, 70])
    pages = KeysetPages(account.fetch, KeysetState(cursor=0, to=TO))
    first = next(iter(pages.pages(should_stop=lambda: False)))
    saved = pages.state.as_dict()

    rest, resumed = read(account, KeysetState.from_dict(saved))

    assert [i["id"] for i in first.items] + rest == [1, 2, 3, 4, 5, 6, 7]
    assert resumed.state.done
