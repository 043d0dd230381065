"""The two backends the end-to-end behaviours run against, behind one small interface.

- `InProcess`: the Chalice app through `chalice.test.Client`, DynamoDB in moto (`mock_aws`),
  amoCRM played by a real sandbox in a thread of the test process. The sandbox calls the app
  back (the "Install" redirect, webhook deliveries) through `Bridge`, a small HTTP server in
  the same process that hands each request to the same test client.
- `OnStack`: the local stack (moto server, sandbox, `chalice local`) over HTTP.

Both expose `call` (the service's API), `sandbox` (the sandbox's control API), `connect`
(press "Install" in the sandbox), `cli` (the operator's command line) and `scan` (a table's
raw items). Each test module starts from
the same place on both: empty tables, a sandbox seeded with `SEED` and every fault switched off,
the service freshly installed (a new `InProcess`, or `OnStack.fresh_account()`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import responses
from boto3.dynamodb.types import TypeDeserializer
from chalice.test import Client
from moto import mock_aws

from app import app
from chalicelib import cli, memo, settings
from chalicelib.models import ALL_MODELS
from sandbox.seed import SeedSize
from sandbox.server import POLL_SECONDS, start_in_thread
from sandbox.state import Config, Sandbox
from scripts.local_stack import API_PREFIX, ROOT, Stack, http
from tests.conftest import serialise_moto

# one account for the whole suite on both backends: 2 pages of leads (250 a page), 1 of contacts
SEED = {"pipelines": 2, "users": 5, "leads": 300, "contacts": 150, "tasks": 60}
WEBHOOK_SECRET = "local-webhook-secret"
PROPERTY_FIELD_ID = "900001"


def _encode(body: Any, headers: dict | None) -> tuple[bytes, dict]:
    """A JSON body (dict or list) or a raw one (str or bytes, with the caller's Content-Type)."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    if body is None:
        return b"", headers
    if isinstance(body, (str, bytes)):
        return body.encode() if isinstance(body, str) else body, headers
    return json.dumps(body).encode(), headers


_DESERIALIZE = TypeDeserializer().deserialize


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw.decode(errors="replace")


class Backend:
    """What a behaviour test may do; subclasses say how the service is reached."""

    api_key: str
    sandbox_url: str

    def call(
        self, method: str, path: str, body: Any = None, key: bool = True, headers: dict | None = None
    ) -> tuple[int, Any]:
        """One request to the service's API (`path` below /integrations/amo-crm)."""
        raise NotImplementedError

    def sandbox(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(method, f"{self.sandbox_url}{path}", body)

    def stats(self) -> dict:
        """The sandbox's counters: requests per path, statuses, refreshes, 429s (GET /_sandbox/stats)."""
        return self.sandbox("GET", "/_sandbox/stats")[1]

    def connect(self, with_state: bool = True) -> dict:
        """Open the service's consent address and allow access: the sandbox redirects to the
        callback with a code and our state (`with_state=False`: amoCRM's own "Install" button,
        which carries no state)."""
        state = self.call("GET", "connect")[1]["state"] if with_state else None
        status, body = self.sandbox("POST", "/_sandbox/install", {"state": state} if state else {})
        assert status == 200, body
        if with_state:
            assert body.get("callback_status") == 200, body
        return body

    def cli(self, *args: str, stdin: str = "") -> tuple[int, str]:
        """`python -m chalicelib.cli <args>` against this backend's tables and sandbox, with
        `stdin` as its input: (exit code, what it printed)."""
        raise NotImplementedError

    def scan(self, table: str, *attributes: str) -> list[dict]:
        """Every item of one of the service's tables (only `attributes`, if given), as plain
        values (numbers as int or float)."""
        client, prefix = self._dynamodb()
        projection = {}
        if attributes:
            names = {f"#a{i}": name for i, name in enumerate(attributes)}
            projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        items = []
        for page in client.get_paginator("scan").paginate(TableName=f"{prefix}{table}", **projection):
            items.extend({name: _plain(_DESERIALIZE(value)) for name, value in item.items()} for item in page["Items"])
        return items

    def _dynamodb(self) -> tuple[Any, str]:
        raise NotImplementedError


class OnStack(Backend):
    """The running local stack, driven over HTTP like the Main Backend and an operator would."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.api_key = stack.api_key
        self.sandbox_url = stack.sandbox_url

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: bool = True,
        headers: dict | None = None,
        timeout: float = 120,
    ) -> tuple[int, Any]:
        data, headers = _encode(body, {**({"X-API-Key": self.api_key} if key else {}), **(headers or {})})
        request = urllib.request.Request(
            f"{self.stack.api_url}/{path.lstrip('/')}", data=data or None, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())

    def cli(self, *args: str, stdin: str = "") -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "chalicelib.cli", *args],
            cwd=ROOT,
            env=self.stack.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout + done.stderr

    def _dynamodb(self) -> tuple[Any, str]:
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.stack.moto_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        return client, self.stack.env["TABLE_PREFIX"]

    def _empty_tables(self) -> None:
        """Reset the moto server and create the service's tables again as they were: one client
        and two calls a table, where `create-tables` takes seconds to build a client per model."""
        client, prefix = self._dynamodb()
        names = [
            name
            for page in client.get_paginator("list_tables").paginate()
            for name in page["TableNames"]
            if name.startswith(prefix)
        ]
        tables = [
            (
                client.describe_table(TableName=name)["Table"],
                client.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
            )
            for name in names
        ]
        status, _ = http("POST", f"{self.stack.moto_url}/moto-api/reset")
        assert status == 200
        for table, ttl in tables:
            client.create_table(**_definition(table))
            if ttl.get("TimeToLiveStatus") == "ENABLED":
                client.update_time_to_live(
                    TableName=table["TableName"],
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )

    def fresh_account(self) -> None:
        """Empty tables, the sandbox reseeded with SEED and every switch off, the service installed."""
        self.sandbox("POST", "/_sandbox/flush-webhooks")  # nothing from the last module arrives late
        self._empty_tables()
        self.sandbox("POST", "/_sandbox/reset", SEED)
        self.sandbox(
            "POST",
            "/_sandbox/config",
            {
                "error_rate_429": 0.0,
                "error_rate_503": 0.0,
                "latency_ms": 0,
                "non_admin": False,
                "blocked": False,
                "subdomain": "sandbox",
                "filters": "on",
                "webhook_format": "full",
                "error_shape": "validation-errors",
                "webhook_timeout": 2.0,
                "webhook_disable_after": 100,
                "repost_reenables": True,
            },
        )
        self.sandbox("POST", "/_sandbox/throttle", {"seconds": 0})
        self.sandbox("POST", "/_sandbox/main-backend/config", {"clear": True, "down": False})
        self.connect()


def _definition(table: dict) -> dict:
    """CreateTable arguments for an on-demand table as DescribeTable describes it."""
    definition = {
        "TableName": table["TableName"],
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if table.get(kind):
            definition[kind] = [
                {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
                for index in table[kind]
            ]
    return definition


class Bridge(ThreadingHTTPServer):
    """An HTTP front for the in-process app, so the sandbox can call it back like the real one."""

    daemon_threads = True
    block_on_close = False  # as the sandbox's server: keep-alive handler threads never delay stop()

    def __init__(self, forward: Callable[[str, str, dict, bytes], tuple[int, dict, bytes]]):
        super().__init__(("127.0.0.1", 0), _BridgeHandler)
        self.forward = forward
        self.host = f"127.0.0.1:{self.server_address[1]}"
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name="bridge", daemon=True
        ).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _BridgeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Bridge

    def log_message(self, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.forward(self.command, self.path, dict(self.headers), body)
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class InProcess(Backend):
    """The app in this process: `chalice.test.Client`, moto, and a sandbox in a thread.

    A context manager: for its lifetime the service's environment holds the values the local
    stack gives `chalice local` (restored after), and DynamoDB is a fresh moto.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # Chalice keeps `current_request` on the app: one request at a time
        self._exit = ExitStack()

    def __enter__(self) -> InProcess:
        with self._exit as exit:
            self._start(exit)
            self._exit = exit.pop_all()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._exit.close()

    def _start(self, exit: ExitStack) -> None:
        self.bridge = Bridge(self._forward)
        exit.callback(self.bridge.stop)
        redirect_uri = f"http://{self.bridge.host}{API_PREFIX}/callback"
        config = Config(redirect_uri=redirect_uri)
        server = start_in_thread(Sandbox(config, SeedSize(**SEED)))
        exit.callback(server.stop)
        self.sandbox_url = server.sandbox.base_url()

        env = exit.enter_context(pytest.MonkeyPatch.context())
        for name, value in {
            "AMO_BASE_URL": self.sandbox_url,
            "AMO_CLIENT_ID": config.client_id,
            "AMO_CLIENT_SECRET": config.client_secret,
            "AMO_REDIRECT_URI": redirect_uri,
            "AMO_PROPERTY_FIELD_ID": PROPERTY_FIELD_ID,
            "AMO_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "AMO_RATE_LIMIT_RPS": "7",
            "ENABLE_DEV_ENDPOINTS": "true",
            "MAIN_BACKEND_WEBHOOK_URL": f"{self.sandbox_url}/_sandbox/main-backend/notifications",
        }.items():
            env.setenv(name, value)
        self.api_key = os.environ["MAIN_BACKEND_API_KEY"]  # tests/conftest.py's

        memo.clear_all()  # a cold Lambda: nothing remembered from other tests
        serialise_moto(env)
        exit.enter_context(mock_aws())
        for model in ALL_MODELS:
            model.create_table(wait=True)
        # started inside mock_aws (which lets unmatched requests out): a request for anything
        # but the sandbox (under either of its local names: its api_domain is the other one)
        # fails instead of reaching a network
        mock = exit.enter_context(responses.RequestsMock(assert_all_requests_are_fired=False))
        mock.add_passthru(self.sandbox_url)
        mock.add_passthru(self.sandbox_url.replace("127.0.0.1", "localhost"))
        self.client = Client(app)
        self.connect()

    def call(
        self, method: str, path: str, body: Any = None, key: bool = True, headers: dict | None = None
    ) -> tuple[int, Any]:
        data, headers = _encode(body, {**({"X-API-Key": self.api_key} if key else {}), **(headers or {})})
        # the service builds its own URLs (the webhook it registers) from Host: make them the bridge's
        status, _, payload = self._forward(
            method, f"{API_PREFIX}/{path.lstrip('/')}", {"Host": self.bridge.host, **headers}, data
        )
        return status, _decode(payload)

    def cli(self, *args: str, stdin: str = "") -> tuple[int, str]:
        printed = io.StringIO()
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level  # the CLI sets up logging its own way
        try:
            with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
                patch.setattr(sys, "stdin", io.StringIO(stdin))
                with contextlib.redirect_stderr(printed):
                    code = cli.main(list(args))
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        return code, printed.getvalue()

    def _forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
        with self._lock:
            response = self.client.http.request(method, path, headers=headers, body=body)
        return response.status_code, dict(response.headers), response.body

    def _dynamodb(self) -> tuple[Any, str]:
        return boto3.client("dynamodb", region_name="us-east-1"), settings.table_prefix()
