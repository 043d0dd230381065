"""Idempotency-Key: the first result is replayed; a different body or a request still running is
refused; once amoCRM may have been changed the key is never released; a dead attempt's key
frees itself at its deadline; an expired record counts as absent."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError

from chalicelib.amo.errors import AmoUnavailable, AmoValidationError
from chalicelib.models import IdempotencyRecord
from chalicelib.services import idempotency
from chalicelib.services.errors import Conflict, InvalidInput

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


def client_error(code):
    return ClientError({"Error": {"Code": code, "Message": code}}, "UpdateItem")


def run(key, work, request=None, **kwargs):
    return idempotency.run_once(
        "create-lead", key=key, request=request if request is not None else {"a": 1}, work=work, **kwargs
    )


def test_without_a_key_the_work_simply_runs_each_time():
    calls = []
    idempotency.run_once("scope", key=None, request={}, work=lambda cp: calls.append(1) or {"n": len(calls)})
    idempotency.run_once("scope", key=None, request={}, work=lambda cp: calls.append(1) or {"n": len(calls)})
    assert len(calls) == 2


def test_the_same_key_and_body_replays_the_first_result_without_running_again():
    calls = []
    assert run("k1", lambda cp: calls.append(1) or {"id": 7}) == {"id": 7}
    assert run("k1", lambda cp: calls.append(1) or {"id": 8}) == {"id": 7}
    assert len(calls) == 1


def test_the_same_key_with_another_body_is_refused():
    run("k2", lambda cp: {"id": 7})
    with pytest.raises(InvalidInput, match="different request"):
        run("k2", lambda cp: {"id": 8}, request={"a": 2})


def test_keys_of_different_scopes_do_not_meet():
    assert idempotency.run_once("a", key="k", request={}, work=lambda cp: {"from": "a"}) == {"from": "a"}
    assert idempotency.run_once("b", key="k", request={}, work=lambda cp: {"from": "b"}) == {"from": "b"}


def test_a_retry_while_the_first_request_still_runs_is_a_conflict():
    def first(cp):
        with pytest.raises(Conflict, match="still in progress"):
            run("k3", lambda cp: {"id": 2})
        return {"id": 1}

    assert run("k3", first) == {"id": 1}


def test_an_overlong_key_is_bad_input():
    with pytest.raises(InvalidInput):
        run("k" * 201, lambda cp: {})


def test_once_amocrm_created_the_lead_a_later_failure_never_frees_the_key():
    """Regression: the follow-up fetch failed after the POST, the key was deleted, and a retry
    with the same key created a second lead."""
    posts = []

    def create(checkpoint):
        posts.append(1)
        checkpoint({"amoLeadId": 17657, "leadId": "l-17657"})
        raise AmoUnavailable("amoCRM GET /api/v4/leads/17657 failed (503)")

    assert run("k4", create) == {"amoLeadId": 17657, "leadId": "l-17657"}
    assert run("k4", create) == {"amoLeadId": 17657, "leadId": "l-17657"}
    assert posts == [1]


def test_a_lost_answer_to_the_post_keeps_the_key_and_says_outcome_unknown():
    def create(checkpoint):
        raise AmoUnavailable("amoCRM POST /api/v4/leads: no answer; not re-sent", outcome_unknown=True)

    with pytest.raises(AmoUnavailable):
        run("k5", create)
    with pytest.raises(idempotency.OutcomeUnknown, match="do not retry with a new key"):
        run("k5", lambda cp: {"id": 1})


def test_a_failure_before_any_effect_frees_the_key_for_a_retry():
    def refused(checkpoint):
        raise AmoValidationError("amoCRM POST /api/v4/leads failed (400)", 400)

    with pytest.raises(AmoValidationError):
        run("k6", refused)
    assert run("k6", lambda cp: {"id": 9}) == {"id": 9}


def test_the_key_of_an_attempt_that_died_is_free_once_its_deadline_passed():
    """Regression: a claimed key whose Lambda died answered 409 for a day."""
    IdempotencyRecord(
        key="create-lead:k7",
        request_hash=idempotency._fingerprint("create-lead", {"a": 1}),
        state="in_progress",
        running_until=time.time() - 1,
        expires_at=datetime.now(UTC) + timedelta(hours=23),
    ).save()
    assert run("k7", lambda cp: {"id": 3}) == {"id": 3}


def test_an_attempt_still_within_its_deadline_keeps_the_key():
    IdempotencyRecord(
        key="create-lead:k8",
        request_hash=idempotency._fingerprint("create-lead", {"a": 1}),
        state="in_progress",
        running_until=time.time() + 20,
        expires_at=datetime.now(UTC) + timedelta(hours=23),
    ).save()
    with pytest.raises(Conflict, match="in progress"):
        run("k8", lambda cp: {"id": 3})


def test_an_expired_record_counts_as_absent_before_ttl_removes_it():
    IdempotencyRecord(
        key="create-lead:k9",
        request_hash="another request",
        state="done",
        response={"id": 1},
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    ).save()
    assert run("k9", lambda cp: {"id": 4}) == {"id": 4}


def test_the_claimed_key_lasts_only_as_long_as_the_invocation_may_run():
    def check(checkpoint):
        stored = IdempotencyRecord.get("create-lead:k10")
        assert time.time() + 4 <= stored.running_until <= time.time() + 6
        return {"id": 5}

    run("k10", check, time_left=lambda: 5.0)


def test_a_side_effect_whose_record_could_not_be_written_is_still_never_repeated(monkeypatch):
    """Regression (issue 23): the checkpoint's UpdateItem was throttled, the key was deleted and
    the caller's retry created a second lead. Now the caller gets its result, and a retry finds
    the key `sending`: in progress while the attempt may still run, then outcome unknown."""
    posts = []
    real_update = IdempotencyRecord.update

    def throttled_when_applied(self, actions, condition=None, **kwargs):
        if any("applied" in str(action.values) for action in actions):
            raise UpdateError("Failed to update item", client_error("ProvisionedThroughputExceededException"))
        return real_update(self, actions=actions, condition=condition, **kwargs)

    monkeypatch.setattr(IdempotencyRecord, "update", throttled_when_applied)
    monkeypatch.setattr(idempotency.time, "sleep", lambda seconds: None)

    def create(checkpoint):
        checkpoint.sending()
        posts.append(1)
        checkpoint({"amoLeadId": 1, "leadId": "l-1"})
        raise AmoUnavailable("the follow-up read failed")

    assert run("k11", create, time_left=lambda: 0.0) == {"amoLeadId": 1, "leadId": "l-1"}
    with pytest.raises(idempotency.OutcomeUnknown):
        run("k11", create)
    assert posts == [1]


def test_a_claim_whose_answer_was_lost_is_recognised_as_our_own():
    """Regression (fault matrix): the SDK re-sent a conditional put that had landed; the retry
    found the condition false and answered "in progress" to its own request."""
    real_save = IdempotencyRecord.save

    def landed_then_lost(self, condition=None, **kwargs):
        real_save(self, condition=condition, **kwargs)
        return real_save(self, condition=condition, **kwargs)  # the SDK's re-send of the same put

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(IdempotencyRecord, "save", landed_then_lost)
        assert run("k12", lambda cp: {"id": 12}) == {"id": 12}


def test_an_attempt_whose_key_was_taken_over_sends_nothing():
    """Regression (issue 23): the claim expired while the first attempt still waited to POST; the
    retry took the key over and both created a lead."""
    sent = []

    def slow_then_send(checkpoint):
        stored = IdempotencyRecord.get("create-lead:k13")
        stored.update(actions=[IdempotencyRecord.claim_id.set("a retry's claim")])  # taken over meanwhile
        checkpoint.sending()
        sent.append(1)
        return {"id": 13}

    with pytest.raises(Conflict, match="in progress"):
        run("k13", slow_then_send)
    assert sent == []


def test_a_sending_attempt_that_died_leaves_the_outcome_unknown_not_free():
    IdempotencyRecord(
        key="create-lead:k14",
        request_hash=idempotency._fingerprint("create-lead", {"a": 1}),
        state="sending",
        claim_id="dead",
        running_until=time.time() - 1,
        expires_at=datetime.now(UTC) + timedelta(hours=23),
    ).save()
    with pytest.raises(idempotency.OutcomeUnknown):
        run("k14", lambda cp: {"id": 14})


def test_a_refusal_after_sending_frees_the_key_and_a_silence_does_not():
    def refused(checkpoint):
        checkpoint.sending()
        raise AmoValidationError("amoCRM POST /api/v4/leads/complex failed (400)", 400)

    def silent(checkpoint):
        checkpoint.sending()
        raise RuntimeError("something nobody expected, after the POST may have left")

    with pytest.raises(AmoValidationError):
        run("k15", refused)
    assert run("k15", lambda cp: {"id": 15}) == {"id": 15}
    with pytest.raises(RuntimeError):
        run("k16", silent)
    with pytest.raises(idempotency.OutcomeUnknown):
        run("k16", lambda cp: {"id": 16})


def test_a_404_naming_no_entity_after_sending_frees_the_key():
    """Review: AmoUnknownPath carries status 404 yet applied nothing; the key was kept as
    "outcome unknown" for a day."""
    from chalicelib.amo.errors import AmoUnknownPath

    def unknown_path(checkpoint):
        checkpoint.sending()
        raise AmoUnknownPath("amoCRM POST /api/v4/leads/complex: a 404 naming no entity", status=404)

    with pytest.raises(AmoUnknownPath):
        run("k17", unknown_path)
    assert run("k17", lambda cp: {"id": 17}) == {"id": 17}
