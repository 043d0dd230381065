"""HTTP front of the sandbox: amoCRM's API v4 and OAuth paths, plus a control API under /_sandbox.

Standard library only (ThreadingHTTPServer, HTTP/1.1 keep-alive), so it starts in well
under a second. amoCRM behaviours reproduced here: HAL+JSON with `application/hal+json`,
problem+json errors, 204 with no body for empty pages, the 7 rps limit (429), the HTML 403
"blocked" page, added latency and random 429/503 faults.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from sandbox import seed
from sandbox.state import ApiError, Config, Sandbox, problem

CONTROL = "/_sandbox"
MAX_URL = 8000
BLOCKED_PAGE = ("<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden"
                "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")

Route = tuple[str, re.Pattern, Callable[..., Any]]


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise problem(400, "Bad Request", "Request body is not valid JSON") from None


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox):
        super().__init__(address, Handler)
        self.sandbox = sandbox
        self.rng = random.Random(7)
        self.main_backend: list[dict] = []  # a stand-in Main Backend for the local run
        self.main_backend_down = False
        self.request_local = threading.local()  # headers of the control request being handled
        self.api_routes = self._api_routes()
        self.control_routes = self._control_routes()

    # -- amoCRM API v4 --------------------------------------------------------------------------

    def _api_routes(self) -> list[Route]:
        s = self.sandbox
        r = re.compile
        return [
            ("GET", r(r"/api/v4/account"), lambda q, b: (200, s.account())),
            ("GET", r(r"/api/v4/leads/pipelines"), lambda q, b: (200, s.list_pipelines())),
            ("GET", r(r"/api/v4/leads/pipelines/(\d+)"), lambda q, b, p: (200, s.get_pipeline(int(p)))),
            ("GET", r(r"/api/v4/leads/pipelines/(\d+)/statuses"),
             lambda q, b, p: (200, {"_embedded": {"statuses": s.get_pipeline(int(p))["_embedded"]["statuses"]}})),
            ("PATCH", r(r"/api/v4/leads/pipelines/(\d+)/statuses/(\d+)"),
             lambda q, b, p, st: (200, s.update_status(int(p), int(st), b))),
            ("DELETE", r(r"/api/v4/leads/pipelines/(\d+)/statuses/(\d+)"),
             lambda q, b, p, st: (s.delete_status(int(p), int(st)), (204, None))[1]),
            ("GET", r(r"/api/v4/users"), lambda q, b: s.list_users(q)),
            ("GET", r(r"/api/v4/roles"), lambda q, b: s.list_roles(q)),
            ("GET", r(r"/api/v4/leads"), lambda q, b: s.list_leads(q)),
            ("POST", r(r"/api/v4/leads"), lambda q, b: (200, s.create_leads(b))),
            ("PATCH", r(r"/api/v4/leads"), lambda q, b: (200, s.update_leads(b))),
            ("POST", r(r"/api/v4/leads/complex"), lambda q, b: (200, s.create_leads(b, complex_=True))),
            ("GET", r(r"/api/v4/leads/notes"), lambda q, b: s.list_notes(None, q)),
            ("POST", r(r"/api/v4/leads/notes"), lambda q, b: (200, s.create_notes(b))),
            ("GET", r(r"/api/v4/leads/(\d+)/notes"), lambda q, b, i: s.list_notes(int(i), q)),
            ("POST", r(r"/api/v4/leads/(\d+)/notes"), lambda q, b, i: (200, s.create_notes(b, int(i)))),
            ("GET", r(r"/api/v4/leads/(\d+)"), lambda q, b, i: s.get_lead(int(i), q)),
            ("PATCH", r(r"/api/v4/leads/(\d+)"), lambda q, b, i: (200, s.update_leads(b, int(i)))),
            ("GET", r(r"/api/v4/contacts"), lambda q, b: s.list_contacts(q)),
            ("POST", r(r"/api/v4/contacts"), lambda q, b: (200, s.create_contacts(b))),
            ("PATCH", r(r"/api/v4/contacts"), lambda q, b: (200, s.update_contacts(b))),
            ("GET", r(r"/api/v4/contacts/(\d+)"), lambda q, b, i: s.get_contact(int(i), q)),
            ("PATCH", r(r"/api/v4/contacts/(\d+)"), lambda q, b, i: (200, s.update_contacts(b, int(i)))),
            ("GET", r(r"/api/v4/tasks"), lambda q, b: s.list_tasks(q)),
            ("POST", r(r"/api/v4/tasks"), lambda q, b: (200, s.create_tasks(b))),
            ("PATCH", r(r"/api/v4/tasks"), lambda q, b: (200, s.update_tasks(b))),
            ("GET", r(r"/api/v4/tasks/(\d+)"), lambda q, b, i: s.get_task(int(i))),
            ("PATCH", r(r"/api/v4/tasks/(\d+)"), lambda q, b, i: (200, s.update_tasks(b, int(i)))),
            ("GET", r(r"/api/v4/webhooks"), lambda q, b: s.list_webhooks(q)),
            ("POST", r(r"/api/v4/webhooks"), lambda q, b: (200, s.subscribe(b))),
            ("DELETE", r(r"/api/v4/webhooks"), lambda q, b: (s.unsubscribe(b), (204, None))[1]),
        ]

    # -- control API (not part of amoCRM) -------------------------------------------------------

    def _control_routes(self) -> list[Route]:
        s = self.sandbox
        r = re.compile
        return [
            ("GET", r(r"/health"), lambda q, b: (200, {"ok": True, **s.counts()})),
            ("POST", r(r"/reset"), lambda q, b: (s.reset(_size(b)), (200, s.counts()))[1]),
            ("POST", r(r"/seed"), lambda q, b: (200, s.seed(_size(b)))),
            ("GET", r(r"/config"), lambda q, b: (200, vars(s.config))),
            ("POST", r(r"/config"), lambda q, b: (200, self._configure(b))),
            ("POST", r(r"/expire-tokens"), lambda q, b: (200, {"expired": s.expire_tokens()})),
            ("GET", r(r"/stats"), lambda q, b: (200, s.stats_view())),
            ("POST", r(r"/stats/reset"), lambda q, b: (200, self._reset_stats())),
            ("POST", r(r"/install"), lambda q, b: (200, self.install(b or {}))),
            ("POST", r(r"/issue-code"), lambda q, b: (200, {"code": s.issue_code((b or {}).get("redirect_uri")
                                                                                  or s.config.redirect_uri)})),
            ("POST", r(r"/trigger-webhook"), lambda q, b: (200, self._trigger(b or {}))),
            ("POST", r(r"/touch"), lambda q, b: (200, {"changed": s.touch(
                (b or {}).get("entity", "leads"), int((b or {}).get("count", 1)),
                bool((b or {}).get("fire_webhooks", False)))})),
            ("GET", r(r"/export/(leads|contacts|tasks)"), lambda q, b, entity: (200, self._export(entity))),
            ("POST", r(r"/main-backend/notifications"), lambda q, b: (200, self._main_backend_receive(b))),
            ("GET", r(r"/main-backend/notifications"), lambda q, b: (200, {"notifications": self.main_backend})),
            ("POST", r(r"/main-backend/config"), lambda q, b: (200, self._main_backend_config(b or {}))),
            ("GET", r(r"/webhook-deliveries"), lambda q, b: (200, {"deliveries": s.dispatcher.deliveries})),
            ("POST", r(r"/flush-webhooks"), lambda q, b: (s.dispatcher.flush(), (200, {"ok": True}))[1]),
        ]

    def _configure(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise problem(400, "Bad Request", "config body must be an object")
        config = self.sandbox.config
        for key, value in body.items():
            if not hasattr(config, key):
                raise problem(400, "Bad Request", f"unknown config key {key}")
            current = getattr(config, key)
            if isinstance(current, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            setattr(config, key, type(current)(value))
        return vars(config)

    def _export(self, entity: str) -> dict:
        """The raw stored entities, so tests can compare what the service mirrored."""
        with self.sandbox.lock:
            table = getattr(self.sandbox, entity)
            return {entity: [v for v in table.values() if not v.get("is_deleted")]}

    def _main_backend_receive(self, body: Any) -> dict:
        """Stand-in for the Main Backend's notification endpoint (`down` answers 503)."""
        if self.main_backend_down:
            raise problem(503, "Service Unavailable", "the stand-in Main Backend is down")
        self.main_backend.append({"body": body, "headers": dict(self.request_local.headers)})
        return {"received": True}

    def _main_backend_config(self, body: dict) -> dict:
        self.main_backend_down = bool(body.get("down", False))
        if body.get("clear"):
            self.main_backend.clear()
        return {"down": self.main_backend_down, "received": len(self.main_backend)}

    def _reset_stats(self) -> dict:
        from sandbox.state import Stats
        with self.sandbox.lock:
            self.sandbox.stats = Stats()
        return {"ok": True}

    def _trigger(self, body: dict) -> dict:
        result = self.sandbox.trigger(body)
        self.sandbox.dispatcher.flush()
        return {**result, "deliveries": self.sandbox.dispatcher.deliveries[-5:]}

    def install(self, body: dict) -> dict:
        """Simulate a person pressing "Install": amoCRM redirects the browser to the callback."""
        s = self.sandbox
        redirect_uri = body.get("redirect_uri") or s.config.redirect_uri
        if not redirect_uri:
            raise problem(400, "Bad Request", "redirect_uri is required (or start the sandbox with one)")
        s.config.redirect_uri = redirect_uri
        params = {"code": s.issue_code(redirect_uri), "referer": f"{s.config.subdomain}.amocrm.ru"}
        if body.get("state"):
            params["state"] = body["state"]
        if body.get("from_widget"):
            params["from_widget"] = "1"
        return _browser_get(redirect_uri, params)

    def deliver_exchanged_code(self, grant: dict) -> None:
        params = {"code": grant["code"], "referer": f"{self.sandbox.config.subdomain}.amocrm.ru",
                  "from_exchange": "1"}
        if grant.get("state"):
            params["state"] = grant["state"]
        threading.Thread(target=_browser_get, args=(self.sandbox.config.redirect_uri, params),
                         daemon=True).start()


