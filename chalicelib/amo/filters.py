"""amoCRM list filters as values (reference §5.1, §6, §7): what to ask for, not how to spell it.

A range filter always carries both bounds: the official SDK sends `[from]` and `[to]` together,
and accounts have been seen answering 204 to a single bound (reference §13). Ids go as
`filter[id][]`, repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAR_FUTURE = 4_102_444_800  # 2100-01-01: the upper bound when the caller gives none


@dataclass(frozen=True)
class ListFilter:
    """Filters common to leads, contacts and tasks lists."""

    ids: tuple[int, ...] = ()
    updated_from: int | None = None
    updated_to: int | None = None

    @property
    def by_ids(self) -> bool:
        return bool(self.ids)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.ids:
            params["filter[id][]"] = list(self.ids)
        if self.updated_from is not None or self.updated_to is not None:
            params["filter[updated_at][from]"] = self.updated_from or 0
            params["filter[updated_at][to]"] = self.updated_to if self.updated_to is not None else FAR_FUTURE
        return params


@dataclass(frozen=True)
class TaskFilter(ListFilter):
    is_completed: bool | None = None
    entity_type: str | None = None

    def params(self) -> dict[str, Any]:
        params = super().params()
        if self.is_completed is not None:
            params["filter[is_completed]"] = 1 if self.is_completed else 0
        if self.entity_type is not None:
            params["filter[entity_type]"] = self.entity_type
        return params
