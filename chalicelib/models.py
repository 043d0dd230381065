"""PynamoDB models, one per DynamoDB table (SPEC §2). No business logic here.

Table names are `TABLE_PREFIX` + a fixed suffix, resolved on every access (not at import), so
Lambda, `chalice local`, the CLI and the tests can all point at their own tables through the
environment. PynamoDB rebuilds its cached connection when the name changes.
Every table is on-demand (PAY_PER_REQUEST). No model sets `Meta.host`: botocore resolves
AWS_ENDPOINT_URL itself, which is how the local stack reaches the moto server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, overload

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from chalicelib import aws, settings

aws.share_loader_with_pynamodb()  # before any model connects: one parse of botocore's JSON per process


class _PrefixedTableName(type):
    """Metaclass for `Meta`: `table_name` is the configured prefix + the model's suffix."""

    table_suffix: str

    @property
    def table_name(cls) -> str:
        return settings.table_prefix() + cls.table_suffix


def _meta(suffix: str, **options: object) -> Any:
    """A model's `Meta`, built at run time (so typed Any: PynamoDB's MetaProtocol lists every
    option it knows, of which a `Meta` sets only a few)."""
    return _PrefixedTableName("Meta", (), {"table_suffix": suffix, "billing_mode": "PAY_PER_REQUEST", **options})


def _index(name: str, projection: object = None) -> type:
    """`Meta` of a global secondary index: its name and projection (all attributes unless given)."""
    return type("Meta", (), {"index_name": name, "projection": projection or AllProjection()})


class IntegerAttribute(NumberAttribute):
    """A number that is always an integer (an amoCRM id, a sort order, unix seconds from amoCRM).
    Stored and read exactly like NumberAttribute; only its type says int, not float."""

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: Any) -> Self: ...
        @overload
        def __get__(self, instance: Any, owner: Any) -> int: ...
        def __get__(self, instance: Any, owner: Any) -> Self | int: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class BaseModel(Model):
    """Adds our own created_at / updated_at (UTC) to every table."""

    created_at = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)

    def touch(self) -> None:
        now = utc_now()
        if self.created_at is None:
            self.created_at = now
        self.updated_at = now

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for API responses: datetimes become ISO strings, JSON attributes stay
        structured, and internal bookkeeping (version, lease, TTL) is left out."""
        data = {}
        for name in self.get_attributes():
            value = getattr(self, name)
            if name in ("version", "expires_at"):
                continue
            data[name] = value.isoformat() if isinstance(value, datetime) else value
        return data


class AmoToken(BaseModel):
    """The single OAuth token item. `version` gives optimistic locking; the lease fields make
    sure only one invocation at a time spends the (single-use) refresh token."""

    Meta = _meta("tokens")
    SINGLETON_KEY = "amocrm"

    pk = UnicodeAttribute(hash_key=True, default=SINGLETON_KEY)
    access_token = UnicodeAttribute(null=True)
    refresh_token = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    account_id = IntegerAttribute(null=True)
    subdomain = UnicodeAttribute(null=True)
    domain = UnicodeAttribute(null=True)
    needs_reauth = BooleanAttribute(default=False)
    last_error = UnicodeAttribute(null=True)
    refresh_lease_owner = UnicodeAttribute(null=True)
    refresh_lease_until = NumberAttribute(null=True)
    last_refreshed_at = NumberAttribute(null=True)
    version = VersionAttribute()


class OAuthState(BaseModel):
    """A `state` value the service issued; consumed (deleted) by the one callback that uses it."""

    Meta = _meta("oauth-states")

    state = UnicodeAttribute(hash_key=True)
    purpose = UnicodeAttribute(default="authorize")
    expires_at = TTLAttribute()


class AmoPipeline(BaseModel):
    Meta = _meta("pipelines")

    id = IntegerAttribute(hash_key=True)
    name = UnicodeAttribute(default="")
    sort = IntegerAttribute(default=0)
    is_main = BooleanAttribute(default=False)
    is_unsorted_on = BooleanAttribute(default=False)
    is_archive = BooleanAttribute(default=False)
    account_id = IntegerAttribute(null=True)


class StageIdIndex(GlobalSecondaryIndex):
    """Finds every pipeline's copy of a stage id (142 and 143 exist in every pipeline)."""

    Meta = _index("stage-id-index")
    id = IntegerAttribute(hash_key=True)


class AmoStage(BaseModel):
    Meta = _meta("stages")

    pipeline_id = IntegerAttribute(hash_key=True)
    id = IntegerAttribute(range_key=True)
    name = UnicodeAttribute(default="")
    sort = IntegerAttribute(default=0)
    color = UnicodeAttribute(null=True)
    type = IntegerAttribute(default=0)
    mapped_status = UnicodeAttribute(null=True)
    mapping_source = UnicodeAttribute(null=True)
    mapped_at = IntegerAttribute(null=True)  # unix seconds of the last change of mapped_status
    mapping_version = IntegerAttribute(null=True)  # +1 on every change of mapped_status
    account_id = IntegerAttribute(null=True)
    by_stage_id = StageIdIndex()


