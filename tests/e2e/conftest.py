"""The end-to-end behaviours run twice: in-process (`inprocess`) and against the local stack
over HTTP (`stack`, marker `e2e`, so `pytest -m "not e2e"` runs only the in-process half).

`backend` is module-scoped: each test module starts from a freshly installed account (see
backends.py), and the tests of a module share it, so each is written to hold whatever the
module's earlier tests did. The stack is started once per session, on the first `stack` test.
"""

import pytest

from scripts.local_stack import Stack, free_port
from tests.e2e.backends import PROPERTY_FIELD_ID, SEED, WEBHOOK_SECRET, InProcess, OnStack


@pytest.fixture(autouse=True)
def aws():
    """Each backend brings its own DynamoDB (overrides the suite-wide per-test moto)."""
    yield


@pytest.fixture(autouse=True)
def amo():
    """amoCRM is the sandbox, over real HTTP (overrides the suite-wide `responses` mock)."""
    yield None


@pytest.fixture(scope="session")
def stack():
    sandbox_port = free_port()
    stack = Stack(
        moto_port=free_port(),
        sandbox_port=sandbox_port,
        api_port=free_port(),
        seed=SEED,
        # whatever this process's environment says (tests/conftest.py, an in-process
        # backend), the stack gets the settings the in-process backend uses
        extra_env={
            "TABLE_PREFIX": "e2e-",
            "AMO_BASE_URL": "",
            "AMO_RATE_LIMIT_RPS": "7",
            "AMO_RATE_BUDGET": "shared",
            "AMO_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "AMO_PROPERTY_FIELD_ID": PROPERTY_FIELD_ID,
            "ENABLE_DEV_ENDPOINTS": "true",
            "MAIN_BACKEND_WEBHOOK_URL": f"http://127.0.0.1:{sandbox_port}/_sandbox/main-backend/notifications",
        },
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module", params=["inprocess", pytest.param("stack", marks=pytest.mark.e2e)])
def backend(request):
    if request.param == "stack":
        backend = OnStack(request.getfixturevalue("stack"))
        backend.fresh_account()
        yield backend
    else:
        with InProcess() as backend:
            yield backend


@pytest.fixture(scope="module")
def mirrored(backend):
    """The module's account subscribed, its stages mapped and its leads mirrored."""
    backend.call("POST", "webhook/register")
    backend.call("POST", "sync-pipelines")
    backend.call("POST", "mapping/auto-apply")
    backend.call("POST", "sync-leads?limit=0")
    return backend


@pytest.fixture
def switch(backend):
    """Set sandbox switches for one test; the values they had come back after it."""
    before = backend.sandbox("GET", "/_sandbox/config")[1]
    touched: set[str] = set()

    def set_switches(**config):
        touched.update(config)
        status, body = backend.sandbox("POST", "/_sandbox/config", config)
        assert status == 200, body

    yield set_switches
    if touched:
        backend.sandbox("POST", "/_sandbox/config", {key: before[key] for key in touched})
