"""The sandbox's amoCRM account: data, OAuth grants and every API operation, without HTTP.

Operations raise ApiError with amoCRM's status codes and problem+json bodies; the HTTP layer
(server.py) only parses requests and writes responses.
"""
from __future__ import annotations

import copy
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox import seed
from sandbox.webhooks import SETTING_FOR, Dispatcher, legacy_contact, legacy_lead, legacy_task

MAX_LIMIT = 250
DEFAULT_LIMIT = 50
CODE_LIFETIME = 1200


class ApiError(Exception):
    def __init__(self, status: int, body: Any = None, content_type: str = "application/problem+json"):
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


def problem(status: int, title: str, detail: str, **extra: Any) -> ApiError:
    return ApiError(status, {"title": title, "type": f"https://httpstatus.es/{status}", "status": status,
                             "detail": detail, **extra})


def oauth_problem(status: int, title: str, detail: str, hint: str | None = None) -> ApiError:
    body = {"title": title, "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
            "status": status, "detail": detail}
    if hint:
        body = {"hint": hint, **body}
    return ApiError(status, body)


def validation_error(errors: list[dict]) -> ApiError:
    return ApiError(400, {"validation-errors": errors, "title": "Bad Request",
                          "type": "https://httpstatus.es/400", "status": 400,
                          "detail": "Request validation failed"})


@dataclass
class Config:
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    redirect_uri: str = ""
    account_id: int = 30896271
    subdomain: str = "sandbox"
    api_key: str = "sandbox-api-key"
    token_lifetime: int = 86400
    rate_limit: float = 7.0
    latency_ms: float = 0.0
    error_rate_429: float = 0.0
    error_rate_503: float = 0.0
    blocked: bool = False
    non_admin: bool = False
    task_key: str = "task"
    webhook_url: str = ""
    public_url: str = ""


@dataclass
class Stats:
    requests: int = 0
    by_path: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    rate_limited: int = 0
    injected_faults: int = 0
    peak_rps: int = 0
    refreshes: int = 0
    code_grants: int = 0


def _now() -> int:
    return int(time.time())


