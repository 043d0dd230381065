"""Idempotency-Key: the first result is replayed; a different body or a request still running is refused."""
import pytest

from chalicelib.services import idempotency
from chalicelib.services.errors import Conflict, InvalidInput


def test_without_a_key_the_work_simply_runs_each_time():
    calls = []
    idempotency.run_once("scope", None, {}, lambda: calls.append(1) or {"n": len(calls)})
    idempotency.run_once("scope", None, {}, lambda: calls.append(1) or {"n": len(calls)})
    assert len(calls) == 2


def test_the_same_key_and_body_replays_the_first_result_without_running_again():
    calls = []
    first = idempotency.run_once("create-lead", "k1", {"a": 1}, lambda: calls.append(1) or {"id": 7})
    second = idempotency.run_once("create-lead", "k1", {"a": 1}, lambda: calls.append(1) or {"id": 8})
    assert first == second == {"id": 7} and len(calls) == 1


def test_the_same_key_with_another_body_is_refused():
    idempotency.run_once("create-lead", "k2", {"a": 1}, lambda: {"id": 7})
    with pytest.raises(InvalidInput, match="different request"):
        idempotency.run_once("create-lead", "k2", {"a": 2}, lambda: {"id": 8})


def test_keys_of_different_scopes_do_not_meet():
    assert idempotency.run_once("a", "k", {}, lambda: {"from": "a"}) == {"from": "a"}
    assert idempotency.run_once("b", "k", {}, lambda: {"from": "b"}) == {"from": "b"}


def test_a_retry_while_the_first_request_still_runs_is_a_conflict():
    def first():
        with pytest.raises(Conflict, match="still in progress"):
            idempotency.run_once("create-lead", "k3", {}, lambda: {"id": 2})
        return {"id": 1}

    assert idempotency.run_once("create-lead", "k3", {}, first) == {"id": 1}


def test_an_overlong_key_is_bad_input():
    with pytest.raises(InvalidInput):
        idempotency.run_once("create-lead", "k" * 201, {}, lambda: {})
