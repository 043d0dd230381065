"""The account's standing and amoCRM's webhook rules, against the sandbox's switches (reference
§3.5, §9.4, §9.5, §13): an unpaid account, a plan without the webhooks API, the robot's `lead`
root, and deliveries no part of which may fail the whole (every non-2xx answer counts towards
disabling the hook). The tests of this module share one account and run in order."""

import pytest

from tests import webhook_bodies as wb
from tests.e2e.backends import WEBHOOK_SECRET
from tests.e2e.test_real_accounts import FORM, WON, move, open_leads, sandbox_lead

pytestmark = pytest.mark.usefixtures("mirrored")


def account_pairs(backend):
    return wb.account(backend.call("GET", "test")[1]["accountId"])


@pytest.mark.parametrize("plan", ["payment_required", "forbidden"])
def test_on_a_plan_without_the_webhooks_api_register_answers_the_manual_steps(backend, switch, plan):
    switch(webhooks_api=plan)

    status, answer = backend.call("POST", "webhook/register")

    assert status == 200 and answer["registration"] == "manual"
    assert answer["destination"].endswith("/webhook?secret=<AMO_WEBHOOK_SECRET>")
    assert "Settings → Integrations" in answer["steps"][0] and "status_lead" in answer["steps"][2]
    assert WEBHOOK_SECRET not in str(answer)
    code, printed = backend.cli("status")
    assert "registration" in printed and "manual" in printed


def test_the_robot_s_lead_root_is_read_as_leads(backend, switch):
    switch(webhook_format="compact", compact_root="lead")
    lead = open_leads(backend)[0]

    fired = move(backend, lead["id"])

    robot = next(d for d in fired["deliveries"] if d["format"] == "compact")
    assert robot["status"] == 200 and robot["body"].startswith("lead%5Bstatus%5D")
    ours = backend.call("GET", f"leads/{lead['id']}")[1]
    assert ours["amo_status_id"] == fired["status_id"] == sandbox_lead(backend, lead["id"])["status_id"]


def test_a_nine_level_key_beside_a_stage_change_leaves_the_stage_change_applied(backend):
    lead = open_leads(backend)[1]
    pairs = wb.lead_status(lead["id"], WON, lead["pipeline_id"], lead["updated_at"] + 60, lead["status_id"]) + [
        ("contacts[update][0][id]", "1"),
        ("contacts[update][0][custom_fields][0][values][0][value][extra]", "x"),
    ]

    status, answer = backend.call(
        "POST", f"webhook?secret={WEBHOOK_SECRET}", wb.encode(pairs + account_pairs(backend)), key=False, headers=FORM
    )

    assert status == 200 and answer["processed"] == 2
    assert backend.call("GET", f"leads/{lead['id']}")[1]["amo_status_id"] == WON


def test_an_authentic_body_over_one_megabyte_is_2xx_and_its_stage_change_applied(backend):
    lead = open_leads(backend)[2]
    pairs = wb.lead_status(lead["id"], WON, lead["pipeline_id"], lead["updated_at"] + 60, lead["status_id"])
    pairs += [("leads[status][0][custom_fields][1][values][0][value]", "x" * 1_100_000)]
    body = wb.encode(pairs + account_pairs(backend))
    assert len(body) > 1_000_000

    status, answer = backend.call("POST", f"webhook?secret={WEBHOOK_SECRET}", body, key=False, headers=FORM)

    assert status == 200 and answer["processed"] == 1
    assert any("only each item's own fields were read" in e for e in answer["errors"])
    assert backend.call("GET", f"leads/{lead['id']}")[1]["amo_status_id"] == WON


def test_an_unpaid_account_is_its_own_state_in_test_and_routes_until_it_is_paid(backend, switch):
    switch(unpaid=True)

    status, shown = backend.call("GET", "test")
    assert status == 200 and shown["accountUnpaid"] is True and "not paid" in shown["error"]
    status, refused = backend.call("POST", "sync-pipelines")
    assert status == 402 and "not paid" in refused["Message"]
    status, refused = backend.call("POST", "webhook/register")  # the account, not the plan
    assert status == 402 and "not paid" in refused["Message"]
    code, printed = backend.cli("status")
    assert code == 1 and "accountUnpaid" in printed

    switch(unpaid=False)
    status, shown = backend.call("GET", "test")
    assert shown["connected"] is True and "accountUnpaid" not in shown
