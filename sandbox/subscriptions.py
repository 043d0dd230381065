"""Webhook subscriptions (`/api/v4/webhooks`, admin only) and fanning events out to them."""
from __future__ import annotations

import copy
from typing import Any

from sandbox import query as q
from sandbox.account import Account, now
from sandbox.errors import problem, validation_error
from sandbox.webhooks import SETTING_FOR, Dispatcher, compact_status


class Subscriptions(Account):
    webhooks: dict[str, dict]  # destination → subscription
    dispatcher: Dispatcher

    def list_webhooks(self, query: dict) -> tuple[int, Any]:
        self.require_admin()
        destination = q.first(query, "filter[destination]")
        with self.lock:
            hooks = [h for h in self.webhooks.values() if destination is None or h["destination"] == destination]
            if not hooks:
                return 204, None
            return 200, {"_total_items": len(hooks), "_links": self.link("/api/v4/webhooks"),
                         "_embedded": {"webhooks": copy.deepcopy(hooks)}}

    def subscribe(self, body: Any) -> dict:
        self.require_admin()
        if not isinstance(body, dict) or not isinstance(body.get("destination"), str) \
                or not body["destination"].startswith(("http://", "https://")):
            raise validation_error([{"request_id": "0", "errors": [
                {"code": "InvalidUrl", "path": "destination", "detail": "This value is not a valid URL."}]}])
        settings = body.get("settings")
        known = set(SETTING_FOR.values())
        if not isinstance(settings, list) or not settings or any(s not in known for s in settings):
            raise validation_error([{"request_id": "0", "errors": [
                {"code": "NotSupportedChoice", "path": "settings",
                 "detail": "One or more of the given values is invalid."}]}])
        with self.lock:
            moment = now()
            hook = self.webhooks.get(body["destination"]) or {
                "id": self.new_id(), "destination": body["destination"], "created_at": moment,
                "account_id": self.config.account_id, "created_by": self.first_user_id(), "disabled": False}
            hook.update({"settings": list(dict.fromkeys(settings)), "sort": int(body.get("sort") or 10),
                         "updated_at": moment})
            self.webhooks[hook["destination"]] = hook
            return copy.deepcopy(hook)

    def unsubscribe(self, body: Any) -> None:
        self.require_admin()
        if not isinstance(body, dict) or not body.get("destination"):
            raise problem(400, "Bad Request", "destination is required")
        with self.lock:
            self.webhooks.pop(body["destination"], None)

    def emit(self, events: list[tuple[str, str, dict]], status_format: str | None = None) -> None:
        """Queue each (entity, action, legacy item) for every enabled subscription asking for it,
        and for the catch-all `webhook_url`. Stage changes go out in `status_format` (default:
        Config.webhook_format)."""
        with self.lock:
            hooks = [h for h in self.webhooks.values() if not h["disabled"]]
            fallback = self.config.webhook_url
            compact_statuses = (status_format or self.config.webhook_format) == "compact"
        for entity, action, item in events:
            compact = compact_statuses and (entity, action) == ("leads", "status")
            if compact:
                item = compact_status(item)
            setting = SETTING_FOR.get(("task" if entity in ("task", "tasks") else entity, action))
            destinations = {h["destination"] for h in hooks if setting in h["settings"]}
            if fallback:
                destinations.add(fallback)
            for destination in destinations:
                self.dispatcher.enqueue(destination, entity, action, item, compact=compact)
