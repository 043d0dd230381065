"""What every amoCRM list resource shares: its path, its `_embedded` key, pages, one by id, many by id.

A resource module (leads.py, contacts.py, tasks.py) subclasses `ListResource` with its path,
its key and the parameters every list request of it carries, and adds its own writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from chalicelib.amo.client import PAGE_LIMIT, AmoClient
from chalicelib.amo.filters import ListFilter
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
    one_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, client: AmoClient):
        self.client = client

    def page(self, number: int, where: ListFilter = ListFilter()) -> Page:
        """One page of the list by number (limit 250); an empty, last page on 204."""
        body = self.client.get(self.path, {"limit": PAGE_LIMIT, **self.list_params, **where.params(), "page": number})
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
    ) -> PageFetcher:
        """Pages in order with several requests in flight (see pages.py); `initial_window` pages
        are requested before the first answer when the caller expects that many."""
        return PageFetcher(
            lambda number: self.page(number, where),
            first_page=first_page,
            last_page=last_page,
            latency=lambda: self.client.last_latency,
            interval=getattr(self.client.limiter, "interval", 0.15),
            in_turn=True,
            initial_window=initial_window,
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
