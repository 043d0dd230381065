"""Writes chalicelib/openapi.json, the OpenAPI 3 description of every route, served at
GET /integrations/amo-crm/openapi.json. tests/test_openapi.py checks it against app.routes.

Run it after adding or changing a route: `.venv/bin/python scripts/build_openapi.py`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
P = "/integrations/amo-crm"
sys.path.insert(0, str(ROOT))

from chalicelib import schemas  # noqa: E402

INT = {"type": "integer"}
STR = {"type": "string"}
ERRORS = {
    "type": "array",
    "items": {"type": "object", "properties": {"id": {"type": ["integer", "null"]}, "message": STR}},
}
SYNC_RESULT = {
    "type": "object",
    "required": ["synced", "errors"],
    "properties": {"synced": INT, "errors": ERRORS, "status": {"type": "string", "enum": ["continuing"]}, "jobId": STR},
}
ENTITY = {"type": "object", "additionalProperties": True}
LIST = {
    "type": "object",
    "required": ["data", "count"],
    "properties": {"data": {"type": "array", "items": ENTITY}, "count": INT, "nextCursor": STR},
}
MESSAGE = {"type": "object", "properties": {"message": STR}, "additionalProperties": True}
REGISTRATION = {
    "type": "object",
    "properties": {
        "message": STR,
        "registration": {"type": "string", "enum": ["api", "manual"]},
        "destination": {"type": "string", "description": "the URL, its secret masked or as a placeholder"},
        "settings": {"type": "array", "items": STR},
        "steps": {"type": "array", "items": STR, "description": "manual registration only"},
    },
    "additionalProperties": True,
}
ERROR_BODY = {"type": "object", "properties": {"Code": STR, "Message": STR}}
# what a stage mapping change did to the leads in the stage: re-derived now, or a background job
REDERIVED = {
    "leadsChanged": {**INT, "description": "leads whose status the mapping changed (re-derived now)"},
    "jobId": {
        **STR,
        "description": "when many leads are affected: the background job re-deriving them (GET sync-jobs/{jobId})",
    },
    "status": {"type": "string", "enum": ["continuing"]},
}

# what the service POSTs to MAIN_BACKEND_WEBHOOK_URL on every lead status change (a webhook of ours)
STATUS = {"type": "string", "enum": ["NEW", "IN_PROGRESS", "CLOSED"]}
NOTIFICATION = {
    "type": "object",
    "required": [
        "event",
        "eventId",
        "leadId",
        "amoLeadId",
        "status",
        "previousStatus",
        "pipelineId",
        "stageId",
        "occurredAt",
    ],
    "properties": {
        "event": {"type": "string", "const": "lead.status_changed"},
        "eventId": {
            **STR,
            "description": "stable id of this change, also sent as Idempotency-Key: a notification "
            "delivered more than once carries the same one",
        },
        "leadId": STR,
        "amoLeadId": INT,
        "status": STATUS,
        "previousStatus": {**STATUS, "type": ["string", "null"]},
        "pipelineId": INT,
        "stageId": INT,
        "occurredAt": {**STR, "format": "date-time", "description": "when the change happened (see reason)"},
        "reason": {
            "type": "string",
            "enum": ["amo_stage_changed", "mapping_changed"],
            "description": (
                "why the status changed. amo_stage_changed: the lead moved to another stage in amoCRM, occurredAt is "
                "amoCRM's time of the move. mapping_changed: the lead's stage is the same but an operator mapped it to "
                "another status, occurredAt is when the mapping changed (or when the change was found, for a mapping "
                "changed before the service recorded such times). Added later: absent from notifications recorded "
                "before it existed."
            ),
        },
    },
}


def query(name: str, schema: dict | schemas.Spec | schemas.Bool, description: str = "") -> dict:
    if not isinstance(schema, dict):
        schema = schema.json_schema(required=True)
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def path(name: str, schema: dict | schemas.Spec = schemas.ID) -> dict:
    if not isinstance(schema, dict):
        schema = schema.json_schema(required=True)
    return {"name": name, "in": "path", "required": True, "schema": schema}


PAGING = [query("limit", schemas.PAGE_LIMIT), query("cursor", STR, "nextCursor of the previous page")]
SYNC_LIMIT = [query("limit", schemas.SYNC_LIMIT, "0 = everything")]
# a create run once per key: a retry after a lost answer gets the first answer, or 409 when unknown
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": STR}


def op(
    summary: str,
    ok: dict,
    *,
    params: list | None = None,
    status: str = "200",
    public: bool = False,
    errors: tuple[str, ...] = ("400",),
    form_body: dict | None = None,
) -> dict:
    """One operation; its JSON request body, if any, comes from schemas.BODIES (with_json_bodies)."""
    operation: dict = {
        "summary": summary,
        "parameters": params or [],
        "responses": {status: {"description": "OK", "content": {"application/json": {"schema": ok}}}},
    }
    # every operation that may call amoCRM may meet its unpaid account (402, reference §3.5)
    for code in errors + (("402",) if "502" in errors else ()) + (() if public else ("401",)) + ("503",):
        operation["responses"][code] = {
            "description": {
                "400": "Bad input",
                "401": "Missing or wrong X-API-Key",
                "402": "The amoCRM account is not paid: amoCRM refuses its API until it is",
                "403": "Refused",
                "404": "Unknown id",
                "409": "Conflicts with the current state",
                "429": "amoCRM refused for now (exchange-api-key: once per 5 minutes per user; try again in 5 minutes)",
                "502": "amoCRM failed",
                "503": "Not configured, or the database is throttling (then with Retry-After)",
            }[code],
            "content": {"application/json": {"schema": ERROR_BODY}},
        }
    if form_body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {ct: {"schema": form_body} for ct in ("application/x-www-form-urlencoded", "application/json")},
        }
    if public:
        operation["security"] = []
    return operation


def with_json_bodies(routes: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """The operations with the request bodies validation.py checks, as JSON Schema."""
    described = {f"{method.upper()} {route}" for route, methods in routes.items() for method in methods}
    unknown = set(schemas.BODIES) - described
    if unknown:
        raise ValueError(f"schemas.BODIES names routes that are not described here: {sorted(unknown)}")
    result: dict[str, dict[str, dict]] = {}
    for route, methods in routes.items():
        result[route] = {}
        for method, operation in methods.items():
            key = f"{method.upper()} {route}"
            if key in schemas.BODIES:
                operation = {
                    **operation,
                    "requestBody": {
                        "required": key not in schemas.BODY_MAY_BE_OMITTED,
                        "content": {"application/json": {"schema": schemas.BODIES[key].json_schema()}},
                    },
                }
            result[route][method] = operation
    return result


def obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required)}


ROUTES: dict[str, dict[str, dict]] = {
    "/callback": {
        "get": op(
            "OAuth redirect target: exchange the code, store the tokens",
            obj({"message": STR, "accountId": INT, "domain": STR}),
            public=True,
            params=[
                query("code", STR),
                query("state", schemas.OAUTH_STATE),
                query("referer", schemas.REFERER),
                query("from_widget", STR),
                query("from_exchange", STR),
            ],
            errors=("400", "403", "409"),
        )
    },
    "/connect": {
        "get": op(
            "amoCRM's consent page with a fresh single-use state (how to connect, or reconnect a connected account)",
            obj({"url": STR, "state": STR, "expiresInSeconds": INT}, ("url", "state")),
            errors=(),
        )
    },
    "/exchange-api-key": {
        "post": op("Ask amoCRM to deliver a code for a legacy API key", MESSAGE, status="202", errors=("400", "429"))
    },
    "/test": {
        "get": op(
            "Connection status (a live amoCRM call)",
            obj(
                {
                    "connected": {"type": "boolean"},
                    "hasTokens": {"type": "boolean"},
                    "domain": {"type": ["string", "null"]},
                    "accountId": {"type": ["integer", "null"]},
                    "needsReauthorization": {"type": "boolean"},
                }
            ),
            errors=(),
        )
    },
    "/set-tokens": {"post": op("Development only: store a token pair", MESSAGE, errors=("400", "404"))},
    "/sync-pipelines": {"post": op("Mirror pipelines and stages", SYNC_RESULT, errors=("409", "502"))},
    "/pipelines": {"get": op("Pipelines, sorted by sort", LIST, params=PAGING)},
    "/pipelines/{pipelineId}/stages": {
        "get": op(
            "Stages of a pipeline, sorted by sort", LIST, params=[path("pipelineId")] + PAGING, errors=("400", "404")
        )
    },
    "/stages/{stageId}/mapping": {
        "put": op(
            "Set a manual status mapping; the stage's leads are re-derived at once",
            obj({"message": STR, "data": {"type": ["object", "array"]}, **REDERIVED}),
            params=[path("stageId")],
            errors=("400", "404"),
        )
    },
    "/mapping/suggestions": {"get": op("Suggested status for every stage", LIST, errors=())},
    "/mapping/status": {
        "get": op(
            "Stages without a mapping and how many leads sit in each",
            obj(
                {
                    "data": {
                        "type": "array",
                        "items": obj(
                            {"pipelineId": INT, "pipelineName": STR, "stageId": INT, "stageName": STR, "leads": INT}
                        ),
                    },
                    "count": INT,
                    "unmappedLeads": INT,
                }
            ),
            errors=(),
        )
    },
    "/mapping/auto-apply": {
        "post": op(
            "Apply suggestions to unmapped stages; their leads are re-derived at once",
            obj({"applied": INT, "skipped": INT, "errors": ERRORS, **REDERIVED}),
            params=[query("minConfidence", schemas.FRACTION)],
        )
    },
    "/sync-users": {"post": op("Mirror users (with roles)", SYNC_RESULT, errors=("409", "502"))},
    "/users": {"get": op("Users, sorted by name", LIST, params=PAGING)},
    "/sync-roles": {"post": op("Mirror roles", SYNC_RESULT, errors=("409", "502"))},
    "/roles": {"get": op("Roles, sorted by name", LIST, params=PAGING)},
    "/sync-leads": {
        "post": op("Pull leads with their contacts", SYNC_RESULT, params=SYNC_LIMIT, errors=("400", "409", "502"))
    },
    "/create-lead": {
        "post": op(
            "Create a lead (and its contact) in amoCRM and locally; `merged`: amoCRM's duplicate control "
            "answered the guest's existing lead (and contact) instead of creating one",
            obj(
                {
                    "amoLeadId": INT,
                    "leadId": STR,
                    "merged": {"type": "boolean"},
                    "amoContactId": {"type": ["integer", "null"]},
                }
            ),
            params=[IDEMPOTENCY_KEY],
            errors=("400", "409", "502"),
        )
    },
    "/update-lead": {
        "post": op(
            "Update a lead in amoCRM and locally", obj({"message": STR, "amoLeadId": INT}), errors=("400", "404", "502")
        )
    },
    "/sync-lead": {
        "post": op("Upsert the local lead from an amoCRM lead object", obj({"message": STR, "leadId": STR}))
    },
    "/test-lead": {
        "post": op("Development only: create a marked test lead", obj({"amoLeadId": INT}), errors=("404", "502"))
    },
    "/leads/{amoLeadId}": {
        "get": op("The local lead of an amoCRM lead", ENTITY, params=[path("amoLeadId")], errors=("400", "404"))
    },
    "/leads/{amoLeadId}/notes": {
        "post": op(
            "Add a common note to the lead",
            MESSAGE,
            params=[path("amoLeadId"), IDEMPOTENCY_KEY],
            errors=("400", "404", "409", "502"),
        )
    },
    "/sync-contacts": {"post": op("Pull contacts", SYNC_RESULT, params=SYNC_LIMIT, errors=("400", "409", "502"))},
    "/contacts": {
        "get": op("Mirrored contacts", LIST, params=PAGING),
        "post": op(
            "Create a contact in amoCRM",
            obj({"amoContactId": INT}),
            params=[IDEMPOTENCY_KEY],
            errors=("400", "409", "502"),
        ),
    },
    "/guests/erase": {
        "post": op(
            "Erase a guest's personal data from every table (and, alsoInAmo, from the amoCRM contact); "
            "404 for nobody, 409 (with amoContactIds) when several contacts match",
            obj(
                {
                    "amoContactId": {"type": ["integer", "null"]},
                    "erased": obj({"contacts": INT, "leads": INT, "tasks": INT, "activityLog": INT}),
                    "amoChanged": {"type": "boolean"},
                    "amoRefused": {"type": "array", "items": STR},
                }
            ),
            errors=("400", "404", "409", "502"),
        )
    },
    "/contacts/{contactId}": {
        "patch": op("Update a contact in amoCRM", MESSAGE, params=[path("contactId")], errors=("400", "404", "502"))
    },
    "/sync-tasks": {
        "post": op(
            "Pull tasks",
            SYNC_RESULT,
            errors=("400", "409", "502"),
            params=SYNC_LIMIT + [query("is_completed", schemas.Bool()), query("entity_type", schemas.ENTITY_TYPE)],
        )
    },
    "/tasks": {
        "get": op(
            "Mirrored tasks",
            LIST,
            params=PAGING
            + [
                query("is_completed", schemas.Bool()),
                query("entity_type", schemas.ENTITY_TYPE),
                query("entity_id", schemas.ID),
            ],
        ),
        "post": op(
            "Create a task in amoCRM",
            obj({"amoTaskId": INT, "data": {"anyOf": [ENTITY, {"type": "null"}]}}),
            params=[IDEMPOTENCY_KEY],
            errors=("400", "409", "502"),
        ),
    },
    "/tasks/{taskId}/complete": {
        "patch": op(
            "Complete a task",
            obj({"message": STR, "status": STR, "data": ENTITY}),
            params=[path("taskId")],
            errors=("400", "404", "502"),
        )
    },
    "/sync-all": {
        "post": op(
            "Pipelines and stages, then leads; an incremental run (full=false) also applies the deletes "
            "amoCRM's events log shows",
            obj({"pipelines": SYNC_RESULT, "leads": SYNC_RESULT, "deletes": {"type": "object"}}),
            params=[
                query("leadsLimit", schemas.Int(0, default=0), "0 = every lead"),
                query("full", schemas.Bool(default=True)),
            ],
            errors=("400", "409", "502"),
        )
    },
    "/sync-jobs/{jobId}": {
        "get": op(
            "Progress of a sync or a mapping's re-derivation continuing in the background",
            ENTITY,
            params=[path("jobId", STR)],
            errors=("400", "404"),
        )
    },
    "/webhook": {
        "post": op(
            "amoCRM webhooks",
            obj({"status": STR, "processed": INT, "errors": {"type": "array", "items": STR}}),
            public=True,
            errors=("401",),
            params=[query("secret", STR)],
            form_body={"type": "object", "description": "PHP bracket keys, e.g. leads[status][0][id]"},
        )
    },
    "/webhook/register": {
        "post": op(
            "Subscribe this service's webhook in amoCRM (registration: api), or, where amoCRM's plan or "
            "rights refuse its webhooks API, the steps to do it by hand (registration: manual)",
            REGISTRATION,
            errors=("400", "409", "502"),
        ),
        "delete": op("Unsubscribe it (or the steps to do it by hand)", REGISTRATION, errors=("400", "409", "502")),
    },
    "/activity": {
        "get": op(
            "What webhooks did to an entity, newest first (the activity log)",
            LIST,
            params=[
                query("entity", {"type": "string", "enum": ["leads", "contacts", "tasks", "delivery", "guests"]}),
                query("id", schemas.Int(0), "the entity's id; 0 or absent for records without one (deliveries)"),
                query("limit", schemas.ACTIVITY_LIMIT),
            ],
        )
    },
    "/openapi.json": {"get": op("This description", {"type": "object"}, errors=())},
}


def build() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "amoCRM integration service",
            "version": "1.0.0",
            "description": "Connects one amoCRM (Kommo) account to the Main Backend. In every JSON request "
            "body, numbers are finite and no larger than 2^53-1 in size and nesting is at most "
            f"{schemas.MAX_DEPTH} levels deep; anything else is a 400.",
        },
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        "security": [{"ApiKey": []}],
        "paths": {P + route: methods for route, methods in with_json_bodies(ROUTES).items()},
        "webhooks": {
            "leadStatusChanged": {
                "post": {
                    "summary": "Sent to MAIN_BACKEND_WEBHOOK_URL on every lead status change, at least once, "
                    "with headers "
                    "X-API-Key and Idempotency-Key (= eventId); any 2xx answer acknowledges it",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": NOTIFICATION}}},
                    "responses": {"200": {"description": "Received"}},
                }
            }
        },
    }


def main() -> None:
    target = ROOT / "chalicelib" / "openapi.json"
    target.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
