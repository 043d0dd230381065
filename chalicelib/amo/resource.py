"""What every amoCRM list resource shares: its path, its `_embedded` key, pages, one by id, many by id.

A resource module (leads.py, contacts.py, tasks.py) subclasses `ListResource` with its path,
its key and the parameters every list request of it carries, and adds its own writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from chalicelib.amo.client import PAGE_LIMIT, AmoClient
from chalicelib.amo.filters import ListFilter
from chalicelib.amo.keyset import KeysetPages, KeysetState
from chalicelib.amo.pages import Page, PageFetcher, embedded, next_href

IDS_PER_REQUEST = 250
MAX_QUERY_CHARS = 7700  # the request line must fit the 8 KB that nginx and Apache accept (no 414)
_ID_PARAM = "filter%5Bid%5D%5B%5D="  # how filter[id][] goes over the wire (brackets encoded)


def id_chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """Chunks of at most 250 ids whose `filter[id][]=…` query stays under MAX_QUERY_CHARS."""
    chunk: list[int] = []
    length = 0
    for entity_id in ids:
        cost = len(_ID_PARAM) + len(str(entity_id)) + 1
        if chunk and (len(chunk) == IDS_PER_REQUEST or length + cost > MAX_QUERY_CHARS):
            yield chunk
            chunk, length = [], 0
        chunk.append(entity_id)
        length += cost
    if chunk:
        yield chunk


class ListResource:
    path: ClassVar[str]
    key: ClassVar[str]
    list_params: ClassVar[dict[str, Any]] = {"order[id]": "asc"}
    by_updated_at: ClassVar[bool] = False  # amoCRM documents `order[updated_at]` for this list (§5.1)
    one_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, client: AmoClient):
        self.client = client

    def page(self, number: int, where: ListFilter = ListFilter(), order: str | None = None) -> Page:
        """One page of the list by number (limit 250); an empty, last page on 204. `order`
        (`updated_at`) replaces the list's usual `order[id]=asc` by `order[<order>]=asc`."""
        params = dict(self.list_params)
        if order is not None:
            params = {k: v for k, v in params.items() if not k.startswith("order[")}
            params[f"order[{order}]"] = "asc"
        return self._page(number, {"limit": PAGE_LIMIT, **params, **where.params()})

    def first_item(self, where: ListFilter) -> list[dict]:
        """At most one item of the filtered list (a one-item page): a cheap question."""
        return self._page(1, {**self.list_params, **where.params(), "limit": 1}).items

    def _page(self, number: int, params: dict[str, Any]) -> Page:
        body = self.client.get(self.path, {**params, "page": number})
        if not body:
            return Page(number, [], False)
        return Page(number, embedded(body, self.key), next_href(body) is not None)

    def pages(
        self,
        where: ListFilter = ListFilter(),
        *,
        first_page: int = 1,
        last_page: int | None = None,
        initial_window: int = 1,
        expected_last_page: int | None = None,
    ) -> PageFetcher:
        """Pages in order with several requests in flight (see pages.py); `initial_window` pages
        are requested before the first answer when the caller expects that many, and none past
        `expected_last_page` before an answer says one follows."""
        return PageFetcher(
            lambda number: self.page(number, where),
            first_page=first_page,
            last_page=last_page,
            latency=lambda: self.client.last_latency,
            interval=getattr(self.client.limiter, "interval", 0.15),
            in_turn=True,
            initial_window=initial_window,
            expected_last_page=expected_last_page,
        )

    def keyset_pages(self, state: KeysetState, *, first_step: int = 1) -> KeysetPages:
        """The `[state.cursor, state.to]` window of a list by `updated_at`, one page 1 after
        another (see keyset.py); only for lists amoCRM orders by `updated_at` (`by_updated_at`)."""
        return KeysetPages(
            lambda number, where: self.page(number, where, order="updated_at"), state, first_step=first_step
        )

    def get(self, entity_id: int, modified_since: int | None = None) -> dict | None:
        """One entity, or None when amoCRM says it does not exist (204, or a 404 naming it). With
        `modified_since` (the `updated_at` the caller holds), AmoNotModified when it is current."""
        return self.client.get_one(f"{self.path}/{int(entity_id)}", self.one_params or None, modified_since)

    def by_ids(self, ids: Iterable[int]) -> list[dict]:
        """The entities with these ids, in batches of up to 250 (never one request per entity).
        What amoCRM returns is not checked against what was asked here: see the caller."""
        found: list[dict] = []
        for chunk in id_chunks(ids):
            where = ListFilter(ids=tuple(chunk))
            body = self.client.get(self.path, {**self.list_params, **where.params(), "limit": IDS_PER_REQUEST})
            found.extend(embedded(body, self.key))
        return found
