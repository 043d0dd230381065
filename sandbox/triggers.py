"""Control actions that change data the way a person in amoCRM would, firing the webhooks
(`POST /_sandbox/trigger-webhook`, `POST /_sandbox/touch`)."""
from __future__ import annotations

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
        entity, action = body.get("entity", "leads"), body.get("action", "status")
        entity_id = body.get("id")
        if body.get("format") not in (None, "full", "compact"):
            raise problem(400, "Bad Request", "format must be full or compact")
        if body.get("format") and (entity, action) != ("leads", "status"):
            raise problem(400, "Bad Request", "format applies to leads/status only")
        if entity == "leads" and action == "status":
            return self._move_lead(entity_id, body)
        if entity == "leads" and action == "update":
            lead = self.leads.get(entity_id) or next(iter(self.leads.values()))
            self.update_leads([{"id": lead["id"], "name": body.get("name", lead["name"] + " (изм.)")}])
            return {"entity": "leads", "action": "update", "id": lead["id"]}
        if entity == "leads" and action == "delete":
            self.delete_lead(entity_id)
            return {"entity": "leads", "action": "delete", "id": entity_id}
        if entity == "contacts" and action == "update":
            contact = self.contacts.get(entity_id) or next(iter(self.contacts.values()))
            self.update_contacts([{"id": contact["id"], "name": body.get("name", contact["name"])}])
            return {"entity": "contacts", "action": "update", "id": contact["id"]}
        if entity in ("task", "tasks") and action == "update":
            task = self.tasks.get(entity_id) or next(iter(self.tasks.values()))
            self.update_tasks([{"id": task["id"], "text": body.get("text", task["text"])}])
            return {"entity": "task", "action": "update", "id": task["id"]}
        if entity in ("task", "tasks") and action == "delete":
            self.delete_task(entity_id)
            return {"entity": "task", "action": "delete", "id": entity_id}
        raise problem(400, "Bad Request", f"unsupported trigger {entity}/{action}")

    def _move_lead(self, lead_id: int | None, body: dict) -> dict:
        """The lead (or the first live one) goes to `status_id`, or to its pipeline's next stage."""
        with self.lock:
            lead = self.leads.get(lead_id) if lead_id else next(
                (l for l in self.leads.values() if not l.get("is_deleted")), None)
            if lead is None:
                raise problem(404, "Not Found", "Lead not found")
            pipeline_id = body.get("pipeline_id", lead["pipeline_id"])
            status_id = body.get("status_id")
            if status_id is None:
                stages = self.stages_in_order(pipeline_id)
                current = stages.index(lead["status_id"]) if lead["status_id"] in stages else 0
                status_id = stages[(current + 1) % len(stages)]
        self.update_leads([{"id": lead["id"], "pipeline_id": pipeline_id, "status_id": status_id}],
                          status_format=body.get("format"))
        return {"entity": "leads", "action": "status", "id": lead["id"], "status_id": status_id,
                "pipeline_id": pipeline_id}
