"""Least privilege per function: each role may use only the tables, and the DynamoDB actions, its
handlers' code uses (scripts/infra_access.py reads them from the code). A handler that starts
using a model its role lacks fails here: statically (the derivation against the committed
policies) and, for the handlers that run without amoCRM, by running them and recording every
DynamoDB request they send."""

import json
from pathlib import Path

import pytest

from chalicelib.models import ALL_MODELS
from scripts import build_infra, infra_access
from scripts.infra_spec import FUNCTIONS
from tests.fixtures import HAL, HOST, store_tokens, token_body

ROOT = Path(__file__).resolve().parent.parent
MODELS = {m.__name__ for m in ALL_MODELS}
TABLE_OF = {m.Meta.table_suffix: m.__name__ for m in ALL_MODELS}


def committed(function_id: str) -> tuple[set[str], set[str]]:
    """The models and DynamoDB actions the committed policy of `function_id` grants."""
    policy = json.loads((ROOT / ".chalice" / FUNCTIONS[function_id].policy_file).read_text())
    statements = [s for s in policy["Statement"] if s["Sid"] == "OwnTables"]
    tables = {r["Fn::GetAtt"][0] for s in statements for r in s["Resource"] if "Fn::GetAtt" in r}
    return {t.removesuffix("Table") for t in tables}, {a for s in statements for a in s["Action"]}


def derived() -> dict[str, infra_access.Access]:
    return infra_access.access(models=MODELS)


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_no_handler_uses_a_model_or_an_action_its_role_lacks(function_id):
    uses = derived()[FUNCTIONS[function_id].name]
    models, actions = committed(function_id)
    assert uses.models - models == set(), f"{function_id}: run scripts/build_infra.py"
    assert uses.actions - actions == set(), f"{function_id}: run scripts/build_infra.py"
    assert (models, actions) == (uses.models, uses.actions)  # and nothing more


def test_every_function_of_app_py_is_analysed():
    assert set(derived()) == {f.name for f in FUNCTIONS.values()}


def test_roles_are_narrower_than_every_table_where_the_code_is():
    uses = {name: access.models for name, access in derived().items()}
    assert uses["refresh-token"] == {"AmoToken", "RateBudget"}  # tokens, and the amoCRM budget
    assert uses["deliver-notifications"] == {"Notification", "Lead"}
    assert uses["notification-sweeper"] == {"Notification", "Lead", "AmoContact"}  # + personal-data retention
    assert "IdempotencyRecord" not in uses["continue-sync"] | uses["incremental-sync"]
    assert uses["api_handler"] == MODELS  # every route: the API reaches every table
    for name, access in derived().items():
        assert not {a for a in access.actions if a.endswith(("CreateTable", "DeleteTable", "UpdateTable"))}, name


# -- the derivation on a small project: what it follows, and what it refuses -------------------

APP = """
from chalice import Chalice
from chalicelib import invocation
from chalicelib.services import notes

app = Chalice(app_name="x")

@app.middleware("all")
def observe(event, get_response):
    return invocation.around(event, get_response)

@app.route("/notes")
def list_notes():
    return notes.listed()

@app.schedule("rate(1 hour)", name="sweep")
def sweep(event):
    return notes.swept()
"""


def project(tmp_path: Path, notes: str, **more: str) -> Path:
    files = {
        "app.py": APP,
        "chalicelib/__init__.py": "",
        "chalicelib/invocation.py": "def around(event, get_response):\n    return get_response(event)\n",
        "chalicelib/models.py": "ALL_MODELS = ()\n",
        "chalicelib/services/__init__.py": "",
        "chalicelib/services/notes.py": notes,
        **more,
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_model_used_two_imports_away_and_inside_a_function_is_found(tmp_path):
    notes = (
        "def listed():\n    from chalicelib.services import store\n    return store.load()\n\n"
        "def swept():\n    return None\n"
    )
    store = "from chalicelib.models import Lead, Notification\n\ndef load():\n    return Lead.get(1)\n"
    root = project(tmp_path, notes, **{"chalicelib/services/store.py": store})

    found = infra_access.access(root, models={"Lead", "Notification", "AmoToken"})

    # every model the module names (modules, not functions): Notification too
    assert found["api_handler"].models == {"Lead", "Notification"}
    assert found["api_handler"].actions == {"dynamodb:GetItem"}
    # sweep never calls listed, but reaches its module, which imports store: granted the same
    assert found["sweep"].models == {"Lead", "Notification"}


def test_a_role_without_the_model_its_handler_started_using_is_caught(tmp_path):
    root = project(tmp_path, "from chalicelib.models import AmoToken\n\ndef listed():\n    return AmoToken.query(1)\n")
    uses = infra_access.access(root, models={"Lead", "AmoToken"})["api_handler"]
    role_as_committed = {"Lead"}
    assert uses.models - role_as_committed == {"AmoToken"}  # the check above fails for such a role


def test_a_model_reached_by_a_name_built_at_run_time_is_refused_not_guessed(tmp_path):
    notes = "import importlib\n\ndef listed():\n    return importlib.import_module('chalicelib.models')\n"
    with pytest.raises(ValueError, match="grant by hand"):
        infra_access.access(project(tmp_path, notes), models={"Lead"})


def test_all_models_means_every_table(tmp_path):
    root = project(tmp_path, "from chalicelib.models import ALL_MODELS\n\ndef listed():\n    return ALL_MODELS\n")
    assert infra_access.access(root, models={"Lead", "AmoToken"})["api_handler"].models == {"Lead", "AmoToken"}


# -- the handlers that run without amoCRM, run: every request they send is one their role allows --


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, str]]:
    """(DynamoDB operation, model) of every request PynamoDB sends."""
    from pynamodb.connection.base import Connection

    recorded: list[tuple[str, str]] = []
    dispatch = Connection.dispatch

    def record(self, operation_name, operation_kwargs):
        names = [operation_kwargs.get("TableName")] + list(operation_kwargs.get("RequestItems") or {})
        for item in operation_kwargs.get("TransactItems") or []:
            names += [part.get("TableName") for part in item.values()]
        for name in filter(None, names):
            recorded.append((operation_name, TABLE_OF[name.removeprefix("test-")]))
        return dispatch(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "dispatch", record)
    return recorded


def allowed(function_id: str, requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The requests the committed role of `function_id` does not allow."""
    models, actions = committed(function_id)
    single = {"TransactWriteItems": "ConditionCheckItem", "TransactGetItems": "GetItem"}
    return [
        (operation, model)
        for operation, model in requests
        if model not in models or f"dynamodb:{single.get(operation, operation)}" not in actions
    ]


@pytest.mark.usefixtures("aws")
def test_the_schedules_send_only_requests_their_roles_allow(client, amo, sent):
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    store_tokens(expires_in=-10)
    amo.post(f"{HOST}/oauth2/access_token", json=token_body("access-2", "refresh-2"), headers=HAL)

    client.lambda_.invoke("refresh-token", event)
    assert sent and allowed("RefreshToken", sent) == []
    sent.clear()
    client.lambda_.invoke("notification-sweeper", event)
    assert sent and allowed("NotificationSweeper", sent) == []


def test_the_generated_policies_follow_the_derivation():
    uses = build_infra.uses()
    assert uses["RefreshToken"] == (["AmoTokenTable", "RateBudgetTable"], sorted(derived()["refresh-token"].actions))
