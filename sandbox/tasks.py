"""Tasks: list (filters by entity, completion, `updated_at`), one, create, update (complete);
adding and completing one writes its event (events.py). Deleting one is trash.py's."""

from __future__ import annotations

import copy
from typing import Any

from sandbox import entities
from sandbox import query as q
from sandbox.account import Account, now
from sandbox.errors import problem
from sandbox.webhooks import legacy_task


class Tasks(Account):
    def render_task(self, task: dict) -> dict:
        return entities.task_body(copy.deepcopy(task), self.base_url())

    def list_tasks(self, query: dict) -> tuple[int, Any]:
        ids = set(q.int_list(query, "filter[id]"))
        entity_type = q.first(query, "filter[entity_type]")
        entity_ids = set(q.int_list(query, "filter[entity_id]"))
        if entity_ids and not entity_type:
            raise self.invalid(
                [
                    {
                        "request_id": "0",
                        "errors": [
                            {
                                "code": "FieldMissing",
                                "path": "filter.entity_type",
                                "detail": "filter[entity_type] is required with filter[entity_id]",
                            }
                        ],
                    }
                ]
            )
        completed_raw = q.first(query, "filter[is_completed]")
        completed = None if completed_raw in (None, "") else completed_raw in ("1", "true")
        updated_from, updated_to = q.bounds(query, "filter[updated_at]")
        single_updated = q.first(query, "filter[updated_at]")
        if single_updated and single_updated.isascii() and single_updated.isdigit():
            updated_from = int(single_updated)
        with self.lock:
            tasks = [
                t
                for t in self.tasks.values()
                if (not ids or t["id"] in ids)
                and (entity_type is None or t["entity_type"] == entity_type)
                and (not entity_ids or t["entity_id"] in entity_ids)
                and (completed is None or t["is_completed"] == completed)
                and q.in_range(t["updated_at"], updated_from, updated_to)
            ]
            tasks = q.ordered(tasks, query)
            return self.page(tasks, "tasks", "/api/v4/tasks", query, self.render_task)

    def get_task(self, task_id: int) -> tuple[int, Any]:
        with self.lock:
            task = self.tasks.get(task_id)
            return (200, self.render_task(task)) if task else self.missing("Task")

    def create_tasks(self, items: Any) -> dict:
        items = q.require_list(items)
        created, events, all_errors = [], [], []
        with self.lock:
            for index, item in enumerate(items):
                errors = []
                if not isinstance(item, dict):
                    item = {}
                if not isinstance(item.get("text"), str) or not item.get("text"):
                    errors.append({"code": "FieldMissing", "path": "text", "detail": "This field is missing."})
                if not isinstance(item.get("complete_till"), int) or isinstance(item.get("complete_till"), bool):
                    errors.append({"code": "FieldMissing", "path": "complete_till", "detail": "This field is missing."})
                entity_type = item.get("entity_type")
                if entity_type is not None and entity_type not in ("leads", "contacts", "companies", "customers"):
                    errors.append(
                        {
                            "code": "NotSupportedChoice",
                            "path": "entity_type",
                            "detail": "The value you selected is not a valid choice.",
                        }
                    )
                if errors:
                    all_errors.append({"request_id": str(item.get("request_id", index)), "errors": errors})
            if all_errors:
                raise self.invalid(all_errors)
            for index, item in enumerate(items):
                result = item.get("result")
                task = entities.task(
                    self.new_id(),
                    text=item["text"],
                    account_id=self.config.account_id,
                    responsible_user_id=item.get("responsible_user_id", self.first_user_id()),
                    created_by=0,
                    created_at=now(),
                    complete_till=item["complete_till"],
                    entity=(item.get("entity_type"), item.get("entity_id")),
                    task_type_id=item.get("task_type_id", 1),
                    duration=item.get("duration", 0),
                    is_completed=bool(item.get("is_completed", False)),
                    result=str(result.get("text", "")) if isinstance(result, dict) else None,
                )
                self.tasks[task["id"]] = task
                self.record_event("task_added", "task", task["id"])
                events.append((self.config.task_key, "add", legacy_task(task)))
                created.append(
                    {
                        "id": task["id"],
                        "request_id": str(item.get("request_id", index)),
                        "_links": self.link(f"/api/v4/tasks/{task['id']}"),
                    }
                )
        self.emit(events)
        return {"_links": self.link("/api/v4/tasks"), "_embedded": {"tasks": created}}

    def update_tasks(self, items: Any, single_id: int | None = None) -> Any:
        items = q.patch_items(items, single_id)
        updated, events = [], []
        with self.lock:
            for index, item in enumerate(items):
                task_id = item.get("id") if isinstance(item, dict) else None
                if task_id not in self.tasks:
                    raise problem(404, "Not Found", "Task not found")
                task = copy.deepcopy(self.tasks[task_id])
                for key in ("text", "complete_till", "responsible_user_id", "task_type_id", "duration"):
                    if key in item:
                        task[key] = item[key]
                if "is_completed" in item:
                    task["is_completed"] = bool(item["is_completed"])
                if isinstance(item.get("result"), dict):
                    task["result"] = {"text": str(item["result"].get("text", ""))}
                task["updated_at"] = now()
                if task["is_completed"] and not self.tasks[task_id]["is_completed"]:
                    self.record_event("task_completed", "task", task_id)
                self.tasks[task_id] = task
                events.append((self.config.task_key, "update", legacy_task(task)))
                updated.append(
                    {
                        "id": task_id,
                        "updated_at": task["updated_at"],
                        "request_id": str(item.get("request_id", index)),
                        "_links": self.link(f"/api/v4/tasks/{task_id}"),
                    }
                )
        self.emit(events)
        if single_id is not None:
            return updated[0]
        return {"_links": self.link("/api/v4/tasks"), "_embedded": {"tasks": updated}}
