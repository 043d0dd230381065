"""The account every resource shares: its data tables, the lock, new ids, links, and
`GET /api/v4/account`.

Each resource module (leads.py, contacts.py, …) is a mixin over this class; `state.Sandbox`
puts them together and owns the data.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox import entities, query, seed
from sandbox.config import Config
from sandbox.errors import ApiError, problem, validation_failure
from sandbox.stats import Stats


def now() -> int:
    return int(time.time())


class Account:
    config: Config
    lock: threading.RLock
    pipelines: dict[int, dict]
    roles: dict[int, dict]
    users: dict[int, dict]
    contacts: dict[int, dict]
    leads: dict[int, dict]
    tasks: dict[int, dict]
    notes: dict[int, dict]
    next_id: int
    stats: Stats

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def base_url(self) -> str:
        return self.config.public_url.rstrip("/")

    def link(self, path: str) -> dict:
        return entities.link(self.base_url(), path)

    def page(
        self, items: list, key: str, path: str, params: dict, render: Callable[[Any], dict], max_limit: int = 250
    ) -> tuple[int, Any]:
        return query.page(
            items,
            key,
            self.base_url() + path,
            params,
            render,
            max_limit=max_limit,
            oversized=self.config.oversized_limit,
        )

    def invalid(self, entries: list[dict]) -> ApiError:
        """The 400 for invalid leads, contacts or tasks, in the account's Config.error_shape."""
        return validation_failure(self.config.error_shape, entries)

    def missing(self, what: str) -> tuple[int, None]:
        """A single GET of an entity that does not exist: 204 or 404 (Config.missing_entity_status)."""
        if self.config.missing_entity_status == 404:
            raise problem(404, "Not Found", f"{what} not found")
        return 204, None

    if TYPE_CHECKING:
        # Implemented by sibling mixins (pipelines.py, users.py, leads.py, contacts.py, events.py, trash.py)
        # and called across them; declared here so each mixin type-checks on its own.
        def stages_in_order(self, pipeline_id: int) -> list[int]: ...
        def default_stage(self, pipeline_id: int) -> int: ...
        def stage_exists(self, pipeline_id: int, status_id: int) -> bool: ...
        def main_pipeline(self) -> int: ...
        def require_admin(self) -> None: ...
        def update_leads(self, items: Any, single_id: int | None = None, status_format: str | None = None) -> Any: ...
        def draft_lead(self, item: dict, errors: list, path: str) -> dict: ...
        def store_lead(self, lead: dict, events: list) -> None: ...
        def create_contact(self, item: dict, events: list) -> int: ...
        def contact_errors(self, item: dict, path: str) -> list: ...
        def update_contacts(self, items: Any, single_id: int | None = None) -> Any: ...
        def leads_of_contact(self, contact_id: int) -> list[int]: ...
        def update_tasks(self, items: Any, single_id: int | None = None) -> Any: ...
        def record_event(self, type_: str, entity_type: str, entity_id: int) -> None: ...
        def delete_entity(self, entity: str, entity_id: int, webhook: bool = True) -> dict: ...
        def restore_entity(self, entity: str, entity_id: int | None, webhook: bool = True) -> dict: ...

    def first_user_id(self) -> int:
        return next(iter(self.users))

    def emit(self, events: list[tuple[str, str, dict]], status_format: str | None = None) -> None:
        """Send (entity, action, legacy item) webhook events; subscriptions.py implements it."""
        raise NotImplementedError

    def account(self) -> dict:
        return entities.account(
            self.config.account_id,
            name="Sandbox Realty",
            subdomain=self.config.subdomain,
            base=self.base_url(),
            current_user_id=self.first_user_id(),
            created_at=seed.BASE_TIME,
            updated_at=seed.BASE_TIME,
            is_technical_account=True,
        )

    def rename(self, body: Any) -> dict:
        """Control action: the account's subdomain changes (reference §1.6). Refresh tokens issued
        before then answer 404 until their holder asks /oauth2/account/current/subdomain."""
        subdomain = body.get("subdomain") if isinstance(body, dict) else None
        if not isinstance(subdomain, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", subdomain):
            raise problem(400, "Bad Request", "subdomain must be lower-case letters, digits and dashes")
        with self.lock:
            previous, self.config.subdomain = self.config.subdomain, subdomain
        return {"subdomain": subdomain, "previous": previous, "domain": f"{subdomain}.amocrm.ru"}

    def account_block(self) -> dict:
        """The `account[...]` part of every webhook body."""
        return {
            "subdomain": self.config.subdomain,
            "id": self.config.account_id,
            "_links": {"self": f"https://{self.config.subdomain}.amocrm.ru"},
        }