def _browser_get(url: str, params: dict) -> dict:
    target = url + ("&" if "?" in url else "?") + urlencode(params)
    try:
        with urllib.request.urlopen(target, timeout=30) as response:
            return {"callback_status": response.status, "callback_body": response.read().decode()[:2000]}
    except urllib.error.HTTPError as error:
        return {"callback_status": error.code, "callback_body": error.read().decode()[:2000]}
    except (urllib.error.URLError, OSError) as error:
        return {"callback_status": None, "callback_body": f"callback unreachable: {error}"}


def _size(body: Any) -> seed.SeedSize:
    body = body or {}
    defaults = seed.SeedSize()
    return seed.SeedSize(**{key: int(body.get(key, getattr(defaults, key))) for key in vars(defaults)})


def _path_key(path: str) -> str:
    return re.sub(r"/\d+", "/{id}", path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: stats are in /_sandbox/stats
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, status: int, body: Any, content_type: str = "application/hal+json") -> None:
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
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sandbox = self.server.sandbox
        path = parts.path.rstrip("/") or "/"
        if len(self.path) > MAX_URL:
            self._send(414, "URI Too Long", "text/plain")
            return
        if path.startswith(CONTROL):
            self.server.request_local.headers = {k.lower(): v for k, v in self.headers.items()
                                                 if k.lower() in ("x-api-key", "idempotency-key", "content-type")}
            self._dispatch(method, path[len(CONTROL):] or "/", parts.query, raw, self.server.control_routes,
                           "application/json", counted=False)
            return
        if not (path.startswith("/api/v4/") or path.startswith("/oauth2/")):
            self._send(404, {"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404,
                             "detail": "Unknown path"}, "application/problem+json")
            return
        config = sandbox.config
        if config.blocked:
            sandbox.record_status(403)
            self._send(403, BLOCKED_PAGE, "text/html")
            return
        if not sandbox.admit(f"{method} {_path_key(path)}"):
            sandbox.record_status(429)
            self._send(429, "Too Many Requests", "text/plain")
            return
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000.0)
        roll = self.server.rng.random()
        if roll < config.error_rate_429 + config.error_rate_503:
            status = 429 if roll < config.error_rate_429 else 503
            with sandbox.lock:
                sandbox.stats.injected_faults += 1
            sandbox.record_status(status)
            self._send(status, "Service temporarily unavailable" if status == 503 else "Too Many Requests",
                       "text/plain")
            return
        if path == "/oauth2/access_token" and method == "POST":
            self._respond(lambda: (200, sandbox.token_grant(_json(raw))), "application/json")
            return
        if path == "/oauth2/exchange_api_key" and method == "POST":
            def exchange() -> tuple[int, Any]:
                self.server.deliver_exchanged_code(sandbox.check_api_key_exchange(_json(raw)))
                return 202, None
            self._respond(exchange, "application/json")
            return
        try:
            sandbox.authorize(self.headers.get("Authorization"))
        except ApiError as error:
            sandbox.record_status(error.status)
            self._send(error.status, error.body, error.content_type)
            return
        self._dispatch(method, path, parts.query, raw, self.server.api_routes, "application/hal+json")

    def _dispatch(self, method: str, path: str, query_string: str, raw: bytes, routes: list[Route],
                  content_type: str, counted: bool = True) -> None:
        query = parse_qs(query_string, keep_blank_values=True)
        matched_path = False
        for route_method, pattern, handler in routes:
            match = pattern.fullmatch(path)
            if not match:
                continue
            matched_path = True
            if route_method == method:
                self._respond(lambda: handler(query, _json(raw), *match.groups()), content_type, counted)
                return
        if matched_path:
            self._send(405, {"title": "Method Not Allowed", "type": "https://httpstatus.es/405", "status": 405,
                             "detail": f"{method} is not allowed here"}, "application/problem+json")
        else:
            self._send(404, {"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404,
                             "detail": "Unknown path"}, "application/problem+json")

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
    """Start a sandbox in this process (tests); `server.sandbox.base_url()` is its address."""
    server = serve(host, port, sandbox or Sandbox(Config()))
    threading.Thread(target=server.serve_forever, name="sandbox", daemon=True).start()
    return server
