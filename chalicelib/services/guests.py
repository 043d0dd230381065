"""The guest of a lead: name, phone and e-mail of its main contact, found for many leads at once.

A lead sync needs the main contact of every lead, and must never fetch one contact per lead.
`GuestDirectory` finds each contact id in this order:
  1. its own cache of recently seen contacts (bounded, least recently used go first);
  2. DynamoDB, where mirrored contacts are (BatchGetItem, 100 ids a call);
  3. amoCRM, by id in batches of up to 250 (one request per batch), stored as they arrive.

Every contact id the directory has heard of is in exactly one state:
  known      in the cache: its Guest, or None when amoCRM answered that it does not exist;
  missing    neither cached nor stored: waits to be requested from amoCRM;
  requested  a batch GET for it is running on the pool.

What amoCRM answers is checked against what was asked (reference §13):
- an id-filtered answer holding ids that were not asked for means the account ignores
  filters: nothing is concluded from it, the directory says so (`on_filters_ignored`, which
  the sync uses to remember it for the account) and for the rest of the sync reads each
  missing contact by its own GET, at most MAX_SINGLE_READS of them; the contacts past that are
  `deferred` (their leads wait for a later run, which finds the ones read now in DynamoDB).
  It never lists the whole contact base: that is the "uncontrolled iteration through all
  data" amoCRM restricts accounts for (reference §3.4);
- an id that was asked for but not returned is not taken as deleted: it is read on its own,
  and only amoCRM's 204, or a 404 naming the contact, to that direct GET makes it None.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

from chalicelib.amo.api import AmoApi
from chalicelib.amo.contacts import ContactInfo, read_contact
from chalicelib.amo.resource import IDS_PER_REQUEST
from chalicelib.models import AmoContact
from chalicelib.services import mirror

log = logging.getLogger(__name__)

CACHE_SIZE = 3_000
MAX_SINGLE_READS = 500  # contacts read one by one in a sync once the id filter is ignored (~70 s at 7 rps)


class Guest(NamedTuple):
    """What a lead needs of its main contact; small, so thousands fit in the cache."""

    name: str | None
    phone: str | None
    email: str | None


def guest_of(contact: AmoContact | ContactInfo | None) -> Guest | None:
    return Guest(contact.name, contact.phone, contact.email) if contact is not None else None


_GUEST_NAMES = mirror.attribute_names(AmoContact, Guest._fields)


def guest_of_item(item: mirror.Item) -> Guest:
    """The Guest of a stored contact as DynamoDB holds it (no model built for it)."""
    name, phone, email = (mirror.text(item, attribute) for attribute in _GUEST_NAMES)
    return Guest(name, phone, email)


class FilterIgnored(Exception):
    """amoCRM answered an id-filtered request with ids that were not asked for."""


def fetch_contacts(amo: AmoApi, ids: list[int]) -> dict[int, ContactInfo | None]:
    """The contacts with these ids from amoCRM: None for each one amoCRM says does not exist.

    Raises FilterIgnored when the account ignores the id filter.
    """
    asked = set(ids)
    infos, _ = mirror.read_all(amo.contacts.by_ids(ids), read_contact)
    if any(info.id not in asked for info in infos):
        raise FilterIgnored("amoCRM ignored the id filter on contacts")
    found: dict[int, ContactInfo | None] = {info.id: info for info in infos}
    for contact_id in ids:
        if contact_id not in found:  # not returned is not deleted: ask for it directly
            raw = amo.contacts.get(contact_id)
            found[contact_id] = read_contact(raw) if raw else None
    return found


class GuestDirectory:
    def __init__(
        self,
        amo: AmoApi,
        *,
        pool: ThreadPoolExecutor,
        save: Callable[[list[ContactInfo]], object],
        on_filters_ignored: Callable[[str], object],
        cache_size: int = CACHE_SIZE,
    ):
        self.amo = amo
        self._pool = pool
        self._save = save
        self._on_filters_ignored = on_filters_ignored
        self._cache_size = cache_size
        self._cache: OrderedDict[int, Guest | None] = OrderedDict()
        self.missing: set[int] = set()
        self.requested: set[int] = set()
        self._fetches: list[tuple[Future, list[int]]] = []
        self._saves: list[Future] = []
        self._lock = threading.Lock()
        self.filters_ignored = False
        self._single_reads_left = MAX_SINGLE_READS
        self.deferred: set[int] = set()  # not read in this sync: their leads wait for a later run

    # -- states ---------------------------------------------------------------------------------

    def is_pending(self, contact_id: int | None) -> bool:
        """True while a lead with this main contact must wait (the contact is not known yet)."""
        return contact_id is not None and (contact_id in self.missing or contact_id in self.requested)

    def guest(self, contact_id: int | None) -> Guest | None:
        return self._cache.get(contact_id) if contact_id is not None else None

    def _remember(self, contact_id: int, guest: Guest | None) -> None:
        self._cache[contact_id] = guest
        self._cache.move_to_end(contact_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # -- transitions ------------------------------------------------------------------------------

    def learn(self, ids: Iterable[int]) -> None:
        """Sort ids not seen yet into known (cache, DynamoDB) and missing."""
        unknown = [
            i for i in dict.fromkeys(ids) if i not in self._cache and i not in self.missing and i not in self.requested
        ]
        stored = mirror.batch_get_items(AmoContact, unknown)
        for contact_id in unknown:
            if contact_id in stored:
                self._remember(contact_id, guest_of_item(stored[contact_id]))
            else:
                self.missing.add(contact_id)

    def request_full_batches(self) -> None:
        """A batch goes out as soon as 250 ids are missing: the next page may add more."""
        while len(self.missing) >= IDS_PER_REQUEST:
            self._request(sorted(self.missing)[:IDS_PER_REQUEST])

    def request_all(self) -> None:
        if self.missing:
            self._request(sorted(self.missing))

    def _request(self, ids: list[int]) -> None:
        self.missing.difference_update(ids)
        self.requested.update(ids)
        self._fetches.append((self._pool.submit(self._fetch, ids), ids))

    def _fetch(self, ids: list[int]) -> dict[int, Guest | None]:
        """Runs on the pool. Storing the contacts is a separate job: waiting leads need only
        the guests, not the DynamoDB write."""
        if not self.filters_ignored:
            try:
                found = fetch_contacts(self.amo, ids)
            except FilterIgnored:
                self.filters_ignored = True
                self._on_filters_ignored("contacts by id")
                log.warning("amoCRM ignores the id filter on contacts for this account; reading them one by one")
            else:
                self._store([info for info in found.values() if info is not None])
                return {contact_id: guest_of(found.get(contact_id)) for contact_id in ids}
        return self._guests_one_by_one(ids)

    def _store(self, infos: list[ContactInfo]) -> None:
        if infos:
            with self._lock:
                self._saves.append(self._pool.submit(self._save, infos))

    def _guests_one_by_one(self, wanted: list[int]) -> dict[int, Guest | None]:
        """Without the id filter: each contact by its own GET (stored as it comes), while the
        sync's MAX_SINGLE_READS last; the others are deferred, not in the answer."""
        guests: dict[int, Guest | None] = {}
        for contact_id in wanted:
            with self._lock:
                allowed = self._single_reads_left > 0
                self._single_reads_left -= allowed
                if not allowed:
                    self.deferred.add(contact_id)
            if allowed:
                raw = self.amo.contacts.get(contact_id)
                info = read_contact(raw) if raw else None
                self._store([info] if info else [])
                guests[contact_id] = guest_of(info)
        return guests

    def collect(self, wait: bool) -> None:
        """Move finished fetches into the cache (all of them, waiting, when `wait`)."""
        still_running = []
        for future, ids in self._fetches:
            if not wait and not future.done():
                still_running.append((future, ids))
                continue
            for contact_id, guest in future.result().items():
                self._remember(contact_id, guest)
            self.requested.difference_update(ids)
        self._fetches = still_running

    def finish_saves(self) -> None:
        with self._lock:
            saves, self._saves = self._saves, []
        for future in saves:
            future.result()
