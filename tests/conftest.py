"""Test set-up. The environment is fixed here, before the app or chalicelib is imported:
fake AWS credentials and region for moto, no AWS_ENDPOINT_URL (it would bypass moto), and an
amoCRM account on a host that only `responses` answers."""

import os

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AMO_BASE_URL": "https://testaccount.amocrm.ru",
        "AMO_CLIENT_ID": "client-id-123",
        "AMO_CLIENT_SECRET": "client-secret-xyz",
        "AMO_REDIRECT_URI": "https://service.example.com/api/integrations/amo-crm/callback",
        "MAIN_BACKEND_API_KEY": "main-backend-key",
        "TABLE_PREFIX": "test-",
        "AMO_RATE_LIMIT_RPS": "1000",
        "AMO_WEBHOOK_SECRET": "test-webhook-secret",
        "AMO_RATE_BUDGET": "local",  # the shared budget has tests of its own (tests/amo/test_budget.py)
    }
)
for _var in (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_PROFILE",
    "ENABLE_DEV_ENDPOINTS",
    "MAIN_BACKEND_WEBHOOK_URL",
    "AMO_PROPERTY_FIELD_ID",
):
    os.environ.pop(_var, None)

import pytest  # noqa: E402
import responses  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.models import ALL_MODELS  # noqa: E402
from scripts.moto_transactions import item_level_rollback  # noqa: E402

API_KEY = "main-backend-key"
WEBHOOK_SECRET = "test-webhook-secret"
WEBHOOK_PATH = f"/integrations/amo-crm/webhook?secret={WEBHOOK_SECRET}"  # as amoCRM calls it
AMO = os.environ["AMO_BASE_URL"]
MOTO_ACCOUNT = "123456789012"  # moto's default account id


item_level_rollback()  # a failed transaction in moto puts back its own items, not a copy of each table


def serialise_moto(monkeypatch) -> None:
    """Moto answers one request at a time, as scripts/atomic_moto.py makes the local stack's do.
    Moto copies every table a transaction touches (to roll it back) without a lock, so a
    transaction next to another thread's writes fails in moto as it never does in DynamoDB."""
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    original = BotocoreStubber.__call__

    def serialised(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", serialised)


NO_AWS_ENDPOINT = "http://127.0.0.1:9"  # the discard port: an AWS call from a test without `aws` fails at once


@pytest.fixture(autouse=True)
def cold_process(request, monkeypatch):
    """Every test starts as a cold Lambda: nothing memoized, and no AWS unless it asks for `aws`."""
    from chalicelib import memo

    memo.clear_all()  # what a warm Lambda remembers must not leak between tests
    if "aws" in request.fixturenames:
        yield
        return
    monkeypatch.setenv("AWS_ENDPOINT_URL", NO_AWS_ENDPOINT)
    yield
    forget_clients_bound_to(NO_AWS_ENDPOINT)


def forget_clients_bound_to(endpoint: str) -> None:
    """PynamoDB keeps each model's client for the process; one first made by a test without
    `aws` points at the discard port and would keep every later test that uses moto (`aws`, the
    e2e in-process backend) away from it: `cold_process` forgets it when that test ends."""
    for model in ALL_MODELS:
        table = model._connection
        client = table.connection._client if table is not None else None
        if client is not None and client.meta.endpoint_url.startswith(endpoint):
            model._connection = None


@pytest.fixture(scope="session")
def _pristine_tables():
    """Every table, created once through the API as `create-tables` does; each `aws` test then
    starts from a copy of them (creating 15 tables per test took about 75 ms)."""
    import copy

    from moto.dynamodb.models import dynamodb_backends

    with mock_aws():
        for model in ALL_MODELS:
            model.create_table(wait=True)
        return copy.deepcopy(dynamodb_backends[MOTO_ACCOUNT]["us-east-1"].tables)


@pytest.fixture
def aws(monkeypatch, _pristine_tables):
    """A fresh in-process AWS (moto) holding every table, empty. Opt-in: a module that touches
    AWS says `pytestmark = pytest.mark.usefixtures("aws")`; pure-function tests take none
    (tests/e2e and tests/sandbox override it)."""
    import copy

    from moto.dynamodb.models import dynamodb_backends

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # it would bypass moto
    serialise_moto(monkeypatch)
    with mock_aws():
        dynamodb_backends[MOTO_ACCOUNT]["us-east-1"].tables.update(copy.deepcopy(_pristine_tables))
        yield


@pytest.fixture
def atomic_moto(monkeypatch):
    """Serialise moto's request handling. Real DynamoDB applies each conditional write
    atomically; moto evaluates the condition and writes without a lock, so concurrent tests
    need this to see DynamoDB's real semantics."""
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.__call__

    def serialised(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", serialised)


@pytest.fixture(autouse=True)
def amo(request):
    """amoCRM as `responses` mocks; any unregistered request fails instead of reaching a network.
    Started inside `aws` when the test uses it: moto patches requests too and would let
    unmatched calls out."""
    if "aws" in request.fixturenames:
        request.getfixturevalue("aws")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client():
    from chalice.test import Client

    from app import app

    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def dev_endpoints(monkeypatch):
    monkeypatch.setenv("ENABLE_DEV_ENDPOINTS", "true")


FUZZ_CASES = {"count": 0}


def pytest_runtest_logreport(report):
    """Count the requests the fuzz run generated (each reported by its test, on any worker)."""
    if report.when == "call":
        FUZZ_CASES["count"] += sum(value for name, value in report.user_properties if name == "fuzz_case")


def pytest_terminal_summary(terminalreporter):
    """Say how many requests the fuzz run generated (reported in CI's output)."""
    if FUZZ_CASES["count"]:
        terminalreporter.write_line(f"fuzz: {FUZZ_CASES['count']} generated requests")


# The files that take longest, run first: xdist hands out whole files (`--dist loadfile`) in
# collection order, and a long file handed out last would run alone at the end.
LONGEST_FIRST = ("tests/e2e/", "tests/test_fault_matrix.py", "tests/services/test_leads_sync.py")


def pytest_collection_modifyitems(items):
    """Put the longest files first, each file's tests still together and in their order."""

    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)
