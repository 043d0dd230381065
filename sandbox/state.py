"""The sandbox's amoCRM account: `Sandbox` holds the data and the lock and puts together one mixin
per resource; every API operation runs here, without HTTP.

Operations raise ApiError with amoCRM's status codes and problem+json bodies; the HTTP layer
(server.py) only parses requests and writes responses. Where each part lives:

    account.py        shared data, ids, links, GET /api/v4/account
    oauth.py          codes, token grants, API-key exchange, Bearer check
    traffic.py        rate limit and stats          stats.py      the counters
    pipelines.py      pipelines and statuses        users.py      users and roles
    leads.py          leads                         complex.py    /leads/complex
    contacts.py       contacts                      tasks.py      tasks
    notes.py          lead notes                    events.py     the events log
    trash.py          deleting and restoring (control actions)
    subscriptions.py  /api/v4/webhooks and fanning events out (wire format: webhooks.py)
    triggers.py       control actions that change data and fire webhooks
"""

from __future__ import annotations

import secrets
import threading
from collections import deque

from sandbox import seed
from sandbox.complex import ComplexLeads
from sandbox.config import Config
from sandbox.contacts import Contacts
from sandbox.errors import ApiError, problem
from sandbox.events import EventsLog
from sandbox.leads import Leads
from sandbox.notes import Notes
from sandbox.oauth import OAuth, RefreshToken
from sandbox.pipelines import Pipelines
from sandbox.stats import Stats
from sandbox.subscriptions import Subscriptions
from sandbox.tasks import Tasks
from sandbox.traffic import Traffic
from sandbox.trash import Trash
from sandbox.triggers import Triggers
from sandbox.users import Users
from sandbox.webhooks import Dispatcher

__all__ = ["ApiError", "Config", "Sandbox", "Stats", "problem"]


class Sandbox(
    OAuth,
    Traffic,
    Pipelines,
    Users,
    Leads,
    ComplexLeads,
    Contacts,
    Tasks,
    Notes,
    EventsLog,
    Trash,
    Subscriptions,
    Triggers,
):
    def __init__(self, config: Config | None = None, size: seed.SeedSize | None = None):
        self.config = config or Config()
        self.lock = threading.RLock()
        self.dispatcher = Dispatcher(
            self.account_block,
            answered=self.record_answer,
            answer_limit=lambda: self.config.webhook_timeout,
            retry_scale=lambda: self.config.webhook_retry_scale,
            wanted=self.wants_deliveries,
        )
        self.reset(size)

    def reset(self, size: seed.SeedSize | None = None) -> None:
        with self.lock:
            self.seed(size or seed.SeedSize())
            self.codes: dict[str, dict] = {}
            self.access_tokens: dict[str, int] = {}
            self.refresh_tokens: dict[str, RefreshToken] = {}
            self.signing_key = secrets.token_bytes(32)
            self.webhooks: dict[str, dict] = {}
            self.dispatcher.drop_retries()
            self.invalid_answers: dict[str, list[float]] = {}
            self.stats = Stats()
            self.arrivals: list[float] = []
            self.recent: list[float] = []
            self.last_starts: deque[float] = deque()
            self.throttled = (0.0, None)
            self.refusals: list[float] = []

    def seed(self, size: seed.SeedSize) -> dict:
        with self.lock:
            data = seed.build(size, self.config.account_id)
            self.pipelines = data["pipelines"]
            self.roles, self.users = data["roles"], data["users"]
            self.contacts, self.leads, self.tasks = data["contacts"], data["leads"], data["tasks"]
            self.notes: dict[int, dict] = {}
            self.events: list[dict] = []
            self.next_id = 30_000_000
            return self.counts()

    def counts(self) -> dict:
        return {
            "pipelines": len(self.pipelines),
            "users": len(self.users),
            "contacts": len(self.contacts),
            "leads": len(self.leads),
            "tasks": len(self.tasks),
        }
