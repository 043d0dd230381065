"""amoCRM's paths: the route tables of API v4 (Bearer token) and of OAuth (no token), each
route a method, a path pattern and a handler `(request, *path groups) -> (status, body)`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

from sandbox.errors import problem
from sandbox.state import Sandbox


@dataclass
class Request:
    query: dict[str, list[str]]
    raw: bytes
    headers: Message  # as http.server parses them: names are case-insensitive

    @property
    def body(self) -> Any:
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            raise problem(400, "Bad Request", "Request body is not valid JSON") from None


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[..., tuple[int, Any]]


def table(*rows: tuple[str, str, Callable[..., tuple[int, Any]]]) -> list[Route]:
    return [Route(method, re.compile(pattern), handler) for method, pattern, handler in rows]


def no_content(action: Callable[[], None]) -> tuple[int, None]:
    """Run `action` for its effect; the answer is 204 with no body."""
    action()
    return 204, None


def if_modified_since(handler: Callable[..., tuple[int, Any]]) -> Callable[..., tuple[int, Any]]:
    """A single-entity GET answers 304 with no body when the entity has not changed since the
    request's `If-Modified-Since` (Kommo recommends the header for repeated reads, reference §13)."""

    def conditional(request: Request, *groups: str) -> tuple[int, Any]:
        status, body = handler(request, *groups)
        since = _http_date(request.headers.get("If-Modified-Since"))
        if status == 200 and since is not None and body["updated_at"] <= since:
            return 304, None
        return status, body

    return conditional


def _http_date(value: str | None) -> int | None:
    """An HTTP date as unix seconds (dates without a zone are GMT); None when absent or unreadable."""
    try:
        moment = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return None if moment is None else int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp())


def api_routes(s: Sandbox) -> list[Route]:
    return table(
        ("GET", r"/api/v4/account", lambda r: (200, s.account())),
        ("GET", r"/api/v4/leads/pipelines", lambda r: (200, s.list_pipelines())),
        ("GET", r"/api/v4/leads/pipelines/(\d+)", lambda r, p: (200, s.get_pipeline(int(p)))),
        (
            "GET",
            r"/api/v4/leads/pipelines/(\d+)/statuses",
            lambda r, p: (200, {"_embedded": {"statuses": s.get_pipeline(int(p))["_embedded"]["statuses"]}}),
        ),
        (
            "PATCH",
            r"/api/v4/leads/pipelines/(\d+)/statuses/(\d+)",
            lambda r, p, st: (200, s.update_status(int(p), int(st), r.body)),
        ),
        (
            "DELETE",
            r"/api/v4/leads/pipelines/(\d+)/statuses/(\d+)",
            lambda r, p, st: no_content(lambda: s.delete_status(int(p), int(st))),
        ),
        ("GET", r"/api/v4/users", lambda r: s.list_users(r.query)),
        ("GET", r"/api/v4/roles", lambda r: s.list_roles(r.query)),
        ("GET", r"/api/v4/leads", lambda r: s.list_leads(r.query)),
        ("POST", r"/api/v4/leads", lambda r: (200, s.create_leads(r.body))),
        ("PATCH", r"/api/v4/leads", lambda r: (200, s.update_leads(r.body))),
        ("POST", r"/api/v4/leads/complex", lambda r: (200, s.create_complex_leads(r.body))),
        ("GET", r"/api/v4/leads/notes", lambda r: s.list_notes(None, r.query)),
        ("POST", r"/api/v4/leads/notes", lambda r: (200, s.create_notes(r.body))),
        ("GET", r"/api/v4/leads/(\d+)/notes", lambda r, i: s.list_notes(int(i), r.query)),
        ("POST", r"/api/v4/leads/(\d+)/notes", lambda r, i: (200, s.create_notes(r.body, int(i)))),
        ("GET", r"/api/v4/leads/(\d+)", if_modified_since(lambda r, i: s.get_lead(int(i), r.query))),
        ("PATCH", r"/api/v4/leads/(\d+)", lambda r, i: (200, s.update_leads(r.body, int(i)))),
        ("GET", r"/api/v4/contacts", lambda r: s.list_contacts(r.query)),
        ("POST", r"/api/v4/contacts", lambda r: (200, s.create_contacts(r.body))),
        ("PATCH", r"/api/v4/contacts", lambda r: (200, s.update_contacts(r.body))),
        ("GET", r"/api/v4/contacts/(\d+)", if_modified_since(lambda r, i: s.get_contact(int(i), r.query))),
        ("PATCH", r"/api/v4/contacts/(\d+)", lambda r, i: (200, s.update_contacts(r.body, int(i)))),
        ("GET", r"/api/v4/tasks", lambda r: s.list_tasks(r.query)),
        ("POST", r"/api/v4/tasks", lambda r: (200, s.create_tasks(r.body))),
        ("PATCH", r"/api/v4/tasks", lambda r: (200, s.update_tasks(r.body))),
        ("GET", r"/api/v4/tasks/(\d+)", if_modified_since(lambda r, i: s.get_task(int(i)))),
        ("PATCH", r"/api/v4/tasks/(\d+)", lambda r, i: (200, s.update_tasks(r.body, int(i)))),
        ("GET", r"/api/v4/events", lambda r: s.list_events(r.query)),
        ("GET", r"/api/v4/events/([0-9a-z]+)", lambda r, i: (200, s.get_event(i))),
        ("GET", r"/api/v4/webhooks", lambda r: s.list_webhooks(r.query)),
        ("POST", r"/api/v4/webhooks", lambda r: (200, s.subscribe(r.body))),
        ("DELETE", r"/api/v4/webhooks", lambda r: no_content(lambda: s.unsubscribe(r.body))),
    )


def oauth_routes(s: Sandbox, deliver_exchanged_code: Callable[[dict], None]) -> list[Route]:
    def exchange(request: Request) -> tuple[int, None]:
        deliver_exchanged_code(s.check_api_key_exchange(request.body))
        return 202, None

    return table(
        ("POST", r"/oauth2/access_token", lambda r: (200, s.token_grant(r.body))),
        ("POST", r"/oauth2/exchange_api_key", exchange),
        (
            "GET",
            r"/oauth2/account/current/subdomain",
            lambda r: (200, s.current_subdomain(r.headers.get("X-Refresh-Token"), r.headers.get("Host"))),
        ),
    )
