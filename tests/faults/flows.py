"""The flows the fault matrix runs, each as four steps:

- `prepare` (never faulted): the world as the flow finds it, e.g. a mirrored account whose
  lead was just moved in amoCRM;
- `act` (the faulted part): what happens in production, e.g. amoCRM's webhook delivery, the
  queue's consumer, the delivery to the Main Backend;
- `recover` (never faulted): what the service documents as the way back, e.g. amoCRM
  redelivering a webhook it got no 2xx for, SQS redelivering, the sweeper, the next scheduled
  sync, the caller retrying with the same Idempotency-Key;
- `check`: the invariants a user relies on, as a list of violations (empty when all hold).

Every answer a route gives during `act` and `recover` is kept: a 5xx other than a 503 with
Retry-After (or a 502 for amoCRM's own failure) is a violation wherever it happens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.models import AmoStage, IdempotencyRecord, Lead, Notification, SyncJob, SyncState
from tests import webhook_bodies as wb
from tests.faults.injector import Fault
from tests.faults.world import World

SCHEDULED = {
    "version": "0",
    "id": "fault-matrix",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-05T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}
ACCEPTABLE_5XX = {502, 503}


@dataclass
class Run:
    """What one run of a flow saw."""

    world: World
    fault: Fault | None
    context: dict = field(default_factory=dict)
    answers: list[tuple[str, int, Any]] = field(default_factory=list)

    def call(self, step: str, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any]:
        status, answer = self.world.call(method, path, body, headers)
        self.answers.append((step, status, answer))
        return status, answer

    def webhook(self, step: str, form: str) -> tuple[int, Any]:
        status, answer = self.world.webhook(form)
        self.answers.append((step, status, answer))
        return status, answer

    def invoke(self, step: str, function: str, event: dict) -> Any:
        try:
            return self.world.invoke(function, event)
        except Exception as error:  # a Lambda that raised: its trigger retries (the schedule: the next run)
            self.answers.append((step, 0, repr(error)))
            return None


@dataclass(frozen=True)
class Flow:
    name: str
    prepare: Callable[[Run], None]
    act: Callable[[Run], None]
    recover: Callable[[Run], None]
    check: Callable[[Run], list[str]]
    queued: bool = True


# -- shared steps ---------------------------------------------------------------------------------


def mirrored_account(run: Run) -> None:
    """Pipelines, stages (auto-mapped) and leads mirrored, as after an install and a first sync."""
    for path in ("sync-pipelines", "mapping/auto-apply"):
        status, answer = run.world.call("POST", path)
        assert status == 200, (path, answer)
    status, answer = run.world.call("POST", "sync-all?leadsLimit=0")
    assert status == 200, answer
    drain_all(run, "prepare")
    run.context["notifications_before"] = {n.event_id for n in Notification.scan()}


def drain_all(run: Run, step: str) -> None:
    if not run.world.queues:
        return
    for queue, function in (
        ("webhooks", "process-webhooks"),
        ("sync", "continue-sync"),
        ("notifications", "deliver-notifications"),
    ):
        for answer in run.world.drain(queue, function):
            if isinstance(answer, str):
                run.answers.append((f"{step}: {function}", 0, answer))


def move_a_lead_in_amo(run: Run) -> None:
    """A person moves a lead to a stage whose mapped status differs from the lead's."""
    stages = {(s.pipeline_id, s.id): s.mapped_status for s in AmoStage.scan()}
    for lead in run.world.amo_leads():
        if lead["status_id"] in (142, 143) or lead.get("is_deleted"):
            continue
        current = stages.get((lead["pipeline_id"], lead["status_id"]))
        target = next(
            (
                stage_id
                for (pipeline_id, stage_id), status in sorted(stages.items())
                if pipeline_id == lead["pipeline_id"] and status and status != current and stage_id not in (142, 143)
            ),
            None,
        )
        if target is None:
            continue
        moved = run.world.control(
            "POST", "trigger-webhook", {"entity": "leads", "action": "status", "id": lead["id"], "status_id": target}
        )
        after = next(item for item in run.world.amo_leads() if item["id"] == lead["id"])
        run.context.update(lead=lead, moved=moved, after=after)
        return
    raise AssertionError("the seed has no lead that can move to a stage of another status")


def status_webhook(run: Run) -> str:
    lead, after = run.context["lead"], run.context["after"]
    pairs = wb.lead_status(lead["id"], after["status_id"], after["pipeline_id"], after["updated_at"], lead["status_id"])
    return wb.encode(pairs + wb.account())