class AmoUser(BaseModel):
    Meta = _meta("users")

    id = IntegerAttribute(hash_key=True)
    name = UnicodeAttribute(default="")
    email = UnicodeAttribute(null=True)
    lang = UnicodeAttribute(null=True)
    role_id = IntegerAttribute(null=True)
    account_id = IntegerAttribute(null=True)


class AmoRole(BaseModel):
    Meta = _meta("roles")

    id = IntegerAttribute(hash_key=True)
    name = UnicodeAttribute(default="")
    account_id = IntegerAttribute(null=True)


class AmoContact(BaseModel):
    Meta = _meta("contacts")

    id = IntegerAttribute(hash_key=True)
    name = UnicodeAttribute(default="")
    first_name = UnicodeAttribute(null=True)
    last_name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    responsible_user_id = IntegerAttribute(null=True)
    amo_created_at = IntegerAttribute(null=True)
    amo_updated_at = IntegerAttribute(null=True)
    account_id = IntegerAttribute(null=True)


class TaskEntityIndex(GlobalSecondaryIndex):
    """Tasks of one entity: (entity_type, entity_id)."""

    Meta = _index("entity-index")
    entity_type = UnicodeAttribute(hash_key=True)
    entity_id = IntegerAttribute(range_key=True)


class AmoTask(BaseModel):
    Meta = _meta("tasks")

    id = IntegerAttribute(hash_key=True)
    text = UnicodeAttribute(default="")
    task_type_id = IntegerAttribute(null=True)
    complete_till = IntegerAttribute(null=True)
    is_completed = BooleanAttribute(default=False)
    responsible_user_id = IntegerAttribute(null=True)
    entity_id = IntegerAttribute(null=True)
    entity_type = UnicodeAttribute(null=True)
    duration = IntegerAttribute(null=True)
    result_text = UnicodeAttribute(null=True)
    created_by = IntegerAttribute(null=True)
    updated_by = IntegerAttribute(null=True)
    amo_created_at = IntegerAttribute(null=True)
    amo_updated_at = IntegerAttribute(null=True)
    account_id = IntegerAttribute(null=True)
    is_unlinked = BooleanAttribute(default=False)
    by_entity = TaskEntityIndex()


class AmoLeadIdIndex(GlobalSecondaryIndex):
    Meta = _index("amo-lead-id-index")
    amo_lead_id = IntegerAttribute(hash_key=True)


class AmoContactIdIndex(GlobalSecondaryIndex):
    """Leads whose main contact is a given amoCRM contact (to refresh their guest fields)."""

    Meta = _index("amo-contact-id-index")
    amo_contact_id = IntegerAttribute(hash_key=True)


class LeadStageIndex(GlobalSecondaryIndex):
    """Leads in one amoCRM stage: (stage id, pipeline id), with just what re-deriving their status
    needs, so the index stays small however large custom fields are."""

    Meta = _index("stage-index", IncludeProjection(["status", "amo_lead_id"]))
    amo_status_id = IntegerAttribute(hash_key=True)
    amo_pipeline_id = IntegerAttribute(range_key=True)


class Lead(BaseModel):
    """Our lead (id is our UUID), linked to an amoCRM lead by amo_lead_id."""

    Meta = _meta("leads")

    id = UnicodeAttribute(hash_key=True)
    amo_lead_id = IntegerAttribute(null=True)
    amo_contact_id = IntegerAttribute(null=True)
    responsible_user_id = IntegerAttribute(null=True)
    status = UnicodeAttribute(default="NEW")
    amo_pipeline_id = IntegerAttribute(null=True)
    amo_status_id = IntegerAttribute(null=True)
    guest_name = UnicodeAttribute(null=True)
    guest_phone = UnicodeAttribute(null=True)
    guest_email = UnicodeAttribute(null=True)
    price = IntegerAttribute(null=True)
    property_id = UnicodeAttribute(null=True)
    custom_fields = JSONAttribute(null=True)
    amo_updated_at = IntegerAttribute(null=True)
    account_id = IntegerAttribute(null=True)
    by_amo_lead_id = AmoLeadIdIndex()
    by_amo_contact_id = AmoContactIdIndex()
    by_stage = LeadStageIndex()


class AmoActivityLog(BaseModel):
    """One record per received webhook event, time-ordered per entity; expires by TTL."""

    Meta = _meta("activity-log")

    entity_key = UnicodeAttribute(hash_key=True)  # "<entity_type>#<amo id>"
    event_key = UnicodeAttribute(range_key=True)  # "<received_at ms, zero-padded>#<event id>"
    event_type = UnicodeAttribute()
    entity_type = UnicodeAttribute()
    entity_id = IntegerAttribute(null=True)
    account_id = IntegerAttribute(null=True)
    received_at = NumberAttribute()
    outcome = UnicodeAttribute()
    payload = JSONAttribute(null=True)
    expires_at = TTLAttribute()


