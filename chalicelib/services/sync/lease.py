"""At most one sync runs at a time in the whole deployment.

Two syncs at once would share the amoCRM budget for no gain and write the same items twice.
A run takes a lease (a conditional write on SyncState `running`); a second run gets
SyncRunning (409 with the running job's id; the schedule skips). A run that hands over to a
continuation passes the lease on with it: the continuation renews it and releases it when
the job is done. A holder that died stops blocking others when its lease expires, just after
the longest a Lambda can run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from pynamodb.expressions.update import Action

from chalicelib import logs
from chalicelib.locking import wrote
from chalicelib.models import SyncState
from chalicelib.services.errors import Conflict

LEASE_SECONDS = 16 * 60  # Lambda's 15 minutes, and a little more


class SyncRunning(Conflict):
    def __init__(self, job_id: str | None):
        super().__init__(
            f"a sync is already running (job {job_id}); follow it at sync-jobs/{job_id}"
            if job_id
            else "a sync is already running"
        )
        self.job_id = job_id


class Lease:
    def __init__(self, owner: str):
        self.owner = owner
        self.handed_over = False

    def hand_over(self, job_id: str) -> None:
        """A continuation carries the run on: the lease stays taken, and names its job."""
        self.handed_over = True
        _update(self.owner, job_id=job_id)


def _update(owner: str, job_id: str | None = None) -> None:
    actions: list[Action] = [SyncState.lease_until.set(time.time() + LEASE_SECONDS)]
    if job_id:
        actions.append(SyncState.job_id.set(job_id))
    wrote(lambda: SyncState(entity=SyncState.RUNNING_KEY).update(actions=actions, condition=SyncState.owner == owner))


def take(owner: str | None = None) -> Lease:
    owner = owner or uuid.uuid4().hex
    now = time.time()
    lease = SyncState(entity=SyncState.RUNNING_KEY, owner=owner, lease_until=now + LEASE_SECONDS, job_id=owner)
    if not wrote(
        lambda: lease.save(
            condition=SyncState.entity.does_not_exist() | (SyncState.lease_until < now) | (SyncState.owner == owner)
        )
    ):
        raise SyncRunning(running_job())
    return Lease(owner)


def renew(owner: str) -> None:
    _update(owner)


def release(owner: str) -> None:
    wrote(lambda: SyncState(entity=SyncState.RUNNING_KEY).delete(condition=SyncState.owner == owner))


def running_job() -> str | None:
    try:
        item = SyncState.get(SyncState.RUNNING_KEY, consistent_read=True)
    except SyncState.DoesNotExist:
        return None
    return item.job_id if (item.lease_until or 0) >= time.time() else None


@contextmanager
def exclusive(meanwhile: Sequence[Callable[[], object]] = ()) -> Iterator[Lease]:
    """The one running sync; released on the way out unless a continuation carries it on.
    `meanwhile`: work that sends nothing to amoCRM (reading the token, claiming budget slots),
    each on a thread of its own while the lease is written, and done before the block starts
    (or SyncRunning is raised), so a sync's first request waits for the slowest of them, not
    for their sum. What they raise is left to the sync, which does the same work again."""
    with logs.ThreadPool(max_workers=max(1, len(meanwhile)), thread_name_prefix="sync-start") as pool:
        ahead = [pool.submit(work) for work in meanwhile]
        try:
            lease = take()
        finally:
            for work in ahead:
                work.exception()  # waited for, not raised
    try:
        yield lease
    finally:
        if not lease.handed_over:
            release(lease.owner)