def heal(run: Run, step: str = "recover") -> None:
    """The service's own ways back: queues redelivered, the sweeper, the next scheduled sync."""
    drain_all(run, step)
    run.invoke(step, "incremental-sync", SCHEDULED)
    drain_all(run, step)
    run.invoke(step, "notification-sweeper", SCHEDULED)


# -- invariants ---------------------------------------------------------------------------------------


def no_server_errors(run: Run) -> list[str]:
    found = []
    for step, status, answer in run.answers:
        # status 0: a queue consumer or a schedule raised; SQS delivers the batch again, the
        # schedule runs again (both in recovery): what counts is the state after that
        if status >= 500 and status not in ACCEPTABLE_5XX:
            found.append(f"{step}: HTTP {status} {str(answer)[:160]}")
    return found


def lead_matches_amo(run: Run) -> list[str]:
    """No status change lost: the lead ends at amoCRM's stage and the status mapped from it,
    and exactly one notification was recorded for the change."""
    after = run.context["after"]
    lead = next(iter(Lead.by_amo_lead_id.query(after["id"])), None)
    if lead is None:
        return [f"lead {after['id']} is not mirrored"]
    problems = []
    mapped = AmoStage.get(after["pipeline_id"], after["status_id"]).mapped_status
    if (lead.amo_status_id, lead.status) != (after["status_id"], mapped):
        problems.append(
            f"lead {after['id']} is at stage {lead.amo_status_id} / {lead.status}, amoCRM at "
            f"{after['status_id']} / {mapped}"
        )
    notes = [
        n
        for n in Notification.scan()
        if n.event_id not in run.context["notifications_before"] and n.payload.get("amoLeadId") == after["id"]
    ]
    if len(notes) != 1:
        problems.append(f"{len(notes)} notifications recorded for lead {after['id']}'s change (one expected)")
    problems += notifications_delivered(run)
    return problems


def notifications_delivered(run: Run) -> list[str]:
    """No notification lost, none delivered twice except after a lost Main Backend answer."""
    problems = []
    delivered = [n["headers"].get("Idempotency-Key") or n["body"].get("eventId") for n in run.world.delivered()]
    # documented: the Main Backend's answer lost, or the record of its 2xx not written, means
    # the notification is sent again with the same Idempotency-Key (docs/reliability.md)
    fault = run.fault
    lost_answer = fault is not None and (
        (fault.call.startswith("main-backend") and fault.kind in ("lost_answer", "cut_body"))
        or (fault.call == "dynamodb.UpdateItem test-notifications" and fault.kind != "lost_answer")
    )
    for note in Notification.scan():
        if note.event_id in run.context["notifications_before"]:
            continue
        count = delivered.count(note.event_id)
        if note.state != "sent" or count == 0:
            problems.append(f"notification {note.event_id} is {note.state}, delivered {count} times")
        elif count > 1 and not lost_answer:
            problems.append(f"notification {note.event_id} delivered {count} times")
    return problems


def no_job_stuck(run: Run) -> list[str]:
    return [f"sync job {job.job_id} still running" for job in SyncJob.scan() if job.status == "running"]


# -- the flows -----------------------------------------------------------------------------------------


def webhook_steps(body_of: Callable[[Run], str]) -> tuple[Callable[[Run], None], Callable[[Run], None]]:
    """`act` and `recover` of a flow whose trigger is one webhook delivery built by `body_of`:
    amoCRM delivers it, and delivers it again after an answer that was not 2xx (reference §9.5)."""

    def act(run: Run) -> None:
        run.context["webhook_status"] = run.webhook("act: webhook", body_of(run))[0]
        drain_all(run, "act")

    def recover(run: Run) -> None:
        if not 200 <= run.context["webhook_status"] < 300:
            run.webhook("recover: webhook redelivered", body_of(run))
        heal(run)

    return act, recover


_webhook_act, _webhook_recover = webhook_steps(status_webhook)


def _webhook_prepare(run: Run) -> None:
    mirrored_account(run)
    move_a_lead_in_amo(run)


def _check_status_change(run: Run) -> list[str]:
    return no_server_errors(run) + lead_matches_amo(run) + no_job_stuck(run)


WEBHOOK_STATUS = Flow(
    "webhook status change (queued)", _webhook_prepare, _webhook_act, _webhook_recover, _check_status_change
)
WEBHOOK_STATUS_INLINE = Flow(
    "webhook status change (inline)",
    _webhook_prepare,
    _webhook_act,
    _webhook_recover,
    _check_status_change,
    queued=False,
)