class SyncState(BaseModel):
    """Per entity (leads, contacts, tasks): when the last complete sync started, for incremental
    runs. The item `running` is the lease of the one sync that may run at a time."""

    Meta = _meta("sync-state")
    RUNNING_KEY = "running"

    entity = UnicodeAttribute(hash_key=True)
    last_success_started_at = NumberAttribute(null=True)
    # where the next incremental run starts, on amoCRM's clock (sync/state.py); absent: the start above
    cursor = NumberAttribute(null=True)
    last_result = JSONAttribute(null=True)
    listed_items = NumberAttribute(null=True)  # how long the list was when last read whole (sync/state.py)
    owner = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    job_id = UnicodeAttribute(null=True)


class SyncJob(BaseModel):
    """A sync that continues across Lambda invocations: where the next invocation resumes."""

    Meta = _meta("sync-jobs")

    job_id = UnicodeAttribute(hash_key=True)
    entity = UnicodeAttribute()
    status = UnicodeAttribute(default="running")  # running | done | failed
    params = JSONAttribute(default=dict)
    next_page = NumberAttribute(null=True)  # where a running job resumes
    synced = NumberAttribute(default=0)
    errors = JSONAttribute(default=list)
    started_at = NumberAttribute()
    invocations = NumberAttribute(default=1)
    claim_token = UnicodeAttribute(null=True)  # the invocation running next_page now (services/sync/jobs.py)
    claimed_until = NumberAttribute(null=True)  # unix time its claim ends
    expires_at = TTLAttribute(null=True)


class IdempotencyRecord(BaseModel):
    """The first result of a request carrying an Idempotency-Key, replayed for retries."""

    Meta = _meta("idempotency")

    key = UnicodeAttribute(hash_key=True)
    state = UnicodeAttribute(default="in_progress")  # in_progress | sending | applied | done | unknown
    request_hash = UnicodeAttribute()
    claim_id = UnicodeAttribute(null=True)  # the attempt holding the key (services/idempotency.py)
    response = JSONAttribute(null=True)
    running_until = NumberAttribute(null=True)  # an in-progress attempt's own deadline (unix time)
    expires_at = TTLAttribute()


class Notification(BaseModel):
    """Outbox of Main Backend notifications, one per event id (delivery is at least once)."""

    Meta = _meta("notifications")

    event_id = UnicodeAttribute(hash_key=True)
    payload = JSONAttribute()
    state = UnicodeAttribute(default="pending")  # pending | sent | skipped | dead
    attempts = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    correlation_id = UnicodeAttribute(null=True)  # of the change that recorded it: its delivery logs under it
    expires_at = TTLAttribute(null=True)


class RateBudget(BaseModel):
    """The deployment's shared amoCRM request budget (amo/budget/): one item per block of
    time slots (`block#<n>`: counters of slots handed out) and one `state` item (pauses, the
    block by amoCRM, which lanes have work). Calls fail fast: the caller falls back to its own
    pace rather than wait on this table."""

    Meta = _meta(
        "rate-budget", connect_timeout_seconds=1, read_timeout_seconds=1, max_retry_attempts=1, base_backoff_ms=20
    )
    STATE_KEY = "state"

    key = UnicodeAttribute(hash_key=True)
    # stored as `p` and `g`, the names they had before: during a rolling deploy old and new
    # containers must count the same slots
    general = NumberAttribute(null=True, attr_name="g")
    reserved = NumberAttribute(null=True, attr_name="p")
    paused_until = NumberAttribute(null=True)
    blocked_until = NumberAttribute(null=True)
    blocked_count = NumberAttribute(null=True)
    bulk_until = NumberAttribute(null=True)
    interactive_until = NumberAttribute(null=True)
    block_held = BooleanAttribute(null=True)  # amoCRM's block holds until cleared or probed
    streak = NumberAttribute(null=True)  # consecutive 429s (the cool-down doubles with each)
    pause_note = UnicodeAttribute(null=True)  # who set the pause, when, why
    block_note = UnicodeAttribute(null=True)
    # the deployment's margin: `margin_before` until `margin_since` (start of block `margin_block`)
    margin = NumberAttribute(null=True)
    margin_before = NumberAttribute(null=True)
    margin_since = NumberAttribute(null=True)
    margin_block = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)


ALL_MODELS: tuple[type[BaseModel], ...] = (
    AmoToken,
    OAuthState,
    AmoPipeline,
    AmoStage,
    AmoUser,
    AmoRole,
    AmoContact,
    AmoTask,
    Lead,
    AmoActivityLog,
    SyncState,
    SyncJob,
    IdempotencyRecord,
    Notification,
    RateBudget,
)