class Sandbox:
    def __init__(self, config: Config | None = None, size: seed.SeedSize | None = None):
        self.config = config or Config()
        self.lock = threading.RLock()
        self.dispatcher = Dispatcher(self.account_block)
        self.reset(size)

    # -- lifecycle ------------------------------------------------------------------------------

    def reset(self, size: seed.SeedSize | None = None) -> None:
        with self.lock:
            self.seed(size or seed.SeedSize())
            self.codes: dict[str, dict] = {}
            self.access_tokens: dict[str, int] = {}
            self.refresh_tokens: dict[str, bool] = {}
            self.webhooks: dict[str, dict] = {}
            self.stats = Stats()
            self.arrivals: list[float] = []

    def seed(self, size: seed.SeedSize) -> dict:
        with self.lock:
            data = seed.build(size, self.config.account_id)
            self.pipelines = data["pipelines"]
            self.roles, self.users = data["roles"], data["users"]
            self.contacts, self.leads, self.tasks = data["contacts"], data["leads"], data["tasks"]
            self.notes: dict[int, dict] = {}
            self.next_id = 30_000_000
            return self.counts()

    def counts(self) -> dict:
        return {"pipelines": len(self.pipelines), "users": len(self.users), "contacts": len(self.contacts),
                "leads": len(self.leads), "tasks": len(self.tasks)}

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def base_url(self) -> str:
        return self.config.public_url.rstrip("/")

    def account_block(self) -> dict:
        return {"subdomain": self.config.subdomain, "id": self.config.account_id,
                "_links": {"self": f"https://{self.config.subdomain}.amocrm.ru"}}

    # -- traffic accounting ---------------------------------------------------------------------

    def admit(self, path_key: str) -> bool:
        """Count one API request; False when it exceeds the rate limit (→ 429)."""
        now = time.monotonic()
        with self.lock:
            self.arrivals = [t for t in self.arrivals if now - t < 1.0]
            allowed = len(self.arrivals) < self.config.rate_limit
            self.stats.requests += 1
            self.stats.by_path[path_key] = self.stats.by_path.get(path_key, 0) + 1
            if allowed:
                self.arrivals.append(now)
                self.stats.peak_rps = max(self.stats.peak_rps, len(self.arrivals))
            else:
                self.stats.rate_limited += 1
            return allowed

    def record_status(self, status: int) -> None:
        with self.lock:
            key = str(status)
            self.stats.statuses[key] = self.stats.statuses.get(key, 0) + 1

    def stats_view(self) -> dict:
        with self.lock:
            return {**asdict(self.stats), "deliveries": len(self.dispatcher.deliveries)}

    # -- OAuth ----------------------------------------------------------------------------------

    def issue_code(self, redirect_uri: str) -> str:
        with self.lock:
            code = "def502" + secrets.token_hex(24)
            self.codes[code] = {"redirect_uri": redirect_uri, "expires": _now() + CODE_LIFETIME}
            return code

    def _issue_pair(self) -> dict:
        access = "sbx." + secrets.token_urlsafe(32)
        refresh = "def50200" + secrets.token_hex(32)
        self.access_tokens[access] = _now() + self.config.token_lifetime
        self.refresh_tokens[refresh] = True
        return {"token_type": "Bearer", "expires_in": self.config.token_lifetime, "access_token": access,
                "refresh_token": refresh, "server_time": _now()}

    def token_grant(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise oauth_problem(400, "Некорректный запрос", "В запросе отсутствует ряд параметров или параметры невалидны")
        if body.get("client_id") != self.config.client_id or body.get("client_secret") != self.config.client_secret:
            raise oauth_problem(401, "Некорректный клиент", "Авторизация клиента не прошла")
        grant = body.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                entry = self.codes.pop(str(body.get("code")), None)
                if entry is None or entry["expires"] < _now():
                    raise oauth_problem(400, "Некорректный запрос", "В запросе отсутствует ряд параметров или параметры невалидны",
                                        hint="Authorization code has expired")
                if entry["redirect_uri"] and body.get("redirect_uri") != entry["redirect_uri"]:
                    raise oauth_problem(400, "Некорректный запрос", "redirect_uri does not match")
                self.stats.code_grants += 1
                return self._issue_pair()
            if grant == "refresh_token":
                token = str(body.get("refresh_token"))
                if not self.refresh_tokens.get(token):
                    raise oauth_problem(401, "Некорректный запрос", "В запросе отсутствует ряд параметров или параметры невалидны",
                                        hint="Token has been revoked")
                self.refresh_tokens[token] = False  # single use: rotated below
                self.stats.refreshes += 1
                return self._issue_pair()
        raise oauth_problem(400, "Некорректный запрос", "Unsupported grant_type")

    def check_api_key_exchange(self, body: Any) -> dict:
        if not isinstance(body, dict) or not body.get("login") or not body.get("api_key"):
            raise problem(400, "Bad Request", "login and api_key are required")
        if body.get("client_uuid") != self.config.client_id or body.get("client_secret") != self.config.client_secret:
            raise problem(400, "Bad Request", "Invalid client")
        if body["api_key"] != self.config.api_key or not any(u["email"] == body["login"] for u in self.users.values()):
            raise problem(403, "Forbidden", "Not enough rights or wrong login/api_key")
        if not self.config.redirect_uri:
            raise problem(400, "Bad Request", "The integration has no redirect URI (install it first)")
        return {"code": self.issue_code(self.config.redirect_uri), "state": body.get("state")}

    def authorize(self, header: str | None) -> None:
        token = (header or "")[7:] if (header or "").startswith("Bearer ") else ""
        with self.lock:
            expires = self.access_tokens.get(token)
        if not expires or expires < _now():
            raise problem(401, "Unauthorized", "Неверный логин или пароль")

    def expire_tokens(self) -> int:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0
            return len(self.access_tokens)

    # -- rendering helpers ----------------------------------------------------------------------

    def link(self, path: str) -> dict:
        return {"self": {"href": f"{self.base_url()}{path}"}}

    def page(self, items: list, key: str, path: str, query: dict, render) -> tuple[int, Any]:
        limit = _int_param(query, "limit", DEFAULT_LIMIT)
        page = _int_param(query, "page", 1)
        if limit < 1 or limit > MAX_LIMIT:
            raise problem(400, "Bad Request", f"limit must be between 1 and {MAX_LIMIT}")
        if page < 1:
            raise problem(400, "Bad Request", "page must be a positive integer")
        chunk = items[(page - 1) * limit: page * limit]
        if not chunk:
            return 204, None
        links = {"self": {"href": f"{self.base_url()}{path}?page={page}&limit={limit}"}}
        if page * limit < len(items):
            links["next"] = {"href": f"{self.base_url()}{path}?page={page + 1}&limit={limit}"}
        if page > 1:
            links["prev"] = {"href": f"{self.base_url()}{path}?page={page - 1}&limit={limit}"}
        return 200, {"_page": page, "_links": links, "_embedded": {key: [render(i) for i in chunk]}}

    def render_lead(self, lead: dict, with_: set[str]) -> dict:
        out = {k: copy.deepcopy(v) for k, v in lead.items() if k not in ("tags", "contacts")}
        out["_links"] = self.link(f"/api/v4/leads/{lead['id']}")
        embedded: dict[str, Any] = {"tags": copy.deepcopy(lead.get("tags") or []), "companies": []}
        if "contacts" in with_:
            embedded["contacts"] = [{"id": c["id"], "is_main": c["is_main"],
                                     "_links": self.link(f"/api/v4/contacts/{c['id']}")}
                                    for c in lead.get("contacts") or []]
        out["_embedded"] = embedded
        return out

    def render_contact(self, contact: dict, with_: set[str]) -> dict:
        out = copy.deepcopy(contact)
        out["_links"] = self.link(f"/api/v4/contacts/{contact['id']}")
        embedded: dict[str, Any] = {"tags": [], "companies": []}
        if "leads" in with_:
            embedded["leads"] = [{"id": i, "_links": self.link(f"/api/v4/leads/{i}")}
                                 for i in self._leads_of_contact(contact["id"])]
        out["_embedded"] = embedded
        return out

    def render_task(self, task: dict) -> dict:
        return {**copy.deepcopy(task), "_links": self.link(f"/api/v4/tasks/{task['id']}")}

    def render_pipeline(self, pipeline: dict) -> dict:
        out = {k: v for k, v in pipeline.items() if k != "statuses"}
        out["_links"] = self.link(f"/api/v4/leads/pipelines/{pipeline['id']}")
        out["_embedded"] = {"statuses": [
            {**s, "_links": self.link(f"/api/v4/leads/pipelines/{pipeline['id']}/statuses/{s['id']}")}
            for s in sorted(pipeline["statuses"], key=lambda s: s["sort"])]}
        return out

    def render_user(self, user: dict, with_: set[str]) -> dict:
        out = {"id": user["id"], "name": user["name"], "email": user["email"], "lang": user["lang"],
               "rights": {"leads": {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"},
                          "tasks": {"edit": "A", "delete": "A"}, "mail_access": False, "catalog_access": False,
                          "status_rights": [], "is_admin": user["is_admin"], "is_free": False,
                          "is_active": True, "group_id": None, "role_id": user["role_id"]},
               "_links": self.link(f"/api/v4/users/{user['id']}")}
        if "role" in with_:
            role = self.roles.get(user["role_id"]) if user["role_id"] else None
            out["_embedded"] = {"roles": [{"id": role["id"], "name": role["name"],
                                           "_links": self.link(f"/api/v4/roles/{role['id']}")}] if role else [],
                                "groups": []}
        return out

    def _leads_of_contact(self, contact_id: int) -> list[int]:
        return [lead_id for lead_id, lead in self.leads.items()
                if any(c["id"] == contact_id for c in lead.get("contacts") or [])]

    # -- reads ----------------------------------------------------------------------------------

    def account(self) -> dict:
        return {"id": self.config.account_id, "name": "Sandbox Realty", "subdomain": self.config.subdomain,
                "created_at": seed.BASE_TIME, "created_by": 0, "updated_at": seed.BASE_TIME, "updated_by": 0,
                "current_user_id": next(iter(self.users)), "country": "RU", "currency": "RUB",
                "currency_symbol": "₽", "customers_mode": "disabled", "is_unsorted_on": True,
                "mobile_feature_version": 0, "is_loss_reason_enabled": True, "is_helpbot_enabled": False,
                "is_technical_account": True, "contact_name_display_order": 1,
                "_links": self.link("/api/v4/account")}

    def list_pipelines(self) -> dict:
        with self.lock:
            pipelines = sorted(self.pipelines.values(), key=lambda p: p["sort"])
            return {"_total_items": len(pipelines), "_links": self.link("/api/v4/leads/pipelines"),
                    "_embedded": {"pipelines": [self.render_pipeline(p) for p in pipelines]}}

    def get_pipeline(self, pipeline_id: int) -> dict:
        with self.lock:
            if pipeline_id not in self.pipelines:
                raise problem(404, "Not Found", "Pipeline not found")
            return self.render_pipeline(self.pipelines[pipeline_id])

    def require_admin(self) -> None:
        if self.config.non_admin:
            raise problem(403, "Forbidden", "Access denied: only administrators may do this")

    def list_users(self, query: dict) -> tuple[int, Any]:
        self.require_admin()
        with_ = _with(query)
        with self.lock:
            users = sorted(self.users.values(), key=lambda u: u["id"])
            return self.page(users, "users", "/api/v4/users", query, lambda u: self.render_user(u, with_))

    def list_roles(self, query: dict) -> tuple[int, Any]:
        self.require_admin()
        with self.lock:
            roles = sorted(self.roles.values(), key=lambda r: r["id"])
            return self.page(roles, "roles", "/api/v4/roles", query, lambda r: {
                "id": r["id"], "name": r["name"], "rights": {"leads": {"view": "A", "edit": "A"}},
                "_links": self.link(f"/api/v4/roles/{r['id']}")})

    def list_leads(self, query: dict) -> tuple[int, Any]:
        with_ = _with(query)
        ids = set(_int_list(query, "filter[id]"))
        pipeline_ids = set(_int_list(query, "filter[pipeline_id]"))
        updated_from, updated_to = _range(query, "filter[updated_at]")
        with self.lock:
            leads = [lead for lead in self.leads.values()
                     if (not ids or lead["id"] in ids)
                     and (not pipeline_ids or lead["pipeline_id"] in pipeline_ids)
                     and _in_range(lead["updated_at"], updated_from, updated_to)
                     and not lead.get("is_deleted")]
            leads = _ordered(leads, query)
            return self.page(leads, "leads", "/api/v4/leads", query, lambda l: self.render_lead(l, with_))

    def get_lead(self, lead_id: int, query: dict) -> tuple[int, Any]:
        with self.lock:
            lead = self.leads.get(lead_id)
            if lead is None or lead.get("is_deleted"):
                return 204, None
            return 200, self.render_lead(lead, _with(query))

    def list_contacts(self, query: dict) -> tuple[int, Any]:
        with_ = _with(query)
        ids = set(_int_list(query, "filter[id]"))
        updated_from, updated_to = _range(query, "filter[updated_at]")
        with self.lock:
            contacts = [c for c in self.contacts.values()
                        if (not ids or c["id"] in ids) and _in_range(c["updated_at"], updated_from, updated_to)
                        and not c.get("is_deleted")]
            contacts = _ordered(contacts, query)
            return self.page(contacts, "contacts", "/api/v4/contacts", query,
                             lambda c: self.render_contact(c, with_))

    def get_contact(self, contact_id: int, query: dict) -> tuple[int, Any]:
        with self.lock:
            contact = self.contacts.get(contact_id)
            if contact is None or contact.get("is_deleted"):
                return 204, None
            return 200, self.render_contact(contact, _with(query))

    def list_tasks(self, query: dict) -> tuple[int, Any]:
        ids = set(_int_list(query, "filter[id]"))
        entity_type = _first(query, "filter[entity_type]")
        entity_ids = set(_int_list(query, "filter[entity_id]"))
        if entity_ids and not entity_type:
            raise validation_error([{"request_id": "0", "errors": [{
                "code": "FieldMissing", "path": "filter.entity_type",
                "detail": "filter[entity_type] is required with filter[entity_id]"}]}])
        completed_raw = _first(query, "filter[is_completed]")
        completed = None if completed_raw in (None, "") else completed_raw in ("1", "true")
        updated_from, updated_to = _range(query, "filter[updated_at]")
        single_updated = _first(query, "filter[updated_at]")
        if single_updated and single_updated.isascii() and single_updated.isdigit():
            updated_from = int(single_updated)
        with self.lock:
            tasks = [t for t in self.tasks.values()
                     if (not ids or t["id"] in ids)
                     and (entity_type is None or t["entity_type"] == entity_type)
                     and (not entity_ids or t["entity_id"] in entity_ids)
                     and (completed is None or t["is_completed"] == completed)
                     and _in_range(t["updated_at"], updated_from, updated_to)]
            tasks = _ordered(tasks, query)
            return self.page(tasks, "tasks", "/api/v4/tasks", query, self.render_task)

    def get_task(self, task_id: int) -> tuple[int, Any]:
        with self.lock:
            task = self.tasks.get(task_id)
            return (200, self.render_task(task)) if task else (204, None)

    def list_notes(self, lead_id: int | None, query: dict) -> tuple[int, Any]:
        with self.lock:
            notes = [n for n in self.notes.values() if lead_id is None or n["entity_id"] == lead_id]
            path = f"/api/v4/leads/{lead_id}/notes" if lead_id else "/api/v4/leads/notes"
            return self.page(sorted(notes, key=lambda n: n["id"]), "notes", path, query,
                             lambda n: {**n, "_links": self.link(f"/api/v4/leads/notes/{n['id']}")})

    # -- writes ---------------------------------------------------------------------------------

    def _stage_exists(self, pipeline_id: int, status_id: int) -> bool:
        pipeline = self.pipelines.get(pipeline_id)
        return bool(pipeline) and any(s["id"] == status_id for s in pipeline["statuses"])

    def _default_stage(self, pipeline_id: int) -> int:
        statuses = sorted(self.pipelines[pipeline_id]["statuses"], key=lambda s: s["sort"])
        return next(s["id"] for s in statuses if s["type"] == 0)

    def _main_pipeline(self) -> int:
        return next((p["id"] for p in self.pipelines.values() if p["is_main"]), next(iter(self.pipelines)))

    def _apply_lead_fields(self, lead: dict, item: dict, errors: list, path: str) -> None:
        for key in ("name",):
            if key in item:
                if not isinstance(item[key], str):
                    errors.append({"code": "InvalidType", "path": f"{path}{key}", "detail": "This value should be of type string."})
                else:
                    lead[key] = item[key]
        for key in ("price", "responsible_user_id", "loss_reason_id"):
            if key in item:
                value = item[key]
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    errors.append({"code": "InvalidType", "path": f"{path}{key}", "detail": "This value should be of type int."})
                else:
                    lead[key] = value
        if "custom_fields_values" in item:
            lead["custom_fields_values"] = _merge_custom_fields(lead.get("custom_fields_values"),
                                                                item["custom_fields_values"], errors, path)
        embedded = item.get("_embedded") or {}
        if isinstance(embedded, dict) and isinstance(embedded.get("contacts"), list):
            linked = []
            for index, contact in enumerate(embedded["contacts"]):
                contact_id = contact.get("id") if isinstance(contact, dict) else None
                if contact_id not in self.contacts:
                    errors.append({"code": "NotFound", "path": f"{path}_embedded.contacts.{index}.id",
                                   "detail": "Contact not found"})
                    continue
                linked.append({"id": contact_id, "is_main": bool(contact.get("is_main", index == 0))})
            lead["contacts"] = linked
        if isinstance(embedded, dict) and isinstance(embedded.get("tags"), list):
            lead["tags"] = [{"id": self._new_id(), "name": str(t.get("name", ""))}
                            for t in embedded["tags"] if isinstance(t, dict)]

    def _apply_stage(self, lead: dict, item: dict, errors: list, path: str) -> None:
        pipeline_id = item.get("pipeline_id", lead.get("pipeline_id"))
        status_id = item.get("status_id", None if "pipeline_id" in item else lead.get("status_id"))
        if pipeline_id not in self.pipelines:
            errors.append({"code": "NotFound", "path": f"{path}pipeline_id", "detail": "Pipeline not found"})
            return
        if status_id is None:
            status_id = self._default_stage(pipeline_id)
        if not self._stage_exists(pipeline_id, status_id):
            errors.append({"code": "NotFound", "path": f"{path}status_id", "detail": "Status not found in pipeline"})
            return
        lead["pipeline_id"], lead["status_id"] = pipeline_id, status_id
        lead["closed_at"] = _now() if status_id in (142, 143) else None

    def create_leads(self, items: Any, complex_: bool = False) -> Any:
        items = _require_list(items)
        created, events = [], []
        with self.lock:
            all_errors = []
            drafts = []
            for index, item in enumerate(items):
                errors: list = []
                if not isinstance(item, dict):
                    all_errors.append({"request_id": str(index), "errors": [
                        {"code": "InvalidType", "path": "", "detail": "Each item must be an object"}]})
                    continue
                now = _now()
                lead = {"id": 0, "name": "", "price": 0, "responsible_user_id": next(iter(self.users)),
                        "group_id": 0, "status_id": 0, "pipeline_id": self._main_pipeline(),
                        "loss_reason_id": None, "created_by": 0, "updated_by": 0, "created_at": now,
                        "updated_at": now, "closed_at": None, "closest_task_at": None, "is_deleted": False,
                        "score": None, "labor_cost": None, "account_id": self.config.account_id,
                        "custom_fields_values": None, "tags": [], "contacts": []}
                contact_item = None
                if complex_:
                    contacts = ((item.get("_embedded") or {}).get("contacts") or [])
                    contact_item = contacts[0] if contacts and isinstance(contacts[0], dict) else None
                    item = {**item, "_embedded": {k: v for k, v in (item.get("_embedded") or {}).items()
                                                  if k != "contacts"}}
                self._apply_lead_fields(lead, item, errors, "")
                self._apply_stage(lead, {"pipeline_id": item.get("pipeline_id", lead["pipeline_id"]),
                                         "status_id": item.get("status_id")}, errors, "")
                if errors:
                    all_errors.append({"request_id": str(item.get("request_id", index)), "errors": errors})
                drafts.append((index, item, lead, contact_item))
            if all_errors:
                raise validation_error(all_errors)
            for index, item, lead, contact_item in drafts:
                contact_id = None
                if contact_item is not None:
                    contact_id = self._create_contact(contact_item, events)
                    lead["contacts"] = [{"id": contact_id, "is_main": True}]
                lead["id"] = self._new_id()
                self.leads[lead["id"]] = lead
                events.append(("leads", "add", legacy_lead(lead)))
                request_id = item.get("request_id", str(index))
                if complex_:
                    created.append({"id": lead["id"], "contact_id": contact_id, "company_id": None,
                                    "request_id": [str(request_id)], "merged": False})
                else:
                    created.append({"id": lead["id"], "request_id": str(request_id),
                                    "_links": self.link(f"/api/v4/leads/{lead['id']}")})
        self._emit_all(events)
        if complex_:
            return created
        return {"_links": self.link("/api/v4/leads"), "_embedded": {"leads": created}}

    def update_leads(self, items: Any, single_id: int | None = None) -> Any:
        items = _patch_items(items, single_id)
        updated, events, all_errors = [], [], []
        with self.lock:
            staged = []
            for index, item in enumerate(items):
                errors: list = []
                lead_id = item.get("id") if isinstance(item, dict) else None
                if lead_id not in self.leads or self.leads[lead_id].get("is_deleted"):
                    if single_id is not None:
                        raise problem(404, "Not Found", "Lead not found")
                    all_errors.append({"request_id": str(index), "errors": [
                        {"code": "NotFound", "path": "id", "detail": "Lead not found"}]})
                    continue
                draft = copy.deepcopy(self.leads[lead_id])
                self._apply_lead_fields(draft, item, errors, "")
                if "status_id" in item or "pipeline_id" in item:
                    self._apply_stage(draft, item, errors, "")
                if errors:
                    all_errors.append({"request_id": str(item.get("request_id", index)), "errors": errors})
                staged.append((index, item, draft))
            if all_errors:
                raise validation_error(all_errors)
            for index, item, draft in staged:
                old = self.leads[draft["id"]]
                draft["updated_at"] = _now()
                self.leads[draft["id"]] = draft
                self._lead_events(old, draft, events)
                entry = {"id": draft["id"], "updated_at": draft["updated_at"],
                         "_links": self.link(f"/api/v4/leads/{draft['id']}")}
                if "request_id" in item or single_id is None:
                    entry["request_id"] = str(item.get("request_id", index))
                updated.append(entry)
        self._emit_all(events)
        if single_id is not None:
            return updated[0]
        return {"_links": self.link("/api/v4/leads"), "_embedded": {"leads": updated}}

    def _lead_events(self, old: dict, new: dict, events: list) -> None:
        if (old["status_id"], old["pipeline_id"]) != (new["status_id"], new["pipeline_id"]):
            events.append(("leads", "status", legacy_lead(new, old)))
        events.append(("leads", "update", legacy_lead(new)))

    def _create_contact(self, item: dict, events: list) -> int:
        now = _now()
        contact = {"id": self._new_id(), "name": "", "first_name": "", "last_name": "",
                   "responsible_user_id": next(iter(self.users)), "group_id": 0, "created_by": 0,
                   "updated_by": 0, "created_at": now, "updated_at": now, "closest_task_at": None,
                   "is_deleted": False, "is_unsorted": False, "custom_fields_values": None,
                   "account_id": self.config.account_id}
        errors: list = []
        self._apply_contact_fields(contact, item, errors, "")
        if errors:
            raise validation_error([{"request_id": str(item.get("request_id", "0")), "errors": errors}])
        if not contact["name"]:
            contact["name"] = " ".join(p for p in (contact["first_name"], contact["last_name"]) if p)
        self.contacts[contact["id"]] = contact
        events.append(("contacts", "add", legacy_contact(contact, [])))
        return contact["id"]

    def _apply_contact_fields(self, contact: dict, item: dict, errors: list, path: str) -> None:
        for key in ("name", "first_name", "last_name"):
            if key in item:
                if not isinstance(item[key], str):
                    errors.append({"code": "InvalidType", "path": f"{path}{key}", "detail": "This value should be of type string."})
                else:
                    contact[key] = item[key]
        if "responsible_user_id" in item:
            contact["responsible_user_id"] = item["responsible_user_id"]
        if "custom_fields_values" in item:
            contact["custom_fields_values"] = _merge_custom_fields(contact.get("custom_fields_values"),
                                                                   item["custom_fields_values"], errors, path)

    def create_contacts(self, items: Any) -> dict:
        items = _require_list(items)
        created, events = [], []
        with self.lock:
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise validation_error([{"request_id": str(index), "errors": [
                        {"code": "InvalidType", "path": "", "detail": "Each item must be an object"}]}])
            for index, item in enumerate(items):
                contact_id = self._create_contact({**item, "request_id": item.get("request_id", str(index))}, events)
                created.append({"id": contact_id, "request_id": str(item.get("request_id", index)),
                                "_links": self.link(f"/api/v4/contacts/{contact_id}")})
        self._emit_all(events)
        return {"_links": self.link("/api/v4/contacts"), "_embedded": {"contacts": created}}

    def update_contacts(self, items: Any, single_id: int | None = None) -> Any:
        items = _patch_items(items, single_id)
        updated, events = [], []
        with self.lock:
            for index, item in enumerate(items):
                contact_id = item.get("id") if isinstance(item, dict) else None
                if contact_id not in self.contacts:
                    raise problem(404, "Not Found", "Contact not found")
                draft = copy.deepcopy(self.contacts[contact_id])
                errors: list = []
                self._apply_contact_fields(draft, item, errors, "")
                if errors:
                    raise validation_error([{"request_id": str(item.get("request_id", index)), "errors": errors}])
                draft["updated_at"] = _now()
                self.contacts[contact_id] = draft
                events.append(("contacts", "update", legacy_contact(draft, self._leads_of_contact(contact_id))))
                updated.append({"id": contact_id, "updated_at": draft["updated_at"],
                                "request_id": str(item.get("request_id", index)),
                                "_links": self.link(f"/api/v4/contacts/{contact_id}")})
        self._emit_all(events)
        if single_id is not None:
            return updated[0]
        return {"_links": self.link("/api/v4/contacts"), "_embedded": {"contacts": updated}}

    def create_tasks(self, items: Any) -> dict:
        items = _require_list(items)
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
                    errors.append({"code": "NotSupportedChoice", "path": "entity_type",
                                   "detail": "The value you selected is not a valid choice."})
                if errors:
                    all_errors.append({"request_id": str(item.get("request_id", index)), "errors": errors})
            if all_errors:
                raise validation_error(all_errors)
            for index, item in enumerate(items):
                now = _now()
                task = {"id": self._new_id(), "created_by": 0, "updated_by": 0, "created_at": now,
                        "updated_at": now, "responsible_user_id": item.get("responsible_user_id", next(iter(self.users))),
                        "group_id": 0, "entity_id": item.get("entity_id"), "entity_type": item.get("entity_type"),
                        "is_completed": bool(item.get("is_completed", False)),
                        "task_type_id": item.get("task_type_id", 1), "text": item["text"],
                        "duration": item.get("duration", 0), "complete_till": item["complete_till"],
                        "result": item.get("result") or [], "account_id": self.config.account_id}
                self.tasks[task["id"]] = task
                events.append((self.config.task_key, "add", legacy_task(task)))
                created.append({"id": task["id"], "request_id": str(item.get("request_id", index)),
                                "_links": self.link(f"/api/v4/tasks/{task['id']}")})
        self._emit_all(events)
        return {"_links": self.link("/api/v4/tasks"), "_embedded": {"tasks": created}}

    def update_tasks(self, items: Any, single_id: int | None = None) -> Any:
        items = _patch_items(items, single_id)
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
                task["updated_at"] = _now()
                self.tasks[task_id] = task
                events.append((self.config.task_key, "update", legacy_task(task)))
                updated.append({"id": task_id, "updated_at": task["updated_at"],
                                "request_id": str(item.get("request_id", index)),
                                "_links": self.link(f"/api/v4/tasks/{task_id}")})
        self._emit_all(events)
        if single_id is not None:
            return updated[0]
        return {"_links": self.link("/api/v4/tasks"), "_embedded": {"tasks": updated}}

    def create_notes(self, items: Any, lead_id: int | None = None) -> dict:
        items = _require_list(items)
        created = []
        with self.lock:
            for index, item in enumerate(items):
                entity_id = lead_id or (item.get("entity_id") if isinstance(item, dict) else None)
                errors = []
                if entity_id not in self.leads:
                    errors.append({"code": "NotFound", "path": "entity_id", "detail": "Entity not found"})
                if not isinstance(item, dict) or item.get("note_type") not in ("common", "call_in", "call_out",
                                                                               "service_message", "sms_in", "sms_out"):
                    errors.append({"code": "NotSupportedChoice", "path": "note_type",
                                   "detail": "The value you selected is not a valid choice."})
                elif item["note_type"] == "common" and not isinstance((item.get("params") or {}).get("text"), str):
                    errors.append({"code": "FieldMissing", "path": "params.text", "detail": "This field is missing."})
                if errors:
                    raise validation_error([{"request_id": str(index), "errors": errors}])
                now = _now()
                note = {"id": self._new_id(), "entity_id": entity_id, "created_by": 0, "updated_by": 0,
                        "created_at": now, "updated_at": now, "responsible_user_id": next(iter(self.users)),
                        "group_id": 0, "note_type": item["note_type"], "params": item.get("params") or {},
                        "account_id": self.config.account_id, "is_need_to_trigger_digital_pipeline": False}
                self.notes[note["id"]] = note
                created.append({"id": note["id"], "entity_id": entity_id,
                                "request_id": str(item.get("request_id", index)),
                                "_links": self.link(f"/api/v4/leads/notes/{note['id']}")})
        return {"_links": self.link("/api/v4/leads/notes"), "_embedded": {"notes": created}}

    def update_status(self, pipeline_id: int, status_id: int, item: Any) -> dict:
        with self.lock:
            pipeline = self.pipelines.get(pipeline_id)
            status = next((s for s in (pipeline or {}).get("statuses", []) if s["id"] == status_id), None)
            if status is None:
                raise problem(404, "Not Found", "Status not found")
            if not isinstance(item, dict):
                raise problem(400, "Bad Request", "Body must be an object")
            for key in ("name", "sort", "color"):
                if key in item:
                    status[key] = item[key]
            return {**status, "_links": self.link(f"/api/v4/leads/pipelines/{pipeline_id}/statuses/{status_id}")}

    def delete_status(self, pipeline_id: int, status_id: int) -> None:
        with self.lock:
            pipeline = self.pipelines.get(pipeline_id)
            if pipeline is None or status_id in (142, 143) or not any(s["id"] == status_id for s in pipeline["statuses"]):
                raise problem(404, "Not Found", "Status not found or not deletable")
            pipeline["statuses"] = [s for s in pipeline["statuses"] if s["id"] != status_id]

    def delete_lead(self, lead_id: int) -> None:
        """Control action (amoCRM's API has no lead delete): mark deleted and fire leads[delete]."""
        with self.lock:
            lead = self.leads.get(lead_id)
            if lead is None:
                raise problem(404, "Not Found", "Lead not found")
            lead["is_deleted"] = True
        self._emit_all([("leads", "delete", {"id": lead_id, "status_id": lead["status_id"],
                                              "pipeline_id": lead["pipeline_id"]})])

    def delete_task(self, task_id: int) -> None:
        with self.lock:
            task = self.tasks.pop(task_id, None)
            if task is None:
                raise problem(404, "Not Found", "Task not found")
        self._emit_all([(self.config.task_key, "delete", {"id": task_id})])

    def touch(self, entity: str, count: int, fire_webhooks: bool = False) -> list[int]:
        """Control action: change `count` entities (their updated_at moves to now)."""
        table = {"leads": self.leads, "contacts": self.contacts, "tasks": self.tasks}.get(entity)
        if table is None:
            raise problem(400, "Bad Request", "entity must be leads, contacts or tasks")
        events = []
        with self.lock:
            ids = sorted(table)[:: max(1, len(table) // max(1, count))][:count]
            for entity_id in ids:
                table[entity_id]["updated_at"] = _now()
                if entity == "leads":
                    events.append(("leads", "update", legacy_lead(table[entity_id])))
        if fire_webhooks:
            self._emit_all(events)
        return ids

    # -- webhooks -------------------------------------------------------------------------------

    def list_webhooks(self, query: dict) -> tuple[int, Any]:
        self.require_admin()
        destination = _first(query, "filter[destination]")
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
            now = _now()
            hook = self.webhooks.get(body["destination"]) or {
                "id": self._new_id(), "destination": body["destination"], "created_at": now,
                "account_id": self.config.account_id, "created_by": next(iter(self.users)), "disabled": False}
            hook.update({"settings": list(dict.fromkeys(settings)), "sort": int(body.get("sort") or 10),
                         "updated_at": now})
            self.webhooks[hook["destination"]] = hook
            return copy.deepcopy(hook)

    def unsubscribe(self, body: Any) -> None:
        self.require_admin()
        if not isinstance(body, dict) or not body.get("destination"):
            raise problem(400, "Bad Request", "destination is required")
        with self.lock:
            self.webhooks.pop(body["destination"], None)

    def _emit_all(self, events: list[tuple[str, str, dict]]) -> None:
        with self.lock:
            hooks = [h for h in self.webhooks.values() if not h["disabled"]]
            fallback = self.config.webhook_url
        for entity, action, item in events:
            setting = SETTING_FOR.get(("task" if entity in ("task", "tasks") else entity, action))
            destinations = {h["destination"] for h in hooks if setting in h["settings"]}
            if fallback:
                destinations.add(fallback)
            for destination in destinations:
                self.dispatcher.enqueue(destination, entity, action, item)

    def trigger(self, body: dict) -> dict:
        """Control action: change data the way a person in amoCRM would, firing the webhooks."""
        entity, action = body.get("entity", "leads"), body.get("action", "status")
        entity_id = body.get("id")
        if entity == "leads" and action == "status":
            with self.lock:
                lead = self.leads.get(entity_id) if entity_id else next(
                    (l for l in self.leads.values() if not l.get("is_deleted")), None)
                if lead is None:
                    raise problem(404, "Not Found", "Lead not found")
                pipeline_id = body.get("pipeline_id", lead["pipeline_id"])
                status_id = body.get("status_id")
                if status_id is None:
                    stages = [s["id"] for s in sorted(self.pipelines[pipeline_id]["statuses"], key=lambda s: s["sort"])]
                    current = stages.index(lead["status_id"]) if lead["status_id"] in stages else 0
                    status_id = stages[(current + 1) % len(stages)]
            self.update_leads([{"id": lead["id"], "pipeline_id": pipeline_id, "status_id": status_id}])
            return {"entity": "leads", "action": "status", "id": lead["id"], "status_id": status_id,
                    "pipeline_id": pipeline_id}
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


# -- query helpers ------------------------------------------------------------------------------

def _values(query: dict, name: str) -> list[str]:
    values = []
    for key, items in query.items():
        if key == name or key == f"{name}[]" or (key.startswith(f"{name}[") and key[len(name) + 1:-1].isdigit()):
            values.extend(items)
    return values


def _first(query: dict, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int_list(query: dict, name: str) -> list[int]:
    result = []
    for value in _values(query, name):
        for part in value.split(","):
            if part.strip().isascii() and part.strip().isdigit():
                result.append(int(part))
    return result


def _int_param(query: dict, name: str, default: int) -> int:
    value = _first(query, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise problem(400, "Bad Request", f"{name} must be an integer") from None


def _range(query: dict, name: str) -> tuple[int | None, int | None]:
    low, high = _first(query, f"{name}[from]"), _first(query, f"{name}[to]")
    def number(value: str | None) -> int | None:
        return int(value) if value and value.isascii() and value.isdigit() else None

    return number(low), number(high)


def _in_range(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _with(query: dict) -> set[str]:
    return {part for value in query.get("with", []) for part in value.split(",") if part}


def _ordered(items: list[dict], query: dict) -> list[dict]:
    for key in ("updated_at", "created_at", "id"):
        direction = _first(query, f"order[{key}]")
        if direction:
            return sorted(items, key=lambda i: (i[key], i["id"]), reverse=direction == "desc")
    return sorted(items, key=lambda i: i["id"])


def _patch_items(items: Any, single_id: int | None) -> list:
    """PATCH /x/{id} takes one object, PATCH /x an array of objects with ids: one list either way."""
    if single_id is not None:
        if not isinstance(items, dict):
            raise problem(400, "Bad Request", "Body must be an object")
        items = [{**items, "id": single_id}]
    return _require_list(items)


def _require_list(items: Any) -> list:
    if not isinstance(items, list) or not items:
        raise problem(400, "Bad Request", "Request body must be a non-empty JSON array")
    if len(items) > MAX_LIMIT:
        raise problem(400, "Bad Request", f"At most {MAX_LIMIT} items per request")
    return items


def _merge_custom_fields(current: list | None, changes: Any, errors: list, path: str) -> list | None:
    """amoCRM semantics: each field given replaces that field's values; `values: null` clears it."""
    if changes is None:
        return None
    if not isinstance(changes, list):
        errors.append({"code": "InvalidType", "path": f"{path}custom_fields_values",
                       "detail": "This value should be of type array."})
        return current
    fields = {(f.get("field_id"), f.get("field_code")): f for f in copy.deepcopy(current or [])}
    by_code = {f.get("field_code"): key for key, f in fields.items() if f.get("field_code")}
    by_id = {f.get("field_id"): key for key, f in fields.items()}
    for index, change in enumerate(changes):
        if not isinstance(change, dict) or not (change.get("field_id") or change.get("field_code")):
            errors.append({"code": "FieldMissing", "path": f"{path}custom_fields_values.{index}.field_id",
                           "detail": "field_id or field_code is required"})
            continue
        key = by_id.get(change.get("field_id")) or by_code.get(change.get("field_code"))
        if change.get("values") is None:
            if key:
                fields.pop(key)
            continue
        if not isinstance(change["values"], list):
            errors.append({"code": "InvalidType", "path": f"{path}custom_fields_values.{index}.values",
                           "detail": "This value should be of type array."})
            continue
        code = change.get("field_code")
        field_id = change.get("field_id") or {"PHONE": seed.PHONE_FIELD_ID, "EMAIL": seed.EMAIL_FIELD_ID}.get(code)
        fields[key or (field_id, code)] = {
            "field_id": field_id, "field_name": {"PHONE": "Телефон", "EMAIL": "Email"}.get(code, "Поле"),
            "field_code": code, "field_type": "multitext" if code in ("PHONE", "EMAIL") else "text",
            "values": [dict(v) for v in change["values"] if isinstance(v, dict)]}
    return list(fields.values()) or None
