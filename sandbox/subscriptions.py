"""Webhook subscriptions (`/api/v4/webhooks`, admin only), fanning events out to them, and
disabling the ones whose destination keeps failing (reference §9.5, §13)."""

from __future__ import annotations

import copy
import time
from typing import Any

from sandbox import query as q
from sandbox.account import Account, now
from sandbox.errors import problem, validation_error
from sandbox.webhooks import SETTING_FOR, Dispatcher, compact_status


class Subscriptions(Account):
    webhooks: dict[str, dict]  # destination → subscription
    invalid_answers: dict[str, list[float]]  # destination → monotonic times of its invalid answers
    dispatcher: Dispatcher

    def require_webhooks_api(self) -> None:
        """Managing webhooks through the API needs a higher plan and an administrator (reference
        §9.5, §13); the status on a lower plan is undocumented: Config.webhooks_api picks 402 or 403.
        Hooks already subscribed are still delivered."""
        refusal = self.config.webhooks_api
        if refusal == "payment_required":
            raise problem(402, "Payment Required", "Working with webhooks via API is not available on this plan")
        if refusal == "forbidden":
            raise problem(403, "Forbidden", "Working with webhooks via API is not available on this plan")
        self.require_admin()

    def list_webhooks(self, query: dict) -> tuple[int, Any]:
        self.require_webhooks_api()
        destination = q.first(query, "filter[destination]")
        with self.lock:
            hooks = [h for h in self.webhooks.values() if destination is None or h["destination"] == destination]
            if not hooks:
                return 204, None
            return 200, {
                "_total_items": len(hooks),
                "_links": self.link("/api/v4/webhooks"),
                "_embedded": {"webhooks": copy.deepcopy(hooks)},
            }

    def subscribe(self, body: Any) -> dict:
        self.require_webhooks_api()
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("destination"), str)
            or not body["destination"].startswith(("http://", "https://"))
        ):
            raise validation_error(
                [
                    {
                        "request_id": "0",
                        "errors": [
                            {"code": "InvalidUrl", "path": "destination", "detail": "This value is not a valid URL."}
                        ],
                    }
                ]
            )
        settings = body.get("settings")
        known = set(SETTING_FOR.values())
        if not isinstance(settings, list) or not settings or any(s not in known for s in settings):
            raise validation_error(
                [
                    {
                        "request_id": "0",
                        "errors": [
                            {
                                "code": "NotSupportedChoice",
                                "path": "settings",
                                "detail": "One or more of the given values is invalid.",
                            }
                        ],
                    }
                ]
            )
        with self.lock:
            moment = now()
            existing = self.webhooks.get(body["destination"])
            hook = existing or {
                "id": self.new_id(),
                "destination": body["destination"],
                "created_at": moment,
                "account_id": self.config.account_id,
                "created_by": self.first_user_id(),
                "disabled": False,
            }
            if existing and self.config.repost_reenables:
                hook["disabled"] = False
                self.invalid_answers.pop(hook["destination"], None)
            hook.update(
                {"settings": list(dict.fromkeys(settings)), "sort": int(body.get("sort") or 10), "updated_at": moment}
            )
            self.webhooks[hook["destination"]] = hook
            return copy.deepcopy(hook)

    def unsubscribe(self, body: Any) -> None:
        self.require_webhooks_api()
        if not isinstance(body, dict) or not body.get("destination"):
            raise problem(400, "Bad Request", "destination is required")
        with self.lock:
            self.webhooks.pop(body["destination"], None)
            self.invalid_answers.pop(body["destination"], None)

    def disable_webhook(self, body: Any) -> dict:
        """Control action: the subscription for `destination` is disabled at once."""
        destination = body.get("destination") if isinstance(body, dict) else None
        with self.lock:
            hook = self.webhooks.get(destination) if isinstance(destination, str) else None
            if hook is None:
                raise problem(404, "Not Found", "No webhook subscription for this destination")
            hook["disabled"] = True
            return copy.deepcopy(hook)

    def record_answer(self, destination: str, valid: bool) -> None:
        """amoCRM's rule: more than `webhook_disable_after` invalid answers within the window, the
        last one invalid, and the subscription is disabled until re-enabled."""
        if valid:
            return
        with self.lock:
            hook = self.webhooks.get(destination)
            if hook is None:
                return
            moment = time.monotonic()
            window = self.config.webhook_disable_window
            recent = [t for t in self.invalid_answers.get(destination, []) if moment - t < window]
            self.invalid_answers[destination] = recent + [moment]
            if len(self.invalid_answers[destination]) > self.config.webhook_disable_after:
                hook["disabled"] = True

    def wants_deliveries(self, destination: str) -> bool:
        """Whether `destination` still gets webhooks (retries of a deleted or disabled one stop)."""
        with self.lock:
            hook = self.webhooks.get(destination)
            return not hook["disabled"] if hook else destination == self.config.webhook_url

    def emit(self, events: list[tuple[str, str, dict]], status_format: str | None = None) -> None:
        """Queue each (entity, action, legacy item) for every enabled subscription asking for it,
        and for the catch-all `webhook_url`. Stage changes go out in `status_format` (default:
        Config.webhook_format); the compact ones under Config.compact_root (reference §9.4), the
        full ones without `pipeline_id` when Config.status_webhook_pipeline_id is off (§9.3)."""
        with self.lock:
            hooks = [h for h in self.webhooks.values() if not h["disabled"]]
            disabled = {h["destination"] for h in self.webhooks.values() if h["disabled"]}
            fallback = self.config.webhook_url if self.config.webhook_url not in disabled else ""
            compact_statuses = (status_format or self.config.webhook_format) == "compact"
            compact_root = self.config.compact_root
            status_pipeline = self.config.status_webhook_pipeline_id
        for entity, action, item in events:
            compact = compact_statuses and (entity, action) == ("leads", "status")
            if compact:
                item = compact_status(item)
            elif (entity, action) == ("leads", "status") and not status_pipeline:
                item = {key: value for key, value in item.items() if key != "pipeline_id"}
            setting = SETTING_FOR.get(("task" if entity in ("task", "tasks") else entity, action))
            destinations = {h["destination"] for h in hooks if setting in h["settings"]}
            if fallback:
                destinations.add(fallback)
            for destination in destinations:
                self.dispatcher.enqueue(destination, compact_root if compact else entity, action, item, compact=compact)