def _sync_act(run: Run) -> None:
    with run.world.harness():
        run.context["window_before"] = SyncState.get("leads").last_success_started_at
    run.context["sync_answer"] = run.invoke("act: incremental-sync", "incremental-sync", SCHEDULED)
    drain_all(run, "act")


def _sync_recover(run: Run) -> None:
    heal(run)


def _check_sync(run: Run) -> list[str]:
    problems = _check_status_change(run)
    answer = run.context.get("sync_answer") or {}
    leads_result = answer.get("leads") if isinstance(answer, dict) else None
    if isinstance(leads_result, dict) and leads_result.get("errors"):
        # a run that could not store a change must not move the window past it
        state = SyncState.get("leads")
        if state.last_success_started_at != run.context["window_before"]:
            problems.append(f"the leads window moved on after a run with errors: {leads_result['errors'][:2]}")
    return problems


INCREMENTAL_SYNC = Flow(
    "incremental sync heals a missed webhook", _webhook_prepare, _sync_act, _sync_recover, _check_sync
)

NEW_LEAD = {
    "leadData": {"name": "Бронь: квартира на Подоле", "price": 4200},
    "contact": {"name": "Олена Гість", "phone": "+380501112233"},
}


def _create_prepare(run: Run) -> None:
    mirrored_account(run)
    run.context["amo_leads_before"] = {lead["id"] for lead in run.world.amo_leads()}


def _create_act(run: Run) -> None:
    run.context["first"] = run.call(
        "act: create-lead", "POST", "create-lead", NEW_LEAD, {"Idempotency-Key": "booking-42"}
    )


def _create_recover(run: Run) -> None:
    """The caller retries with the same key until it gets an answer that is not "try again"."""
    status, answer = run.context["first"]
    for attempt in range(4):
        if status == 200 or (status == 409 and "do not retry" in str(answer)):
            break
        status, answer = run.call(
            f"recover: create-lead retry {attempt + 1}",
            "POST",
            "create-lead",
            NEW_LEAD,
            {"Idempotency-Key": "booking-42"},
        )
    run.context["final"] = (status, answer)
    heal(run)


def _check_create(run: Run) -> list[str]:
    problems = no_server_errors(run)
    created = [lead for lead in run.world.amo_leads() if lead["id"] not in run.context["amo_leads_before"]]
    if len(created) > 1:
        problems.append(f"{len(created)} leads created in amoCRM for one Idempotency-Key")
    status, answer = run.context["final"]
    if status == 200:
        if not created or answer.get("amoLeadId") != created[0]["id"]:
            problems.append(f"create-lead answered {answer} but amoCRM holds {[c['id'] for c in created]}")
    elif not (status == 409 and "do not retry" in str(answer)):
        problems.append(f"create-lead never settled: last answer {status} {str(answer)[:160]}")
    record = IdempotencyRecord.get("create-lead:booking-42") if created else None
    if record is not None and record.state == "in_progress":
        problems.append("the Idempotency-Key is still in progress after the caller gave up")
    return problems


CREATE_LEAD_WITH_KEY = Flow(
    "create-lead with an Idempotency-Key", _create_prepare, _create_act, _create_recover, _check_create
)


def _update_prepare(run: Run) -> None:
    mirrored_account(run)
    lead = next(item for item in run.world.amo_leads() if item["status_id"] not in (142, 143))
    run.context.update(lead=lead, price=int(lead.get("price") or 0) + 111)


def _update_body(run: Run) -> dict:
    return {"leadId": run.context["lead"]["id"], "leadData": {"price": run.context["price"]}}


def _update_act(run: Run) -> None:
    run.context["first"] = run.call("act: update-lead", "POST", "update-lead", _update_body(run))


def _update_recover(run: Run) -> None:
    """A PATCH of the same values is safe to send again: the caller retries until it is answered."""
    status, answer = run.context["first"]
    for attempt in range(3):
        if status == 200:
            break
        status, answer = run.call(f"recover: update-lead retry {attempt + 1}", "POST", "update-lead", _update_body(run))
    run.context["final"] = (status, answer)
    heal(run)


