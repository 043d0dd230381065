"""Deleting and restoring leads, contacts and tasks: control actions (amoCRM's API v4 deletes none
of them; people do, in the browser). Each writes its event (`lead_deleted`, `contact_restored`, …,
reference §10.1) and, when asked, its webhook. Deleted leads and contacts stay in the trash,
listed by `with=only_deleted`; a deleted task is gone (and cannot come back)."""

from __future__ import annotations

from typing import Any

from sandbox.account import Account, now
from sandbox.errors import problem
from sandbox.webhooks import legacy_contact, legacy_lead

ENTITIES = {name: plural for plural in ("leads", "contacts", "tasks") for name in (plural, plural[:-1])}
SINGULAR = {"leads": "lead", "contacts": "contact", "tasks": "task"}


def trash_item(entity: dict) -> dict:
    """A deleted lead or contact as `with=only_deleted` lists it: these four fields only (§10.1)."""
    return {
        "id": entity["id"],
        "updated_at": entity["updated_at"],
        "updated_by": entity.get("updated_by", 0),
        "is_deleted": True,
    }


class Trash(Account):
    def trash_body(self, body: Any) -> tuple[str, int, bool]:
        """`{entity, id, webhook}` of `POST /_sandbox/delete` and `/_sandbox/restore`."""
        body = body if isinstance(body, dict) else {}
        entity = ENTITIES.get(str(body.get("entity")))
        entity_id = body.get("id")
        if entity is None:
            raise problem(400, "Bad Request", "entity must be leads, contacts or tasks")
        if isinstance(entity_id, bool) or not isinstance(entity_id, int):
            raise problem(400, "Bad Request", "id must be an integer")
        if not isinstance(body.get("webhook", False), bool):
            raise problem(400, "Bad Request", "webhook must be true or false")
        return entity, entity_id, body.get("webhook", False)

    def delete_entity(self, entity: str, entity_id: int, webhook: bool = True) -> dict:
        """A person deletes a lead, contact or task: its event, and its webhook if `webhook`."""
        with self.lock:
            table = self._table(entity)
            record = table.get(entity_id)
            if record is None or record.get("is_deleted"):
                raise problem(404, "Not Found", f"{SINGULAR[entity].capitalize()} not found")
            if entity == "tasks":
                del table[entity_id]
                item: dict = {"id": entity_id}
            else:
                record.update(is_deleted=True, updated_at=now(), updated_by=self.first_user_id())
                item = {"id": entity_id}
                if entity == "leads":
                    item |= {"status_id": record["status_id"], "pipeline_id": record["pipeline_id"]}
                else:
                    item["type"] = "contact"
            self.record_event(f"{SINGULAR[entity]}_deleted", SINGULAR[entity], entity_id)
        if webhook:
            self.emit([(self._webhook_key(entity), "delete", item)])
        return {"entity": entity, "id": entity_id, "webhook": webhook}

    def restore_entity(self, entity: str, entity_id: int | None, webhook: bool = True) -> dict:
        """A deleted lead or contact (`entity_id`, or the first deleted one) comes back from the trash."""
        if entity == "tasks":
            raise problem(400, "Bad Request", "a deleted task cannot be restored")
        with self.lock:
            table = self._table(entity)
            if entity_id is None:
                entity_id = next((i for i, item in table.items() if item.get("is_deleted")), None)
            record = table.get(entity_id) if entity_id is not None else None
            if record is None:
                raise problem(404, "Not Found", f"No deleted {SINGULAR[entity]} to restore")
            if not record.get("is_deleted"):
                raise problem(400, "Bad Request", f"{SINGULAR[entity].capitalize()} is not deleted")
            record.update(is_deleted=False, updated_at=now(), updated_by=self.first_user_id())
            self.record_event(f"{SINGULAR[entity]}_restored", SINGULAR[entity], record["id"])
            if entity == "leads":
                item = legacy_lead(record)
            else:
                item = legacy_contact(record, self.leads_of_contact(record["id"]))
        if webhook:
            self.emit([(entity, "restore", item)])
        return {"entity": entity, "id": record["id"], "webhook": webhook}

    def _table(self, entity: str) -> dict[int, dict]:
        return {"leads": self.leads, "contacts": self.contacts, "tasks": self.tasks}[entity]

    def _webhook_key(self, entity: str) -> str:
        return self.config.task_key if entity == "tasks" else entity
