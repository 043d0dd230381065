"""Control actions that change data the way a person in amoCRM would, firing the webhooks
(`POST /_sandbox/trigger-webhook`, `POST /_sandbox/touch`)."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.account import Account, now
from sandbox.errors import problem
from sandbox.webhooks import legacy_lead


class Triggers(Account):
    def touch(self, entity: str, count: int, fire_webhooks: bool = False) -> list[int]:
        """Change `count` entities (their updated_at moves to now)."""
        table = {"leads": self.leads, "contacts": self.contacts, "tasks": self.tasks}.get(entity)
        if table is None:
            raise problem(400, "Bad Request", "entity must be leads, contacts or tasks")
        events = []
        with self.lock:
            ids = sorted(table)[:: max(1, len(table) // max(1, count))][:count]
            for entity_id in ids:
                table[entity_id]["updated_at"] = now()
                if entity == "leads":
                    events.append(("leads", "update", legacy_lead(table[entity_id])))
        if fire_webhooks:
            self.emit(events)
        return ids

    def trigger(self, body: dict) -> dict:
        """`{entity, action, id?, …}`: the entity (or the first fitting one) changes; the answer says which."""
        entity, action = body.get("entity", "leads"), body.get("action", "status")
        entity = "task" if entity == "tasks" else entity
        actions: dict[tuple[str, str], Callable[[dict], dict]] = {
            ("leads", "status"): self._move_lead,
            ("leads", "update"): self._rename_lead,
            ("leads", "delete"): lambda body: self.delete_entity("leads", _required_id(body, "lead")),
            ("leads", "restore"): lambda body: self.restore_entity("leads", body.get("id")),
            ("leads", "responsible"): self._reassign_lead,
            ("contacts", "update"): self._rename_contact,
            ("contacts", "delete"): lambda body: self.delete_entity("contacts", _required_id(body, "contact")),
            ("contacts", "restore"): lambda body: self.restore_entity("contacts", body.get("id")),
            ("task", "update"): self._edit_task,
            ("task", "delete"): lambda body: self.delete_entity("tasks", _required_id(body, "task")),
        }
        if (entity, action) not in actions:
            raise problem(400, "Bad Request", f"unsupported trigger {entity}/{action}")
        if body.get("format") not in (None, "full", "compact"):
            raise problem(400, "Bad Request", "format must be full or compact")
        if body.get("format") and (entity, action) != ("leads", "status"):
            raise problem(400, "Bad Request", "format applies to leads/status only")
        return {**actions[(entity, action)](body), "entity": entity, "action": action}

    def _live_lead(self, lead_id: int | None) -> dict:
        lead = (
            self.leads.get(lead_id)
            if lead_id
            else next((item for item in self.leads.values() if not item.get("is_deleted")), None)
        )
        if lead is None:
            raise problem(404, "Not Found", "Lead not found")
        return lead

    def _move_lead(self, body: dict) -> dict:
        """To `status_id`, or to the next stage of its pipeline."""
        with self.lock:
            lead = self._live_lead(body.get("id"))
            pipeline_id = body.get("pipeline_id", lead["pipeline_id"])
            status_id = body.get("status_id")
            if status_id is None:
                stages = self.stages_in_order(pipeline_id)
                current = stages.index(lead["status_id"]) if lead["status_id"] in stages else 0
                status_id = stages[(current + 1) % len(stages)]
        self.update_leads(
            [{"id": lead["id"], "pipeline_id": pipeline_id, "status_id": status_id}], status_format=body.get("format")
        )
        return {"id": lead["id"], "status_id": status_id, "pipeline_id": pipeline_id}

    @staticmethod
    def _given_or_first(table: dict[int, dict], item_id: int | None) -> dict:
        """The item `item_id`, or the table's first item when none is given or it is not there."""
        return (table.get(item_id) if item_id is not None else None) or next(iter(table.values()))

    def _rename_lead(self, body: dict) -> dict:
        lead = self._given_or_first(self.leads, body.get("id"))
        self.update_leads([{"id": lead["id"], "name": body.get("name", lead["name"] + " (изм.)")}])
        return {"id": lead["id"]}

    def _reassign_lead(self, body: dict) -> dict:
        """To `responsible_user_id`, or to the user after the current one."""
        with self.lock:
            lead = self._live_lead(body.get("id"))
            old = lead["responsible_user_id"]
            users = sorted(self.users)
            new = body.get("responsible_user_id") or users[(users.index(old) + 1) % len(users) if old in users else 0]
        self.update_leads([{"id": lead["id"], "responsible_user_id": new}])
        return {"id": lead["id"], "responsible_user_id": new, "old_responsible_user_id": old}

    def _rename_contact(self, body: dict) -> dict:
        contact = self._given_or_first(self.contacts, body.get("id"))
        self.update_contacts([{"id": contact["id"], "name": body.get("name", contact["name"])}])
        return {"id": contact["id"]}

    def _edit_task(self, body: dict) -> dict:
        task = self._given_or_first(self.tasks, body.get("id"))
        self.update_tasks([{"id": task["id"], "text": body.get("text", task["text"])}])
        return {"id": task["id"]}


def _required_id(body: dict, what: str) -> int:
    """The `id` a delete trigger must name (it has no "first fitting one" to fall back on)."""
    item_id = body.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise problem(400, "Bad Request", f"id of the {what} to delete is required")
    return item_id
