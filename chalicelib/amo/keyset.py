"""Reading a time window of a list by `updated_at` instead of by page offset (reference §3.3, §5.1).

Paging `[from, to]` by page number loses items: an item edited while the reader is between
pages leaves the window, every later item moves back one place, and the first item of the next
page is never read. Here every request is page 1 of `[cursor, to]` ordered by `updated_at`
ascending; after each page the cursor moves to the last item's `updated_at`, and the ids
already handed out at exactly that second are skipped when the next page repeats it. An edit
can then only move an item past `to` (the next run's window has it) and never shifts the rest.

One second can hold more items than a page (a bulk edit); when a page is all at the cursor's
second, that second alone (`[cursor, cursor]`) is paged by number. An edit there shifts the
items after it back by one, so the second is paged again until a whole pass finds nothing new
(edits only ever take items out of a past second, so this ends), then the cursor moves past it.

A page not ordered by `updated_at` (an account that ignores `order`) raises OrderIgnored: the
caller reads the window another way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from chalicelib.amo.filters import ListFilter
from chalicelib.amo.pages import Page


class OrderIgnored(Exception):
    """amoCRM answered a list asked in `updated_at` order in another order."""


@dataclass
class KeysetState:
    """Where a window's reading stands: serialisable, so a continuation resumes it."""

    cursor: int
    to: int
    seen: set[Any] = field(default_factory=set)  # ids handed out whose updated_at == cursor
    second_page: int = 0  # > 0: paging the cursor's second alone, this page next
    pass_found: bool = False  # this pass over the cursor's second found items not handed out before
    done: bool = False

    def as_dict(self) -> dict:
        return {
            "cursor": self.cursor,
            "to": self.to,
            "seen": sorted(self.seen),
            "second_page": self.second_page,
            "pass_found": self.pass_found,
            "done": self.done,
        }

    @classmethod
    def from_dict(cls, saved: dict) -> KeysetState:
        return cls(
            cursor=int(saved["cursor"]),
            to=int(saved["to"]),
            seen={int(i) for i in saved.get("seen") or []},
            second_page=int(saved.get("second_page") or 0),
            pass_found=bool(saved.get("pass_found")),
            done=bool(saved.get("done")),
        )


def _changed(item: Any) -> int | None:
    value = item.get("updated_at") if isinstance(item, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class KeysetPages:
    """The window's items, a page at a time, for `sync/run.py`'s consumer: `pages()` yields
    Pages numbered by step; `exhausted` and `next_to_yield` as PageFetcher has them, and
    `state` to resume from."""

    def __init__(self, fetch: Callable[[int, ListFilter], Page], state: KeysetState, *, first_step: int = 1):
        self._fetch = fetch
        self.state = state
        self.next_to_yield = first_step
        self.exhausted = state.done

    def pages(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Page]:
        while not self.state.done and not should_stop():
            items = self._advance()
            step = self.next_to_yield
            self.next_to_yield += 1
            if items:
                yield Page(step, items, not self.state.done)
        self.exhausted = self.state.done

    def _advance(self) -> list[dict]:
        """One request; the state moves past what it returned. The items not handed out yet."""
        state = self.state
        if state.second_page:
            page = self._fetch(state.second_page, ListFilter(updated_from=state.cursor, updated_to=state.cursor))
        else:
            page = self._fetch(1, ListFilter(updated_from=state.cursor, updated_to=state.to))
        times = [t for t in map(_changed, page.items) if t is not None]
        if times != sorted(times):
            raise OrderIgnored("amoCRM did not order the page by updated_at")
        fresh = [i for i in page.items if not (_changed(i) == state.cursor and i.get("id") in state.seen)]
        if state.second_page:
            state.seen.update(i.get("id") for i in page.items if _changed(i) == state.cursor)
            state.pass_found = state.pass_found or bool(fresh)
            if page.items and page.has_next:
                state.second_page += 1
            elif state.pass_found:  # an edit may have shifted an item past this pass: once more
                state.second_page, state.pass_found = 1, False
            else:  # the second is read: on past it
                self._move(state.cursor + 1, set())
        elif not page.items or not page.has_next or not times:
            state.done = True
        elif times[-1] == state.cursor:  # a whole page in one second: page through that second
            state.seen.update(i.get("id") for i in page.items)
            state.second_page, state.pass_found = 1, False
        else:
            last = times[-1]
            self._move(last, {i.get("id") for i in page.items if _changed(i) == last})
        return fresh

    def _move(self, cursor: int, seen: set[Any]) -> None:
        self.state.cursor, self.state.seen, self.state.second_page = cursor, seen, 0
        self.state.done = cursor > self.state.to
