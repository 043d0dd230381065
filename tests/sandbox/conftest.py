import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests

from sandbox import seed
from sandbox.server import POLL_SECONDS, start_in_thread
from sandbox.state import Config, Sandbox


@pytest.fixture
def sandbox():
    """A sandbox in this process on a free port, with small seed data."""
    server = start_in_thread(
        Sandbox(Config(redirect_uri="http://127.0.0.1:9/callback"), seed.SeedSize(leads=30, contacts=12, tasks=10))
    )
    yield server.sandbox
    server.stop()


@pytest.fixture
def token(sandbox):
    """An access token obtained through the authorization-code grant."""
    code = sandbox.issue_code("http://127.0.0.1:9/callback")
    body = requests.post(
        f"{sandbox.base_url()}/oauth2/access_token",
        json={
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-client-secret",
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:9/callback",
        },
    ).json()
    return body


@pytest.fixture
def api(sandbox, token):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    base = sandbox.base_url()

    def call(method, path, **kwargs):
        return session.request(method, base + path, **kwargs)

    return call


@pytest.fixture
def control(sandbox):
    """The control API over HTTP: `control("/config", {...})` POSTs, `method=` for others."""

    def call(path, body=None, method="POST"):
        return requests.request(method, f"{sandbox.base_url()}/_sandbox{path}", json=body)

    return call


class Receiver:
    """A tiny HTTP server that records what is POSTed to it (a stand-in webhook endpoint);
    it answers `status` after `delay` seconds (the next of `statuses` first, while any are left)."""

    def __init__(self):
        self.bodies = []
        self.status = 200
        self.statuses = []
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.bodies.append((self.headers["Content-Type"], raw.decode(), self.path))
                time.sleep(outer.delay)
                self.send_response(outer.statuses.pop(0) if outer.statuses else outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True).start()

    def pairs(self, index=-1):
        return parse_qsl(self.bodies[index][1])


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def other_receiver():
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture(autouse=True)
def aws():
    """The sandbox's own tests need no AWS (overrides the suite-wide moto fixture)."""
    yield


@pytest.fixture(autouse=True)
def amo():
    """Real HTTP to the in-process sandbox (overrides the suite-wide `responses` mock)."""
    yield None
