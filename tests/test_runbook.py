"""docs/operating.md's runbook has an entry for every alarm the generated monitoring defines, each
with commands to paste, and no entry for an alarm that does not exist."""

import json
import re
from pathlib import Path

import pytest

from scripts.infra_spec import FUNCTIONS, QUEUES, deployed_stages

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = (ROOT / "docs" / "operating.md").read_text()
ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")


def runbook_entries() -> dict[str, str]:
    """`#### ` heading -> its text, within the runbook section."""
    section = RUNBOOK.split("## Runbook: what each alarm means and what to do", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^#### (.+)$", section, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n### ", 1)[0] for i in range(1, len(parts), 2)}


def expand(name: str, tables: list[str]) -> set[str]:
    """`<Queue>AgeAlarm` -> every queue's, `<Function>…` every function's, `<Table>…` every table's."""
    values = {"<Queue>": list(QUEUES), "<Function>": list(FUNCTIONS), "<Table>": tables}
    for placeholder, ids in values.items():
        if placeholder in name:
            return {name.replace(placeholder, i) for i in ids}
    return {name}


@pytest.mark.parametrize("stage", deployed_stages())
def test_every_alarm_of_the_generated_template_has_a_runbook_entry_and_every_entry_an_alarm(stage):
    template = json.loads((ROOT / "infra" / f"{stage}-resources.json").read_text())
    resources = template["Resources"]
    alarms = {k for k, r in resources.items() if r.get("Type") in ALARM_TYPES}
    tables = [k for k, r in resources.items() if r.get("Type") == "AWS::DynamoDB::Table"]
    documented: set[str] = set()
    for heading in runbook_entries():
        for name in re.findall(r"`([^`]+Alarm)`", heading):
            documented |= expand(name, tables)
    assert len(alarms) > 40
    assert alarms - documented == set(), "alarms without a runbook entry"
    assert documented - alarms == set(), "runbook entries for alarms that do not exist"


def test_every_runbook_entry_has_a_command_to_paste_on_the_stage():
    entries = runbook_entries()
    assert len(entries) >= 15
    for heading, text in entries.items():
        assert re.search(r"```sh\n(cli |errors |aws |alarm |\.venv/bin/python )", text), heading


def test_the_runbooks_shell_helpers_act_on_the_stage():
    prelude = RUNBOOK.split("Paste this once per shell", 1)[1].split("```", 2)[1]
    assert 'cli() { .venv/bin/python -m chalicelib.cli --stage "$STAGE" "$@"; }' in prelude
    assert "STACK=amocrm-integration-$STAGE" in prelude
    for helper in ("out()", "fn()", "errors()", "alarm()"):
        assert helper in prelude
    for section in ("A bad deploy", "A failed first deploy", "Restoring a table from point-in-time recovery"):
        assert f"\n### {section}\n" in RUNBOOK
    for section in ("Rotating a secret", "A stage not connected yet"):
        assert f"\n### {section}\n" in RUNBOOK
