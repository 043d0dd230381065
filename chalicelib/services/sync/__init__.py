"""The sync: amoCRM's leads, contacts and tasks mirrored into DynamoDB, in full or incrementally.

runs.py             the entry points: one entity, sync-all, the schedule's run, incremental runs, continuations
run.py              one pass over an entity's pages (a `Run`: what it is asked to do) and its `Outcome`
entities.py         what each entity is synced with: its amoCRM list, the filter it takes, its page writer
jobs.py             a run that continues across invocations (a SyncJob): handed over, claimed, finished, failed
lease.py            the one sync allowed to run at a time in the whole deployment
state.py            what the schedule remembers between runs: where each entity's last complete run started
lead_pages.py       pages of amoCRM leads written as Lead records, their guests fetched in batches
account_filters.py  accounts that ignore amoCRM's list filters: noticed, remembered, synced in full now and then
deletions.py        deletes no webhook delivered, read from amoCRM's events log by every incremental run

What holds whichever way a run goes:
- One sync at a time: every run takes the lease (lease.py); a continuation carries it on and
  releases it when its job is done, so a second sync is refused (SyncRunning) or skipped.
- Pages are addressed by number and every write is an idempotent upsert, so a continuation
  (a fresh invocation going on from the page where the last one stopped) neither loses nor
  duplicates anything.
- An incremental run fetches what amoCRM changed between the start of the entity's last complete
  run minus an overlap (which heals webhooks that never arrived) and this run's start.
"""

from chalicelib.services.sync.lease import SyncRunning
from chalicelib.services.sync.runs import (
    get_job,
    request_incremental,
    resume,
    resume_message,
    run_incremental,
    scheduled_sync,
    sync_all,
    sync_contacts,
    sync_entity,
    sync_leads_from_amo,
    sync_tasks,
)
from chalicelib.services.sync.state import SYNCABLE

__all__ = [
    "SYNCABLE",
    "SyncRunning",
    "get_job",
    "request_incremental",
    "resume",
    "resume_message",
    "run_incremental",
    "scheduled_sync",
    "sync_all",
    "sync_contacts",
    "sync_entity",
    "sync_leads_from_amo",
    "sync_tasks",
]
