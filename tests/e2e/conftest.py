"""End-to-end fixtures: the real local stack (moto server, sandbox, `chalice local`) on free
ports, started once per test session and stopped by pid at the end."""
import pytest

from scripts.local_stack import Stack, free_port, http


class Service:
    """The running stack, driven over HTTP like the Main Backend and an operator would."""

    def __init__(self, stack: Stack):
        self.stack = stack

    def call(self, method: str, path: str, body=None, key: bool = True, timeout: float = 120):
        headers = {"X-API-Key": self.stack.api_key} if key else {}
        return http(method, f"{self.stack.api_url}/{path.lstrip('/')}", body, headers, timeout)

    def sandbox(self, method: str, path: str, body=None):
        return http(method, f"{self.stack.sandbox_url}{path}", body)


@pytest.fixture(scope="session")
def service():
    stack = Stack(moto_port=free_port(), sandbox_port=free_port(), api_port=free_port(),
                  seed={"leads": 300, "contacts": 150, "tasks": 60},
                  # the suite's in-process settings (conftest.py) must not leak into the stack:
                  # the service paces at amoCRM's real 7 rps against the sandbox's real limit
                  extra_env={"TABLE_PREFIX": "e2e-", "AMO_BASE_URL": "", "AMO_RATE_LIMIT_RPS": "7"})
    try:
        stack.start()
        stack.connect()
        yield Service(stack)
    finally:
        stack.stop()