def _check_update(run: Run) -> list[str]:
    problems = no_server_errors(run)
    lead_id = run.context["lead"]["id"]
    amo_price = next(item for item in run.world.amo_leads() if item["id"] == lead_id).get("price")
    if run.context["final"][0] != 200:
        problems.append(f"update-lead never settled: {run.context['final']}")
    if amo_price != run.context["price"]:
        problems.append(f"amoCRM holds price {amo_price}, asked {run.context['price']}")
    stored = next(iter(Lead.by_amo_lead_id.query(lead_id)), None)
    if stored is None or stored.price != amo_price:
        problems.append(f"the mirror holds price {stored.price if stored else None}, amoCRM {amo_price}")
    return problems


UPDATE_LEAD = Flow("update-lead", _update_prepare, _update_act, _update_recover, _check_update)


def _token_prepare(run: Run) -> None:
    mirrored_account(run)
    run.world.control("POST", "expire-tokens")


def _token_act(run: Run) -> None:
    run.call("act: test", "GET", "test")


def _token_recover(run: Run) -> None:
    run.invoke("recover", "refresh-token", SCHEDULED)
    run.context["final"] = run.call("recover: test", "GET", "test")


SPENT_REFRESH = ("lost_answer", "cut_body", "short_body", "no_id")  # amoCRM rotated the pair; ours never arrived


def _check_token(run: Run) -> list[str]:
    """No token lost: whatever happened to one refresh, the service is still connected after;
    except when amoCRM's answer to the refresh itself was lost after it rotated the pair (the
    refresh token is single-use, §1.6): then the connection must say plainly that it needs a
    re-authorization (docs/reliability.md)."""
    problems = no_server_errors(run)
    status, answer = run.context["final"]
    fault = run.fault
    if fault is not None and fault.call == "amo POST /oauth2/access_token" and fault.kind in SPENT_REFRESH:
        if status != 200 or answer.get("needsReauthorization") is not True:
            problems.append(f"a spent refresh token is not reported as needing re-authorization: {status} {answer}")
        return problems
    if status != 200 or not answer.get("connected"):
        problems.append(f"not connected after recovery: {status} {str(answer)[:200]}")
    return problems


TOKEN_REFRESH = Flow("token refresh", _token_prepare, _token_act, _token_recover, _check_token)


def _delete_prepare(run: Run) -> None:
    mirrored_account(run)
    lead = next(item for item in run.world.amo_leads() if item["status_id"] not in (142, 143))
    run.world.control("POST", "trigger-webhook", {"entity": "leads", "action": "delete", "id": lead["id"]})
    run.context["lead"] = lead


def _delete_form(run: Run) -> str:
    lead = run.context["lead"]
    pairs = [
        ("leads[delete][0][id]", lead["id"]),
        ("leads[delete][0][status_id]", lead["status_id"]),
        ("leads[delete][0][pipeline_id]", lead["pipeline_id"]),
    ]
    return wb.encode(pairs + wb.account())


_delete_act, _delete_recover = webhook_steps(_delete_form)


def _check_delete(run: Run) -> list[str]:
    """A delete amoCRM confirms unlinks the lead and keeps its record."""
    problems = no_server_errors(run)
    from chalicelib.services.leads import lead_id_for

    try:
        stored = Lead.get(lead_id_for(run.context["lead"]["id"]))
    except Lead.DoesNotExist:
        return problems + ["the deleted lead's record is gone (it must be kept, unlinked)"]
    if stored.amo_lead_id is not None:
        problems.append(f"lead {run.context['lead']['id']} deleted in amoCRM is still linked")
    return problems


WEBHOOK_DELETE = Flow("webhook lead delete", _delete_prepare, _delete_act, _delete_recover, _check_delete)


def _mapping_prepare(run: Run) -> None:
    mirrored_account(run)
    leads = [item for item in run.world.amo_leads() if item["status_id"] not in (142, 143)]
    lead = leads[0]
    stage = AmoStage.get(lead["pipeline_id"], lead["status_id"])
    target = next(status for status in ("NEW", "IN_PROGRESS", "CLOSED") if status != stage.mapped_status)
    in_stage = [
        item["id"]
        for item in leads
        if (item["pipeline_id"], item["status_id"]) == (lead["pipeline_id"], lead["status_id"])
    ]
    run.context.update(stage=(lead["pipeline_id"], lead["status_id"]), target=target, in_stage=in_stage)


def _mapping_body(run: Run) -> dict:
    return {"mappedStatus": run.context["target"], "pipelineId": run.context["stage"][0]}


def _mapping_act(run: Run) -> None:
    path = f"stages/{run.context['stage'][1]}/mapping"
    run.context["first"] = run.call("act: map stage", "PUT", path, _mapping_body(run))
    drain_all(run, "act")


