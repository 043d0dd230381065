"""amoCRM's API v4 for one account, one attribute per resource.

Services receive an `AmoApi` from the edge and speak in resources and Python values
(`amo.leads.get(17657)`, `amo.contacts.by_ids(ids)`), never in URLs or HAL envelopes.
"""

from __future__ import annotations

import logging

from chalicelib.amo.account import Account
from chalicelib.amo.budget import BULK
from chalicelib.amo.client import AmoClient, TokenSource
from chalicelib.amo.contacts import Contacts
from chalicelib.amo.events import Events
from chalicelib.amo.leads import Leads
from chalicelib.amo.notes import LeadNotes
from chalicelib.amo.oauth import OAuth, StaticToken
from chalicelib.amo.pipelines import Pipelines
from chalicelib.amo.reused_token import ReusedToken
from chalicelib.amo.tasks import Tasks
from chalicelib.amo.users import Roles, Users
from chalicelib.amo.webhooks import Webhooks

log = logging.getLogger(__name__)


class AmoApi:
    def __init__(self, client: AmoClient, oauth: OAuth):
        self.client = client
        self.oauth = oauth
        self.account = Account(client)
        self.leads = Leads(client)
        self.lead_notes = LeadNotes(client)
        self.contacts = Contacts(client)
        self.tasks = Tasks(client)
        self.pipelines = Pipelines(client)
        self.users = Users(client)
        self.roles = Roles(client)
        self.webhooks = Webhooks(client)
        self.events = Events(client)

    def bulk(self) -> AmoApi:
        """The same API admitted in the budget's bulk lane: syncs use it, so interactive work
        (routes, webhooks) keeps its share while they run. A sync reuses its access token for a
        few seconds instead of reading it for every request (reused_token.py)."""
        tokens = self.client.tokens
        reused = tokens if tokens is None or isinstance(tokens, ReusedToken) else ReusedToken(tokens)
        return AmoApi(self.client.using(reused, lane=BULK), self.oauth)

    def read_token(self) -> None:
        """Read the access token ahead of the first request (a sync does it while it writes its
        lease): a source that keeps it (a sync's ReusedToken) then has it. A failure is left for
        the first request, which meets and reports it."""
        if self.client.tokens is None:
            return
        try:
            self.client.tokens.access_token()
        except Exception:  # noqa: BLE001 - see above
            log.debug("reading the access token ahead failed; the first request reads it again", exc_info=True)

    def claim_ahead(self) -> None:
        """Claim request slots ahead of the first request (the shared budget; nothing is sent)."""
        self.client.limiter.claim_ahead(self.client.lane)

    def budget(self) -> dict:
        """What the request budget says now (paused, blocked, shared or local)."""
        return self.client.limiter.describe()

    def authorized_by(self, tokens: TokenSource) -> AmoApi:
        """The same account, session and limiter, with another token source."""
        return AmoApi(self.client.using(tokens), self.oauth)

    def with_access_token(self, access_token: str) -> AmoApi:
        """Calls made with one known access token (e.g. to identify the account of a fresh code)."""
        return self.authorized_by(StaticToken(access_token))
