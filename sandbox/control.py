"""The control API under `/_sandbox` (not part of amoCRM): reset and seed, switches, stats, the
"Install" button, webhook triggers, exports, and a stand-in Main Backend for the local run."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from sandbox import seed
from sandbox.errors import problem
from sandbox.routes import Request, Route, table
from sandbox.state import Sandbox

FORWARDED_HEADERS = ("x-api-key", "idempotency-key", "content-type")


class Controls:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.main_backend: list[dict] = []  # what the stand-in Main Backend received
        self.main_backend_down = False

    def routes(self) -> list[Route]:
        s = self.sandbox
        return table(
            ("GET", r"/health", lambda r: (200, {"ok": True, **s.counts()})),
            ("POST", r"/reset", self.reset),
            ("POST", r"/seed", lambda r: (200, s.seed(_size(r.body)))),
            ("GET", r"/config", lambda r: (200, vars(s.config))),
            ("POST", r"/config", lambda r: (200, s.config.update(r.body))),
            ("POST", r"/expire-tokens", lambda r: (200, {"expired": s.expire_tokens()})),
            ("POST", r"/long-lived-token", lambda r: (200, s.long_lived_token(r.body))),
            ("POST", r"/rename", lambda r: (200, s.rename(r.body))),
            ("GET", r"/stats", lambda r: (200, s.stats_view())),
            ("POST", r"/stats/reset", self.reset_stats),
            ("POST", r"/throttle", lambda r: (200, s.throttle(r.body))),
            ("POST", r"/install", lambda r: (200, self.install(r.body or {}))),
            (
                "POST",
                r"/issue-code",
                lambda r: (200, {"code": s.issue_code((r.body or {}).get("redirect_uri") or s.config.redirect_uri)}),
            ),
            ("POST", r"/trigger-webhook", lambda r: (200, self.trigger(r.body or {}))),
            ("POST", r"/touch", lambda r: (200, self.touch(r.body or {}))),
            ("POST", r"/delete", lambda r: (200, s.delete_entity(*s.trash_body(r.body)))),
            ("POST", r"/restore", lambda r: (200, s.restore_entity(*s.trash_body(r.body)))),
            ("GET", r"/export/(leads|contacts|tasks)", lambda r, entity: (200, self.export(entity))),
            ("POST", r"/main-backend/notifications", self.main_backend_receive),
            ("GET", r"/main-backend/notifications", lambda r: (200, {"notifications": self.main_backend})),
            ("POST", r"/main-backend/config", lambda r: (200, self.main_backend_config(r.body or {}))),
            ("POST", r"/webhooks/disable", lambda r: (200, s.disable_webhook(r.body))),
            ("GET", r"/webhook-deliveries", lambda r: (200, {"deliveries": s.dispatcher.deliveries})),
            ("POST", r"/flush-webhooks", self.flush_webhooks),
        )

    def reset(self, request: Request) -> tuple[int, dict]:
        self.sandbox.reset(_size(request.body))
        return 200, self.sandbox.counts()

    def reset_stats(self, request: Request) -> tuple[int, dict]:
        self.sandbox.reset_stats()
        return 200, {"ok": True}

    def flush_webhooks(self, request: Request) -> tuple[int, dict]:
        self.sandbox.dispatcher.flush()
        return 200, {"ok": True}

    def touch(self, body: dict) -> dict:
        return {
            "changed": self.sandbox.touch(
                body.get("entity", "leads"), int(body.get("count", 1)), bool(body.get("fire_webhooks", False))
            )
        }

    def trigger(self, body: dict) -> dict:
        result = self.sandbox.trigger(body)
        self.sandbox.dispatcher.flush()
        return {**result, "deliveries": self.sandbox.dispatcher.deliveries[-5:]}

    def export(self, entity: str) -> dict:
        """The raw stored entities, so tests can compare what the service mirrored."""
        with self.sandbox.lock:
            stored = getattr(self.sandbox, entity)
            return {entity: [v for v in stored.values() if not v.get("is_deleted")]}

    def main_backend_receive(self, request: Request) -> tuple[int, dict]:
        """Stand-in for the Main Backend's notification endpoint (`down` answers 503)."""
        if self.main_backend_down:
            raise problem(503, "Service Unavailable", "the stand-in Main Backend is down")
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
        self.main_backend.append({"body": request.body, "headers": headers})
        return 200, {"received": True}

    def main_backend_config(self, body: dict) -> dict:
        self.main_backend_down = bool(body.get("down", False))
        if body.get("clear"):
            self.main_backend.clear()
        return {"down": self.main_backend_down, "received": len(self.main_backend)}

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
        return browser_get(redirect_uri, params)

    def deliver_exchanged_code(self, grant: dict) -> None:
        params = {"code": grant["code"], "referer": f"{self.sandbox.config.subdomain}.amocrm.ru", "from_exchange": "1"}
        if grant.get("state"):
            params["state"] = grant["state"]
        threading.Thread(target=browser_get, args=(self.sandbox.config.redirect_uri, params), daemon=True).start()


def browser_get(url: str, params: dict) -> dict:
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