def _mapping_recover(run: Run) -> None:
    """The operator sees an error and sets the mapping again."""
    if run.context["first"][0] != 200:
        run.call("recover: map stage again", "PUT", f"stages/{run.context['stage'][1]}/mapping", _mapping_body(run))
    heal(run)


def _check_mapping(run: Run) -> list[str]:
    """Every lead of the stage ends at the new status, each change notified exactly once."""
    problems = no_server_errors(run)
    target = run.context["target"]
    for amo_lead_id in run.context["in_stage"]:
        lead = next(iter(Lead.by_amo_lead_id.query(amo_lead_id)), None)
        if lead is None or lead.status != target:
            problems.append(f"lead {amo_lead_id} is {lead.status if lead else None}, its stage maps to {target}")
        notes = [
            n
            for n in Notification.scan()
            if n.event_id not in run.context["notifications_before"] and n.payload.get("amoLeadId") == amo_lead_id
        ]
        if len(notes) != 1:
            problems.append(f"{len(notes)} notifications for lead {amo_lead_id}'s re-derived status (one expected)")
    return problems + notifications_delivered(run) + no_job_stuck(run)


MAPPING_CHANGE = Flow(
    "stage mapping change re-derives its leads", _mapping_prepare, _mapping_act, _mapping_recover, _check_mapping
)


def _full_sync_act(run: Run) -> None:
    """An operator's full sync (no webhook came for the move)."""
    run.context["sync_status"] = run.call("act: sync-all", "POST", "sync-all?leadsLimit=0&full=true")[0]
    drain_all(run, "act")


FULL_SYNC = Flow(
    "full sync heals a missed webhook", _webhook_prepare, _full_sync_act, _sync_recover, _check_status_change
)

RENAMED_GUEST = "Олена Перейменована"


def _contact_prepare(run: Run) -> None:
    """A guest renames herself in amoCRM; the contact feeds a mirrored lead."""
    mirrored_account(run)
    with run.world.harness():
        lead = next((item for item in Lead.scan() if item.amo_lead_id and item.amo_contact_id), None)
    assert lead is not None, "the seed has no mirrored lead with a main contact"
    run.world.control(
        "POST",
        "trigger-webhook",
        {"entity": "contacts", "action": "update", "id": lead.amo_contact_id, "name": RENAMED_GUEST},
    )
    contact = next(c for c in run.world.control("GET", "export/contacts")["contacts"] if c["id"] == lead.amo_contact_id)
    phones = [
        v["value"]
        for f in contact.get("custom_fields_values") or []
        if f.get("field_code") == "PHONE"
        for v in f["values"]
    ]
    run.context.update(lead_id=lead.amo_lead_id, contact=contact, phone=phones[0] if phones else "")


def _contact_webhook(run: Run) -> str:
    contact = run.context["contact"]
    pairs = wb.contact_update(
        contact["id"], RENAMED_GUEST, run.context["phone"], run.context["lead_id"], contact["updated_at"]
    )
    return wb.encode(pairs + wb.account())


_contact_act, _contact_recover = webhook_steps(_contact_webhook)


def _check_contact(run: Run) -> list[str]:
    from chalicelib.models import AmoContact

    problems = no_server_errors(run) + no_job_stuck(run)
    contact_id = run.context["contact"]["id"]
    try:
        stored = AmoContact.get(contact_id).name
    except AmoContact.DoesNotExist:
        stored = None
    lead = next(iter(Lead.by_amo_lead_id.query(run.context["lead_id"])), None)
    if stored != RENAMED_GUEST:
        problems.append(f"contact {contact_id} is mirrored as {stored!r}")
    if lead is None or lead.guest_name != RENAMED_GUEST:
        problems.append(f"lead {run.context['lead_id']} names its guest {lead and lead.guest_name!r}")
    return problems


CONTACT_UPDATE = Flow(
    "contact update reaches its leads", _contact_prepare, _contact_act, _contact_recover, _check_contact
)

FLOWS = (
    WEBHOOK_STATUS,
    WEBHOOK_STATUS_INLINE,
    INCREMENTAL_SYNC,
    CREATE_LEAD_WITH_KEY,
    UPDATE_LEAD,
    TOKEN_REFRESH,
    WEBHOOK_DELETE,
    MAPPING_CHANGE,
    FULL_SYNC,
    CONTACT_UPDATE,
)


def describe(run: Run) -> str:
    return json.dumps({"fault": str(run.fault), "answers": [(s, c) for s, c, _ in run.answers]}, ensure_ascii=False)
