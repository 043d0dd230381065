"""The operator CLI: exit codes, summaries, nothing secret printed."""

import io
import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from chalicelib import cli, wiring
from chalicelib.services import connection, pipelines
from chalicelib.services.errors import Forbidden
from tests import fixtures
from tests.fake_amo import FakeAmo
from tests.fixtures import HAL, HOST, contact, lead, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table


@pytest.fixture
def fake(amo):
    store_tokens("secret-access-1", "secret-refresh-1")
    amo.get(f"{HOST}/api/v4/leads/pipelines", json=fixtures.pipelines_body(), headers=HAL)
    pipelines.sync_pipelines(wiring.amo())
    return FakeAmo(amo)


def test_create_tables_is_idempotent(capsys):
    assert cli.main(["create-tables"]) == 0
    assert "test-leads: exists" in capsys.readouterr().out


def test_sync_all_prints_a_summary_and_exits_0(fake, capsys):
    fake.contacts = {1: contact(1)}
    fake.leads = [lead(10 + i, contact_ids=(1,)) for i in range(3)]
    assert cli.main(["sync-all"]) == 0
    out = capsys.readouterr().out
    assert "leads" in out and " 3 " in out and "secret-" not in out


def test_item_errors_make_the_exit_code_non_zero(fake, capsys):
    fake.leads = [lead(20, status_id=99999)]
    assert cli.main(["sync-leads", "--limit", "0"]) == 1
    assert "99999" in capsys.readouterr().out


def test_a_failed_sync_exits_1_with_one_line(amo, capsys):
    store_tokens(expires_in=-5)
    fixtures.refuse_refresh(amo)
    assert cli.main(["sync-leads"]) == 1
    err = capsys.readouterr().err
    assert "re-authorize" in err and "Traceback" not in err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as raised:
        cli.main(["sync-leads", "--limit", "-3"])
    assert raised.value.code == 2


def test_status_without_configuration_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.delenv("AMO_CLIENT_SECRET")
    assert cli.main(["status"]) == 1
    out = capsys.readouterr().out
    assert "AMO_CLIENT_SECRET is not set" in out and "client-secret" not in out


def test_status_lists_the_stages_still_to_map_with_their_leads(fake, amo, capsys):
    amo.get(f"{HOST}/api/v4/account", json=fixtures.account_body(), headers=HAL)
    fake.leads = [lead(30, status_id=58141815), lead(31, status_id=58141815), lead(32, status_id=142)]
    cli.main(["sync-leads", "--limit", "0"])
    capsys.readouterr()

    cli.main(["status"])

    out = capsys.readouterr().out
    assert "7 stage(s) without a mapping hold 2 lead(s)" in out
    line = next(line for line in out.splitlines() if "(3177727/58141815)" in line)
    assert line.strip().startswith("Воронка / Принимают решение") and line.endswith(" 2 lead(s)")


def test_connect_prints_a_consent_address_whose_state_is_issued_once(capsys):
    assert cli.main(["connect"]) == 0
    url = [line for line in capsys.readouterr().out.splitlines() if line.startswith("https://")][0]
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    connection.consume_state(state)  # ours, valid, and now spent
    with pytest.raises(Forbidden):
        connection.consume_state(state)


def test_unregister_webhook_removes_the_subscription_of_a_rotated_out_secret(amo, monkeypatch, capsys):
    monkeypatch.setenv("AMO_WEBHOOK_SECRET", "test-webhook-secret")  # restored after: the command changes it
    store_tokens("secret-access-1", "secret-refresh-1")
    amo.delete(f"{HOST}/api/v4/webhooks", status=204)
    monkeypatch.setattr("sys.stdin", io.StringIO("old-webhook-secret\n"))
    url = "https://service.example.com/api/integrations/amo-crm/webhook"

    assert cli.main(["unregister-webhook", "--url", url, "--secret-from-stdin"]) == 0

    sent = json.loads(amo.calls[-1].request.body)
    assert sent == {"destination": f"{url}?secret=old-webhook-secret"}  # not the current secret's
    out = capsys.readouterr().out
    assert "webhook unregistered" in out and "old-webhook-secret" not in out


def test_budget_show_says_who_paused_and_budget_clear_lifts_pause_and_block(capsys):
    """Regression: a pause or block in the shared budget could only be removed by editing the table."""
    from chalicelib.services.budget_store import DynamoBudgetStore

    store = DynamoBudgetStore()
    far = 99_999_999_999.0  # what an unbounded Retry-After of older code wrote
    store.pause(far, "amocrm-integration-prod-api on host pid 7 at 2026-12-05T21:00:00Z: amoCRM answered 429")
    store.block(far, far - 300, "amocrm-integration-prod-sync on host pid 9 at 2026-12-05T21:01:00Z: HTML 403")

    assert cli.main(["budget", "show"]) == 0
    out = capsys.readouterr().out
    assert "pausedBy" in out and "amocrm-integration-prod-api on host pid 7 at 2026-12-05T21:00:00Z" in out
    assert "blockedBy" in out and "amocrm-integration-prod-sync" in out

    assert cli.main(["budget", "clear"]) == 0
    out = capsys.readouterr().out
    assert "cleared: paused, blocked" in out and "the pause was set by amocrm-integration-prod-api" in out
    state = store.state()
    assert (state.paused_until, state.blocked_until, state.block_held, state.pause_note) == (0, 0, False, "")

    assert cli.main(["budget"]) == 0
    assert "pausedBy" in capsys.readouterr().out


def test_status_shows_who_set_the_shared_pause(monkeypatch, capsys):
    from chalicelib.services.budget_store import DynamoBudgetStore

    monkeypatch.setenv("AMO_RATE_BUDGET", "shared")
    when = __import__("time").time() + 5
    DynamoBudgetStore().pause(
        when, "amocrm-integration-prod-api on host pid 7 at 2026-12-05T21:00:00Z: amoCRM answered 429"
    )

    cli.main(["status"])

    line = next(line for line in capsys.readouterr().out.splitlines() if "budget.pausedBy" in line)
    assert line.strip().endswith(
        "amocrm-integration-prod-api on host pid 7 at 2026-12-05T21:00:00Z: amoCRM answered 429"
    )


def test_budget_margin_lowers_the_deployments_margin_from_a_block_ahead(capsys):
    import time as clock

    from chalicelib.amo.budget import Margin
    from chalicelib.services.budget_store import DynamoBudgetStore

    store = DynamoBudgetStore()
    assert store.propose_margin(Margin(0.3, 0.3), None)  # raised once by a process that asked for 0.3

    assert cli.main(["budget", "margin", "0.08"]) == 0
    assert "margin 0.08s from 20" in capsys.readouterr().out
    margin = store.state().margin
    assert (margin.margin, margin.before) == (0.08, 0.3)
    assert margin.since >= clock.time() + 9  # every process reads it long before it applies

    assert cli.main(["budget", "margin", "0.05"]) == 1  # one change at a time
    assert "pending" in capsys.readouterr().err
    assert cli.main(["budget", "margin", "nan"]) == 1
