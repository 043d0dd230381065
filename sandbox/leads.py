"""Leads: list (filters, `order`, `with=contacts`, `with=only_deleted`), one, create, update (a
stage change fires `leads[status]`). `/leads/complex` is complex.py; deleting, trash.py."""

from __future__ import annotations

import copy
from typing import Any

from sandbox import entities
from sandbox import query as q
from sandbox.account import Account, now
from sandbox.errors import problem
from sandbox.fields import merge_custom_fields
from sandbox.trash import trash_item
from sandbox.webhooks import legacy_lead


class Leads(Account):
    def render_lead(self, lead: dict, with_: set[str]) -> dict:
        fields = {k: copy.deepcopy(v) for k, v in lead.items() if k not in ("tags", "contacts")}
        linked = [
            (c["id"], c["is_main"])
            for c in lead.get("contacts") or []
            if not self.contacts.get(c["id"], {}).get("is_deleted")
        ]
        return entities.lead_body(
            fields,
            self.base_url(),
            tags=copy.deepcopy(lead.get("tags") or []),
            contacts=linked if "contacts" in with_ else None,
        )

    def list_leads(self, query: dict) -> tuple[int, Any]:
        """Leads (filters, `order`, `with=contacts`), or with `with=only_deleted` the trash (§10.1)."""
        with_ = q.with_(query)
        filtered = q.as_filtered_by(query, self.config.filters)
        if filtered is None:
            return 204, None
        ids = set(q.int_list(filtered, "filter[id]"))
        pipeline_ids = set(q.int_list(filtered, "filter[pipeline_id]"))
        updated_from, updated_to = q.bounds(filtered, "filter[updated_at]")
        deleted = "only_deleted" in with_
        with self.lock:
            leads = [
                lead
                for lead in self.leads.values()
                if (not ids or lead["id"] in ids)
                and (not pipeline_ids or lead["pipeline_id"] in pipeline_ids)
                and q.in_range(lead["updated_at"], updated_from, updated_to)
                and bool(lead.get("is_deleted")) == deleted
            ]
            leads = q.ordered(leads, filtered)
            render = trash_item if deleted else (lambda item: self.render_lead(item, with_))
            status, body = self.page(leads, "leads", "/api/v4/leads", filtered, render)
        if status == 200 and not deleted and body["_page"] == 1 and self.config.edit_between_pages:
            self._edit_leads([lead["id"] for lead in body["_embedded"]["leads"]][: self.config.edit_between_pages])
        return status, body

    def _edit_leads(self, lead_ids: list[int]) -> None:
        """Config.edit_between_pages: someone edits leads a reader has just been served (their
        updated_at moves to now), so the pages after the first shift under an offset reader."""
        events = []
        with self.lock:
            for lead_id in lead_ids:
                lead = self.leads[lead_id]
                lead["updated_at"] = now()
                events.append(("leads", "update", legacy_lead(lead)))
        self.emit(events)

    def get_lead(self, lead_id: int, query: dict) -> tuple[int, Any]:
        """One lead; with `with=only_deleted` only a deleted one, else 204 (§5.2, §10.1)."""
        with self.lock:
            lead = self.leads.get(lead_id)
            if "only_deleted" in q.with_(query):
                return (200, trash_item(lead)) if lead and lead.get("is_deleted") else (204, None)
            if lead is None or lead.get("is_deleted"):
                return self.missing("Lead")
            return 200, self.render_lead(lead, q.with_(query))

    def _apply_lead_fields(self, lead: dict, item: dict, errors: list, path: str) -> None:
        for key in ("name",):
            if key in item:
                if not isinstance(item[key], str):
                    errors.append(
                        {
                            "code": "InvalidType",
                            "path": f"{path}{key}",
                            "detail": "This value should be of type string.",
                        }
                    )
                else:
                    lead[key] = item[key]
        for key in ("price", "responsible_user_id", "loss_reason_id"):
            if key in item:
                value = item[key]
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    errors.append(
                        {"code": "InvalidType", "path": f"{path}{key}", "detail": "This value should be of type int."}
                    )
                else:
                    lead[key] = value
        if "custom_fields_values" in item:
            lead["custom_fields_values"] = merge_custom_fields(
                lead.get("custom_fields_values"), item["custom_fields_values"], errors, path
            )
        embedded = item.get("_embedded") or {}
        if isinstance(embedded, dict) and isinstance(embedded.get("contacts"), list):
            linked = []
            for index, contact in enumerate(embedded["contacts"]):
                contact_id = contact.get("id") if isinstance(contact, dict) else None
                if contact_id not in self.contacts or self.contacts[contact_id].get("is_deleted"):
                    errors.append(
                        {
                            "code": "NotFound",
                            "path": f"{path}_embedded.contacts.{index}.id",
                            "detail": "Contact not found",
                        }
                    )
                    continue
                linked.append({"id": contact_id, "is_main": bool(contact.get("is_main", index == 0))})
            lead["contacts"] = linked
        if isinstance(embedded, dict) and isinstance(embedded.get("tags"), list):
            lead["tags"] = [
                {"id": self.new_id(), "name": str(t.get("name", ""))} for t in embedded["tags"] if isinstance(t, dict)
            ]

    def _apply_stage(self, lead: dict, item: dict, errors: list, path: str) -> None:
        pipeline_id = item.get("pipeline_id", lead.get("pipeline_id"))
        status_id = item.get("status_id", None if "pipeline_id" in item else lead.get("status_id"))
        if pipeline_id not in self.pipelines:
            errors.append({"code": "NotFound", "path": f"{path}pipeline_id", "detail": "Pipeline not found"})
            return
        if status_id is None:
            status_id = self.default_stage(pipeline_id)
        if not self.stage_exists(pipeline_id, status_id):
            errors.append({"code": "NotFound", "path": f"{path}status_id", "detail": "Status not found in pipeline"})
            return
        lead["pipeline_id"], lead["status_id"] = pipeline_id, status_id
        lead["closed_at"] = now() if status_id in (entities.WON_STATUS_ID, entities.LOST_STATUS_ID) else None

    def _new_lead(self) -> dict:
        draft = entities.lead(
            0,
            name="",
            pipeline_id=self.main_pipeline(),
            status_id=0,
            account_id=self.config.account_id,
            responsible_user_id=self.first_user_id(),
            created_by=0,
            created_at=now(),
        )
        return {**draft, "tags": [], "contacts": []}

    def create_leads(self, items: Any) -> dict:
        """`POST /api/v4/leads` (complex.py has `/leads/complex`)."""
        items = q.require_list(items)
        created = []
        events: list[tuple[str, str, dict]] = []
        with self.lock:
            all_errors = []
            drafts = []
            for index, item in enumerate(items):
                errors: list = []
                if not isinstance(item, dict):
                    all_errors.append(
                        {
                            "request_id": str(index),
                            "errors": [{"code": "InvalidType", "path": "", "detail": "Each item must be an object"}],
                        }
                    )
                    continue
                lead = self.draft_lead(item, errors, "")
                if errors:
                    all_errors.append({"request_id": str(item.get("request_id", index)), "errors": errors})
                drafts.append((index, item, lead))
            if all_errors:
                raise self.invalid(all_errors)
            for index, item, lead in drafts:
                self.store_lead(lead, events)
                created.append(
                    {
                        "id": lead["id"],
                        "request_id": str(item.get("request_id", index)),
                        "_links": self.link(f"/api/v4/leads/{lead['id']}"),
                    }
                )
        self.emit(events)
        return {"_links": self.link("/api/v4/leads"), "_embedded": {"leads": created}}

    def draft_lead(self, item: dict, errors: list, path: str) -> dict:
        """A new lead from `item` (not stored yet); what is wrong with it goes to `errors`."""
        lead = self._new_lead()
        self._apply_lead_fields(lead, item, errors, path)
        self._apply_stage(
            lead,
            {"pipeline_id": item.get("pipeline_id", lead["pipeline_id"]), "status_id": item.get("status_id")},
            errors,
            path,
        )
        return lead

    def store_lead(self, lead: dict, events: list) -> None:
        """Give a drafted lead its id and keep it (caller holds the lock); queue `leads[add]`."""
        lead["id"] = self.new_id()
        self.leads[lead["id"]] = lead
        events.append(("leads", "add", legacy_lead(lead)))

    def update_leads(self, items: Any, single_id: int | None = None, status_format: str | None = None) -> Any:
        """PATCH; `status_format` overrides Config.webhook_format for the stage-change webhooks."""
        items = q.patch_items(items, single_id)
        updated, all_errors = [], []
        events: list[tuple[str, str, dict]] = []
        with self.lock:
            staged = []
            for index, item in enumerate(items):
                errors: list = []
                lead_id = item.get("id") if isinstance(item, dict) else None
                if lead_id not in self.leads or self.leads[lead_id].get("is_deleted"):
                    if single_id is not None:
                        raise problem(404, "Not Found", "Lead not found")
                    all_errors.append(
                        {
                            "request_id": str(index),
                            "id": lead_id,
                            "errors": [{"code": "NotFound", "path": "id", "detail": "Lead not found"}],
                        }
                    )
                    continue
                draft = copy.deepcopy(self.leads[lead_id])
                self._apply_lead_fields(draft, item, errors, "")
                if "status_id" in item or "pipeline_id" in item:
                    self._apply_stage(draft, item, errors, "")
                if errors:
                    all_errors.append(
                        {"request_id": str(item.get("request_id", index)), "id": lead_id, "errors": errors}
                    )
                staged.append((index, item, draft))
            if all_errors:
                raise self.invalid(all_errors)
            for index, item, draft in staged:
                old = self.leads[draft["id"]]
                draft["updated_at"] = now()
                self.leads[draft["id"]] = draft
                self._lead_events(old, draft, events)
                entry = {
                    "id": draft["id"],
                    "updated_at": draft["updated_at"],
                    "_links": self.link(f"/api/v4/leads/{draft['id']}"),
                }
                if "request_id" in item or single_id is None:
                    entry["request_id"] = str(item.get("request_id", index))
                updated.append(entry)
        self.emit(events, status_format)
        if single_id is not None:
            return updated[0]
        return {"_links": self.link("/api/v4/leads"), "_embedded": {"leads": updated}}

    def _lead_events(self, old: dict, new: dict, events: list) -> None:
        if (old["status_id"], old["pipeline_id"]) != (new["status_id"], new["pipeline_id"]):
            events.append(("leads", "status", legacy_lead(new, old)))
        if old["responsible_user_id"] != new["responsible_user_id"]:
            events.append(
                ("leads", "responsible", {**legacy_lead(new), "old_responsible_user_id": old["responsible_user_id"]})
            )
        events.append(("leads", "update", legacy_lead(new)))
