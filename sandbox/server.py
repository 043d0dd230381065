"""HTTP front of the sandbox: amoCRM's API v4 and OAuth paths, plus a control API under /_sandbox.

Standard library only (ThreadingHTTPServer, HTTP/1.1 keep-alive), so it starts in well
under a second. amoCRM behaviours reproduced here: HAL+JSON with `application/hal+json`,
problem+json errors, 204 with no body for empty pages, the 7 rps limit (HTML 429), the HTML 403
"blocked" page (also reached by itself after too many 429s), the unpaid account's 402, added
latency and random 429/503 faults. Route tables: routes.py, control.py.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.account import now as account_now
from sandbox.control import Controls
from sandbox.errors import ApiError, problem
from sandbox.routes import Request, Route, api_routes, oauth_routes
from sandbox.state import Config, Sandbox

CONTROL = "/_sandbox"
MAX_URL = 8000
BLOCKED_PAGE = (
    "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden"
    "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
TOO_MANY_PAGE = (
    "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many"
    " Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
NOT_FOUND = {"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "Unknown path"}
# how often a server thread looks for a shutdown() request: shutdown() waits up to this long
# (serve_forever's default, 0.5 s, cost every test that starts a sandbox half a second)
POLL_SECONDS = 0.05


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    # a keep-alive connection holds its handler thread until the client hangs up: closing the
    # server must not wait for those threads
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox):
        super().__init__(address, Handler)
        self.sandbox = sandbox
        self.rng = random.Random(7)
        self.controls = Controls(sandbox)
        self.api_routes = api_routes(sandbox)
        self.oauth_routes = oauth_routes(sandbox, self.controls.deliver_exchanged_code)
        self.control_routes = self.controls.routes()

    def stop(self) -> None:
        """Stop a server started by `start_in_thread`: the serving loop, the socket, the webhook sender."""
        self.shutdown()
        self.server_close()
        self.sandbox.dispatcher.stop()


def _path_key(path: str) -> str:
    return re.sub(r"/\d+", "/{id}", path)


def _match(routes: list[Route], method: str, path: str) -> tuple[Route | None, tuple, bool]:
    """The route for method + path, its path groups, and whether any route has that path."""
    path_known = False
    for route in routes:
        match = route.pattern.fullmatch(path)
        if match:
            path_known = True
            if route.method == method:
                return route, match.groups(), True
    return None, (), path_known


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: stats are in /_sandbox/stats
        return

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header on the account's clock, the one every timestamp it stamps is on."""
        return super().date_time_string(account_now() if timestamp is None else timestamp)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(
        self, status: int, body: Any, content_type: str = "application/hal+json", headers: dict[str, str] | None = None
    ) -> None:
        if isinstance(body, (dict, list)):
            payload = json.dumps(body, ensure_ascii=False).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = b""
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", content_type + ("; charset=utf-8" if "html" in content_type else ""))
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-Id", f"{time.time_ns():x}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sandbox = self.server.sandbox
        path = parts.path.rstrip("/") or "/"
        request = Request(parse_qs(parts.query, keep_blank_values=True), raw, self.headers)
        if len(self.path) > MAX_URL:
            self._send(414, "URI Too Long", "text/plain")
            return
        if path.startswith(CONTROL):
            self._dispatch(
                method,
                path[len(CONTROL) :] or "/",
                request,
                self.server.control_routes,
                "application/json",
                counted=False,
            )
            return
        if not (path.startswith("/api/v4/") or path.startswith("/oauth2/")):
            self._send(404, NOT_FOUND, "application/problem+json")
            return
        if self._refused(method, path):
            return
        route, groups, _ = _match(self.server.oauth_routes, method, path)
        if route is not None:
            self._respond(lambda: route.handler(request, *groups), "application/json")
            return
        try:
            sandbox.authorize(self.headers.get("Authorization"))
            if sandbox.config.unpaid:  # an account state, not a fault of the request (§3.5, §13)
                raise problem(402, "Payment Required", "Аккаунт не оплачен")
        except ApiError as error:
            sandbox.record_status(error.status)
            self._send(error.status, error.body, error.content_type)
            return
        self._dispatch(method, path, request, self.server.api_routes, "application/hal+json")

    def _refused(self, method: str, path: str) -> bool:
        """amoCRM's gates before any handler: the blocked account, the rate limit, latency, faults."""
        sandbox = self.server.sandbox
        config = sandbox.config
        if config.blocked:
            sandbox.record_status(403)
            self._send(403, BLOCKED_PAGE, "text/html")
            return True
        if not sandbox.admit(f"{method} {_path_key(path)}"):
            self._too_many()
            return True
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000.0)
        roll = self.server.rng.random()
        if roll < config.error_rate_429 + config.error_rate_503:
            sandbox.record_fault()
            if roll < config.error_rate_429:
                self._too_many()
            else:
                sandbox.record_status(503)
                self._send(503, "Service temporarily unavailable", "text/plain")
            return True
        return False

    def _too_many(self) -> None:
        """amoCRM's 429: an nginx HTML page, no Retry-After unless one is configured (§3.4, §13)."""
        retry_after = self.server.sandbox.refuse()
        self._send(
            429,
            TOO_MANY_PAGE,
            "text/html",
            {"Retry-After": str(retry_after)} if retry_after is not None else None,
        )

    def _dispatch(
        self, method: str, path: str, request: Request, routes: list[Route], content_type: str, counted: bool = True
    ) -> None:
        route, groups, path_known = _match(routes, method, path)
        if route is not None:
            self._respond(lambda: route.handler(request, *groups), content_type, counted)
        elif path_known:
            self._send(
                405,
                {
                    "title": "Method Not Allowed",
                    "type": "https://httpstatus.es/405",
                    "status": 405,
                    "detail": f"{method} is not allowed here",
                },
                "application/problem+json",
            )
        else:
            self._send(404, NOT_FOUND, "application/problem+json")

    def _respond(self, produce: Callable[[], tuple[int, Any]], content_type: str, counted: bool = True) -> None:
        try:
            status, body = produce()
        except ApiError as error:
            status, body, content_type = error.status, error.body, error.content_type
        if counted:
            self.server.sandbox.record_status(status)
        self._send(status, body, content_type)


def serve(host: str, port: int, sandbox: Sandbox) -> SandboxServer:
    server = SandboxServer((host, port), sandbox)
    if not sandbox.config.public_url:
        sandbox.config.public_url = f"http://{host}:{server.server_address[1]}"
    return server


def start_in_thread(sandbox: Sandbox | None = None, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    """Start a sandbox in this process (tests); `server.sandbox.base_url()` is its address,
    `server.stop()` stops it at once."""
    server = serve(host, port, sandbox or Sandbox(Config()))
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name="sandbox", daemon=True
    )
    serving.start()
    return server
