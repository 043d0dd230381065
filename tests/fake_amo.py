"""amoCRM list endpoints served from Python lists through `responses` callbacks.

Answers like amoCRM: HAL pages of at most `limit` items with `_links.next`, 204 with no body
past the end, `filter[id][]` on contacts, `with=contacts` on leads, 304 with no body to a
single GET whose `If-Modified-Since` is not older than the entity's `updated_at`. Every
request is recorded by `responses`, so tests can count them. The entities to fill it with are
tests/fixtures.py's `lead`, `contact` and `task`.
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

from sandbox import entities
from tests.fixtures import HOST


class FakeAmo:
    def __init__(self, mock):
        self.mock = mock
        self.leads: list[dict] = []
        self.contacts: dict[int, dict] = {}
        self.tasks: list[dict] = []
        self.urls: list[str] = []
        self.ignore_filters = False  # an account not enrolled in API filtering (reference §13)
        self.answers_404: dict[int, dict] = {}  # id → the 404 problem body a single GET of it answers
        self.events: list[dict] = []  # the events log, newest first (reference §10.1)
        mock.add_callback("GET", re.compile(rf"{re.escape(HOST)}/api/v4/leads(\?.*)?$"), self._list_leads)
        mock.add_callback("GET", re.compile(rf"{re.escape(HOST)}/api/v4/contacts(\?.*)?$"), self._list_contacts)
        mock.add_callback("GET", re.compile(rf"{re.escape(HOST)}/api/v4/tasks(\?.*)?$"), self._list_tasks)
        mock.add_callback("GET", re.compile(rf"{re.escape(HOST)}/api/v4/leads/\d+(\?.*)?$"), self._get_lead)
        mock.add_callback("GET", re.compile(rf"{re.escape(HOST)}/api/v4/tasks/\d+(\?.*)?$"), self._get_task)
        mock.add_callback("GET", re.compile(rf"{re.escape(HOST)}/api/v4/contacts/\d+(\?.*)?$"), self._get_contact)
        mock.add_callback("GET", re.compile(rf"{re.escape(HOST)}/api/v4/events(\?.*)?$"), self._list_events)

    @staticmethod
    def _page(items, key, request, path):
        self_url = request.url
        query = parse_qs(urlsplit(self_url).query)
        limit = int(query.get("limit", ["50"])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * limit : page * limit]
        if not chunk:
            return 204, {}, ""
        body = entities.page(
            key, chunk, url=f"{HOST}{path}", number=page, limit=limit, has_next=page * limit < len(items)
        )
        return 200, {"Content-Type": "application/hal+json"}, json.dumps(body)

    def _list_events(self, request):
        self.urls.append(request.url)
        return self._page(self.events, "events", request, "/api/v4/events")

    def _list_leads(self, request):
        self.urls.append(request.url)
        query = parse_qs(urlsplit(request.url).query)
        ids = {int(i) for i in query.get("filter[id][]", [])}
        if self.ignore_filters:
            ids = set()
        items = [dict(item) for item in self._window(self.leads, query) if not ids or item["id"] in ids]
        if "contacts" not in ",".join(query.get("with", [])):
            for item in items:
                item["_embedded"] = {k: v for k, v in item["_embedded"].items() if k != "contacts"}
        return self._page(items, "leads", request, "/api/v4/leads")

    def _list_contacts(self, request):
        self.urls.append(request.url)
        query = parse_qs(urlsplit(request.url).query)
        ids = [int(i) for i in query.get("filter[id][]", [])] if not self.ignore_filters else []
        items = [self.contacts[i] for i in ids if i in self.contacts] if ids else list(self.contacts.values())
        return self._page(self._window(items, query), "contacts", request, "/api/v4/contacts")

    def _window(self, items, query):
        """`filter[updated_at][from|to]` (dropped when the account ignores filters) and
        `order[updated_at]=asc` (reference §5.1); otherwise the items in their own order."""
        low = int(query.get("filter[updated_at][from]", ["0"])[0])
        high = int(query.get("filter[updated_at][to]", [str(2**62)])[0])
        if self.ignore_filters:
            low, high = 0, 2**62
        items = [item for item in items if low <= item["updated_at"] <= high]
        if query.get("order[updated_at]") == ["asc"]:
            items = sorted(items, key=lambda item: (item["updated_at"], item["id"]))
        return items

    def _list_tasks(self, request):
        self.urls.append(request.url)
        return self._page(self.tasks, "tasks", request, "/api/v4/tasks")

    def _one(self, items, request):
        """A single entity by the id at the end of the path; amoCRM answers 204 when there is none
        (or the 404 of `answers_404`)."""
        wanted = int(urlsplit(request.url).path.rsplit("/", 1)[1])
        if wanted in self.answers_404:
            return 404, {"Content-Type": "application/problem+json"}, json.dumps(self.answers_404[wanted])
        found = next((item for item in items if item["id"] == wanted), None)
        if found is None:
            return 204, {}, ""
        since = request.headers.get("If-Modified-Since")
        if since and found["updated_at"] <= parsedate_to_datetime(since).timestamp():
            return 304, {}, ""
        return 200, {"Content-Type": "application/hal+json"}, json.dumps(found)

    def _get_lead(self, request):
        return self._one(self.leads, request)

    def _get_task(self, request):
        return self._one(self.tasks, request)

    def _get_contact(self, request):
        self.urls.append(request.url)
        return self._one(list(self.contacts.values()), request)

    def requests_to(self, path):
        return [u for u in self.urls if urlsplit(u).path == path]
