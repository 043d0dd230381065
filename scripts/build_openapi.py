"""Writes chalicelib/openapi.json, the OpenAPI 3 description of every route, served at
GET /integrations/amo-crm/openapi.json. tests/test_openapi.py checks it against app.routes.

Run it after adding or changing a route: `.venv/bin/python scripts/build_openapi.py`.
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
P = "/integrations/amo-crm"

INT = {"type": "integer"}
POS_INT = {"type": "integer", "minimum": 1}
STR = {"type": "string"}
ERRORS = {"type": "array", "items": {"type": "object", "properties": {"id": {"type": ["integer", "null"]},
                                                                     "message": STR}}}
SYNC_RESULT = {"type": "object", "required": ["synced", "errors"], "properties": {
    "synced": INT, "errors": ERRORS, "status": {"type": "string", "enum": ["continuing"]}, "jobId": STR}}
ENTITY = {"type": "object", "additionalProperties": True}
LIST = {"type": "object", "required": ["data", "count"], "properties": {
    "data": {"type": "array", "items": ENTITY}, "count": INT, "nextCursor": STR}}
MESSAGE = {"type": "object", "properties": {"message": STR}, "additionalProperties": True}
STATUS = {"type": "string", "enum": ["NEW", "IN_PROGRESS", "CLOSED"]}
LEAD_DATA = {"type": "object", "description": "amoCRM lead fields", "properties": {
    "name": STR, "price": {"type": "integer", "minimum": 0}, "pipeline_id": POS_INT, "status_id": POS_INT,
    "responsible_user_id": POS_INT, "loss_reason_id": POS_INT, "custom_fields_values": {"type": "array"},
    "_embedded": {"type": "object"}}}
CONTACT = {"type": "object", "properties": {"name": STR, "first_name": STR, "last_name": STR, "phone": STR,
                                            "email": {"type": "string", "format": "email"},
                                            "responsible_user_id": POS_INT}}
ERROR_BODY = {"type": "object", "properties": {"Code": STR, "Message": STR}}


def query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def path(name: str, schema: dict = POS_INT) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


PAGING = [query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
          query("cursor", STR, "nextCursor of the previous page")]
SYNC_LIMIT = [query("limit", {"type": "integer", "minimum": 0, "default": 50}, "0 = everything")]


def op(summary: str, ok: dict, *, body: dict | None = None, params: list | None = None, status: str = "200",
       public: bool = False, errors: tuple[str, ...] = ("400",), body_required: bool = True,
       content_types: tuple[str, ...] = ("application/json",)) -> dict:
    operation: dict = {"summary": summary, "parameters": params or [],
                       "responses": {status: {"description": "OK", "content": {"application/json": {"schema": ok}}}}}
    for code in errors + (() if public else ("401",)):
        operation["responses"][code] = {"description": {"400": "Bad input", "401": "Missing or wrong X-API-Key",
                                                        "403": "Refused", "404": "Unknown id",
                                                        "409": "Conflicts with the current state",
                                                        "502": "amoCRM failed"}[code],
                                        "content": {"application/json": {"schema": ERROR_BODY}}}
    if body is not None:
        operation["requestBody"] = {"required": body_required,
                                    "content": {ct: {"schema": body} for ct in content_types}}
    if public:
        operation["security"] = []
    return operation


def obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required)}


ROUTES: dict[str, dict[str, dict]] = {
    "/callback": {"get": op("OAuth redirect target: exchange the code, store the tokens",
                            obj({"message": STR, "accountId": INT, "domain": STR}), public=True,
                            params=[query("code", STR), query("state", STR), query("referer", STR),
                                    query("from_widget", STR), query("from_exchange", STR)],
                            errors=("400", "403", "409"))},
    "/exchange-api-key": {"post": op("Ask amoCRM to deliver a code for a legacy API key", MESSAGE, status="202",
                                     body=obj({"login": STR, "api_key": STR, "state": STR}, ("login", "api_key")))},
    "/test": {"get": op("Connection status (a live amoCRM call)", obj({
        "connected": {"type": "boolean"}, "hasTokens": {"type": "boolean"}, "domain": {"type": ["string", "null"]},
        "accountId": {"type": ["integer", "null"]}, "needsReauthorization": {"type": "boolean"}}), errors=())},
    "/set-tokens": {"post": op("Development only: store a token pair", MESSAGE, errors=("400", "404"),
                               body=obj({"access_token": STR, "refresh_token": STR, "expires_in": POS_INT},
                                        ("access_token", "refresh_token")))},
    "/sync-pipelines": {"post": op("Mirror pipelines and stages", SYNC_RESULT, errors=("409", "502"))},
    "/pipelines": {"get": op("Pipelines, sorted by sort", LIST, params=PAGING)},
    "/pipelines/{pipelineId}/stages": {"get": op("Stages of a pipeline, sorted by sort", LIST,
                                                 params=[path("pipelineId")] + PAGING, errors=("400", "404"))},
    "/stages/{stageId}/mapping": {"put": op("Set a manual status mapping", MESSAGE, params=[path("stageId")],
                                            body=obj({"mappedStatus": STATUS, "pipelineId": POS_INT},
                                                     ("mappedStatus",)), errors=("400", "404"))},
    "/mapping/suggestions": {"get": op("Suggested status for every stage", LIST, errors=())},
    "/mapping/auto-apply": {"post": op("Apply suggestions to unmapped stages", obj({
        "applied": INT, "skipped": INT, "errors": ERRORS}), params=[query("minConfidence", {"type": "number"})],
        body=obj({"minConfidence": {"type": "number", "minimum": 0, "maximum": 1}}), body_required=False)},
    "/sync-users": {"post": op("Mirror users (with roles)", SYNC_RESULT, errors=("409", "502"))},
    "/users": {"get": op("Users, sorted by name", LIST, params=PAGING)},
    "/sync-roles": {"post": op("Mirror roles", SYNC_RESULT, errors=("409", "502"))},
    "/roles": {"get": op("Roles, sorted by name", LIST, params=PAGING)},
    "/sync-leads": {"post": op("Pull leads with their contacts", SYNC_RESULT, params=SYNC_LIMIT,
                               errors=("400", "409", "502"))},
    "/create-lead": {"post": op("Create a lead (and its contact) in amoCRM and locally",
                                obj({"amoLeadId": INT, "leadId": STR}),
                                params=[{"name": "Idempotency-Key", "in": "header", "required": False,
                                         "schema": STR}],
                                body=obj({"leadData": LEAD_DATA, "contact": CONTACT}, ("leadData",)),
                                errors=("400", "409", "502"))},
    "/update-lead": {"post": op("Update a lead in amoCRM and locally", obj({"message": STR, "amoLeadId": INT}),
                                body=obj({"leadId": POS_INT, "leadData": LEAD_DATA}, ("leadId", "leadData")),
                                errors=("400", "404", "502"))},
    "/sync-lead": {"post": op("Upsert the local lead from an amoCRM lead object", obj({"message": STR,
                                                                                      "leadId": STR}),
                              body=obj({"lead": {"type": "object"}}, ("lead",)))},
    "/test-lead": {"post": op("Development only: create a marked test lead", obj({"amoLeadId": INT}),
                              errors=("404", "502"))},
    "/leads/{amoLeadId}": {"get": op("The local lead of an amoCRM lead", ENTITY, params=[path("amoLeadId")],
                                     errors=("400", "404"))},
    "/leads/{amoLeadId}/notes": {"post": op("Add a common note to the lead", MESSAGE, params=[path("amoLeadId")],
                                            body=obj({"text": STR}, ("text",)), errors=("400", "404", "502"))},
    "/sync-contacts": {"post": op("Pull contacts", SYNC_RESULT, params=SYNC_LIMIT, errors=("400", "409", "502"))},
    "/contacts": {
        "get": op("Mirrored contacts", LIST, params=PAGING),
        "post": op("Create a contact in amoCRM", obj({"amoContactId": INT}), body=CONTACT,
                   errors=("400", "502")),
    },
    "/contacts/{contactId}": {"patch": op("Update a contact in amoCRM", MESSAGE, params=[path("contactId")],
                                         body=CONTACT, errors=("400", "404", "502"))},
    "/sync-tasks": {"post": op("Pull tasks", SYNC_RESULT, errors=("400", "409", "502"), params=SYNC_LIMIT + [
        query("is_completed", {"type": "boolean"}),
        query("entity_type", {"type": "string", "enum": ["leads", "contacts", "companies"]})])},
    "/tasks": {
        "get": op("Mirrored tasks", LIST, params=PAGING + [
            query("is_completed", {"type": "boolean"}),
            query("entity_type", {"type": "string", "enum": ["leads", "contacts", "companies"]}),
            query("entity_id", POS_INT)]),
        "post": op("Create a task in amoCRM", obj({"amoTaskId": INT, "data": ENTITY}), errors=("400", "502"),
                   body=obj({"text": STR, "complete_till": INT, "entity_type": {
                       "type": "string", "enum": ["leads", "contacts", "companies"]}, "entity_id": POS_INT,
                       "task_type_id": POS_INT, "responsible_user_id": POS_INT, "duration": INT},
                       ("text", "complete_till"))),
    },
    "/tasks/{taskId}/complete": {"patch": op("Complete a task", obj({"message": STR, "status": STR, "data": ENTITY}),
                                             params=[path("taskId")], body=obj({"result_text": STR}),
                                             body_required=False, errors=("400", "404", "502"))},
    "/sync-all": {"post": op("Pipelines and stages, then leads", obj({"pipelines": SYNC_RESULT,
                                                                      "leads": SYNC_RESULT}),
                             params=[query("leadsLimit", {"type": "integer", "minimum": 0, "default": 0}),
                                     query("full", {"type": "boolean", "default": True})],
                             errors=("400", "409", "502"))},
    "/sync-jobs/{jobId}": {"get": op("Progress of a sync continuing in the background", ENTITY,
                                     params=[path("jobId", STR)], errors=("400", "404"))},
    "/webhook": {"post": op("amoCRM webhooks", obj({"status": STR, "processed": INT,
                                                    "errors": {"type": "array", "items": STR}}),
                            public=True, errors=("401",), params=[query("secret", STR)],
                            body={"type": "object", "description": "PHP bracket keys, e.g. leads[status][0][id]"},
                            body_required=False,
                            content_types=("application/x-www-form-urlencoded", "application/json"))},
    "/webhook/register": {
        "post": op("Subscribe this service's webhook in amoCRM", MESSAGE, body=obj({"url": STR}),
                   body_required=False, errors=("400", "409", "502")),
        "delete": op("Unsubscribe it", MESSAGE, body=obj({"url": STR}), body_required=False,
                     errors=("400", "409", "502")),
    },
    "/activity": {"get": op("What webhooks did to an entity, newest first (the activity log)", LIST, params=[
        query("entity", {"type": "string", "enum": ["leads", "contacts", "tasks", "delivery"]}),
        query("id", POS_INT), query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})])},
    "/openapi.json": {"get": op("This description", {"type": "object"}, errors=())},
}


def build() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "amoCRM integration service", "version": "1.0.0",
                 "description": "Connects one amoCRM (Kommo) account to the Main Backend."},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        "security": [{"ApiKey": []}],
        "paths": {P + route: methods for route, methods in ROUTES.items()},
    }


def main() -> None:
    target = ROOT / "chalicelib" / "openapi.json"
    target.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
