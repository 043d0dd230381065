"""Lead notes (`/api/v4/leads/notes`, `/api/v4/leads/{id}/notes`)."""

from __future__ import annotations

from typing import Any

from sandbox import query as q
from sandbox.account import Account, now
from sandbox.errors import validation_error

NOTE_TYPES = ("common", "call_in", "call_out", "service_message", "sms_in", "sms_out")


class Notes(Account):
    def list_notes(self, lead_id: int | None, query: dict) -> tuple[int, Any]:
        with self.lock:
            notes = [n for n in self.notes.values() if lead_id is None or n["entity_id"] == lead_id]
            path = f"/api/v4/leads/{lead_id}/notes" if lead_id else "/api/v4/leads/notes"
            return self.page(
                sorted(notes, key=lambda n: n["id"]),
                "notes",
                path,
                query,
                lambda n: {**n, "_links": self.link(f"/api/v4/leads/notes/{n['id']}")},
            )

    def create_notes(self, items: Any, lead_id: int | None = None) -> dict:
        items = q.require_list(items)
        created = []
        with self.lock:
            for index, item in enumerate(items):
                entity_id = lead_id or (item.get("entity_id") if isinstance(item, dict) else None)
                errors = []
                if entity_id not in self.leads:
                    errors.append({"code": "NotFound", "path": "entity_id", "detail": "Entity not found"})
                if not isinstance(item, dict) or item.get("note_type") not in NOTE_TYPES:
                    errors.append(
                        {
                            "code": "NotSupportedChoice",
                            "path": "note_type",
                            "detail": "The value you selected is not a valid choice.",
                        }
                    )
                elif item["note_type"] == "common" and not isinstance((item.get("params") or {}).get("text"), str):
                    errors.append({"code": "FieldMissing", "path": "params.text", "detail": "This field is missing."})
                if errors:
                    raise validation_error([{"request_id": str(index), "errors": errors}])
                moment = now()
                note = {
                    "id": self.new_id(),
                    "entity_id": entity_id,
                    "created_by": 0,
                    "updated_by": 0,
                    "created_at": moment,
                    "updated_at": moment,
                    "responsible_user_id": self.first_user_id(),
                    "group_id": 0,
                    "note_type": item["note_type"],
                    "params": item.get("params") or {},
                    "account_id": self.config.account_id,
                    "is_need_to_trigger_digital_pipeline": False,
                }
                self.notes[note["id"]] = note
                created.append(
                    {
                        "id": note["id"],
                        "entity_id": entity_id,
                        "request_id": str(item.get("request_id", index)),
                        "_links": self.link(f"/api/v4/leads/notes/{note['id']}"),
                    }
                )
        return {"_links": self.link("/api/v4/leads/notes"), "_embedded": {"notes": created}}
