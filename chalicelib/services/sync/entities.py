"""What each entity is synced with: the amoCRM list its pages come from, the filter that list
takes, and the writer that stores its pages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.amo.api import AmoApi
from chalicelib.amo.filters import ListFilter, TaskFilter
from chalicelib.amo.resource import ListResource
from chalicelib.services import contacts, tasks
from chalicelib.services.sync.lead_pages import LeadPageWriter


class PageWriter(Protocol):
    synced: int
    errors: list[dict]

    def add_page(self, raw_items: list[Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SimpleWriter:
    """Writer for entities whose pages are stored as they come (contacts, tasks)."""

    def __init__(self, sync_page: Callable[[list[Any]], tuple[int, list[dict]]]):
        self._sync_page = sync_page
        self.synced = 0
        self.errors: list[dict] = []

    def add_page(self, raw_items: list[Any]) -> None:
        synced, errors = self._sync_page(raw_items)
        self.synced += synced
        self.errors.extend(errors)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class EntitySync:
    resource: Callable[[AmoApi], ListResource]
    filter_type: type[ListFilter]
    writer: Callable[[AmoApi], PageWriter]


ENTITIES: dict[str, EntitySync] = {
    "leads": EntitySync(lambda amo: amo.leads, ListFilter, LeadPageWriter),
    "contacts": EntitySync(lambda amo: amo.contacts, ListFilter, lambda amo: SimpleWriter(contacts.sync_page)),
    "tasks": EntitySync(lambda amo: amo.tasks, TaskFilter, lambda amo: SimpleWriter(tasks.sync_page)),
}
