"""Every JSON request body and every bounded query or path parameter, declared once.

validation.py checks input with these specs (each failure is an InvalidInput naming the field)
and scripts/build_openapi.py publishes them as JSON Schema, so what the API accepts and what it
documents come from the same line. Conventions of every spec:

- a missing field, `null` and, for strings, `""` all mean "not given";
- integers from outside lie within ±MAX_ID; a JSON number like 3.0 is the integer 3;
- objects may carry fields they do not declare (amoCRM objects are passed through).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.amo.tasks import ENTITY_TYPES
from chalicelib.services.errors import InvalidInput
from chalicelib.services.paging import DEFAULT_LIMIT, MAX_LIMIT
from chalicelib.services.stage_names import STATUSES

MAX_ID = 2**53 - 1  # the largest integer every JSON parser keeps exact; far below DynamoDB's 38 digits
MAX_DEPTH = 32  # nesting of a JSON body; amoCRM's deepest objects need about 6
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")  # ASCII only: float() also takes "١.٥" and "1_0"


def fail(name: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{name or 'request body'} {problem}")


@dataclass(frozen=True)
class Str:
    max_length: int = 2000
    enum: tuple[str, ...] = ()
    pattern: str | None = None  # searched in the value; `pattern_means` names what it asks for
    pattern_means: str = ""
    message: str | None = None  # replaces "must be a string" / "must be at most N characters"
    default: str | None = None

    def check(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or len(value) > self.max_length:
            raise fail(
                name,
                self.message
                or (
                    "must be a string"
                    if not isinstance(value, str)
                    else f"must be at most {self.max_length} characters"
                ),
            )
        if self.enum and value not in self.enum:
            raise fail(name, f"must be one of {', '.join(self.enum)}")
        if self.pattern and not re.search(self.pattern, value):
            raise fail(name, f"must be {self.pattern_means}")
        return value

    def parse(self, raw: str, name: str) -> str:
        return self.check(raw, name)

    def json_schema(self, required: bool) -> dict:
        schema: dict = {"type": "string" if required else ["string", "null"]}
        if self.enum:
            return {**schema, "enum": list(self.enum) + ([] if required else ["", None])}
        if required:
            schema["minLength"] = 1
        schema["maxLength"] = self.max_length
        if self.pattern:
            schema["pattern"] = self.pattern if required else f"^$|{self.pattern}"
        return schema


@dataclass(frozen=True)
class Int:
    minimum: int = -MAX_ID
    maximum: int = MAX_ID
    default: int | None = None
    message: str | None = None  # replaces every message below, e.g. "must be a positive integer"

    def check(self, value: Any, name: str) -> int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(name, self.message or "must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise fail(name, self.message or f"must be between {self.minimum} and {self.maximum}")
        return value

    def parse(self, raw: str, name: str) -> int:
        """A query or path parameter: ASCII digits only (int() also takes "١٧", "1_7" and " 17"),
        and no longer than the maximum before converting (int() refuses over 4,300 digits)."""
        if not (raw.isascii() and raw.isdigit()):
            raise fail(name, self.message or "must be a non-negative integer")
        if len(raw.lstrip("0")) > len(str(self.maximum)):
            raise fail(name, self.message or f"must be between {self.minimum} and {self.maximum}")
        return self.check(int(raw), name)

    def json_schema(self, required: bool) -> dict:
        schema: dict = {
            "type": "integer" if required else ["integer", "null"],
            "minimum": self.minimum,
            "maximum": self.maximum,
        }
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Num:
    minimum: float
    maximum: float

    def check(self, value: Any, name: str) -> float:
        if isinstance(value, str):
            return self.parse(value, name)
        if (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not self.minimum <= value <= self.maximum
        ):  # NaN fails the comparison too
            raise fail(name, f"must be a number between {self.minimum:g} and {self.maximum:g}")
        return float(value)

    def parse(self, raw: str, name: str) -> float:
        if not _DECIMAL.fullmatch(raw):
            raise fail(name, f"must be a number between {self.minimum:g} and {self.maximum:g}")
        return self.check(float(raw), name)

    def json_schema(self, required: bool) -> dict:
        return {"type": "number" if required else ["number", "null"], "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Bool:
    default: bool | None = None

    def parse(self, raw: str, name: str) -> bool:
        if raw.lower() not in ("true", "false"):
            raise fail(name, "must be true or false")
        return raw.lower() == "true"

    def check(self, value: Any, name: str) -> bool:
        """A JSON true/false only (not "yes" or 1: a flag that loosens a check must be meant)."""
        if not isinstance(value, bool):
            raise fail(name, "must be true or false")
        return value

    def json_schema(self, required: bool) -> dict:
        schema: dict = {"type": "boolean" if required else ["boolean", "null"]}
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class List:
    """A JSON array whose items are passed through as they are (e.g. amoCRM custom fields)."""

    def check(self, value: Any, name: str) -> list:
        if not isinstance(value, list):
            raise fail(name, "must be a list")
        return value

    def json_schema(self, required: bool) -> dict:
        return {"type": "array" if required else ["array", "null"]}


@dataclass(frozen=True)
class Obj:
    """A JSON object: its declared fields are checked, any others are kept as they are."""

    fields: dict[str, Spec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()  # at least one of these strings is given and not blank
    together: tuple[str, ...] = ()  # all of these are given, or none
    at_most_one: tuple[str, ...] = ()  # no two of these are given (None and "" are not given)
    description: str = ""

    def check(self, value: Any, name: str) -> dict:
        """The object with its declared fields cleaned (3.0 → 3) and the ones not given dropped."""
        if not isinstance(value, dict):
            raise fail(name, "must be a JSON object")
        prefix = f"{name}." if name else ""
        clean = {key: item for key, item in value.items() if key not in self.fields}
        for key, spec in self.fields.items():
            checked = take(spec, data=value, key=key, required=key in self.required, name=prefix + key)
            if checked is not None:
                clean[key] = checked
        if self.any_of and not any(clean.get(key, "").strip() for key in self.any_of):
            raise fail(prefix + self.any_of[0], f"is required (or {' or '.join(self.any_of[1:])})")
        if len({key in clean for key in self.together}) > 1:
            raise fail(prefix + " and ".join(self.together), "go together")
        given = [key for key in self.at_most_one if clean.get(key) not in (None, "")]
        if len(given) > 1:
            raise fail(prefix + " and ".join(given), f"name one thing: give only one of {', '.join(self.at_most_one)}")
        return clean

    def json_schema(self, required: bool = True) -> dict:
        schema: dict = {"type": "object" if required else ["object", "null"]}
        if self.description:
            schema["description"] = self.description
        if self.fields:
            schema["properties"] = {key: spec.json_schema(key in self.required) for key, spec in self.fields.items()}
        if self.required:
            schema["required"] = list(self.required)
        if self.any_of:
            schema["anyOf"] = [
                {"required": [key], "properties": {key: {"type": "string", "pattern": r"\S"}}} for key in self.any_of
            ]
        if self.at_most_one:
            pairs = [(a, b) for i, a in enumerate(self.at_most_one) for b in self.at_most_one[i + 1 :]]
            schema["not"] = {"anyOf": [_given_schema(a, b) for a, b in pairs]}
        if self.together:
            schema["allOf"] = [
                {"if": _given_schema(key), "then": _given_schema(*(other for other in self.together if other != key))}
                for key in self.together
            ]
        return schema


Spec = Str | Int | Num | Bool | List | Obj


def take(spec: Spec, *, data: Mapping, key: str, required: bool, name: str = "") -> Any:
    """data[key] checked against `spec`, or None when it is not given and need not be."""
    value = data.get(key)
    if value is None or (value == "" and isinstance(spec, Str)):
        if required:
            raise fail(name or key, "is required")
        return None
    return spec.check(value, name or key)


def _given_schema(*keys: str) -> dict:
    return {"required": list(keys), "properties": {key: {"not": {"enum": [None, ""]}} for key in keys}}


# -- the pieces bodies share ----------------------------------------------------------------------

ID = Int(1, message="must be a positive integer below 2^53")
FRACTION = Num(0, 1)
EMAIL = Str(320, pattern="@", pattern_means="an e-mail address")

LEAD_DATA = Obj(
    {
        "name": Str(message="must be a non-empty string of at most 2000 characters"),
        "price": Int(0, message="must be a non-negative integer below 2^53"),
        "pipeline_id": ID,
        "status_id": ID,
        "responsible_user_id": ID,
        "loss_reason_id": ID,
        "custom_fields_values": List(),
        "_embedded": Obj(),
    },
    description="amoCRM lead fields",
)
CONTACT_FIELDS: dict[str, Spec] = {
    "name": Str(),
    "first_name": Str(),
    "last_name": Str(),
    "phone": Str(),
    "email": EMAIL,
    "responsible_user_id": ID,
}
CONTACT = Obj(CONTACT_FIELDS, any_of=("name", "first_name", "last_name"))
CONTACT_CHANGES = Obj(CONTACT_FIELDS)
TASK = Obj(
    {
        "text": Str(5000),
        "complete_till": Int(0),
        "entity_type": Str(enum=ENTITY_TYPES),
        "entity_id": ID,
        "task_type_id": ID,
        "responsible_user_id": ID,
        "duration": Int(0),
    },
    required=("text", "complete_till"),
    together=("entity_id", "entity_type"),
)

# OAuth states we issue are 32 characters, or at most this when the caller chooses one
# (exchange-api-key); a longer one cannot be ours. A referer is an account host.
OAUTH_STATE = Str(200)
REFERER = Str(255)

# -- bodies, by route (under /integrations/amo-crm) ----------------------------------------------

GUEST_ERASURE = Obj(
    {"amoContactId": ID, "email": Str(320), "phone": Str(64), "alsoInAmo": Bool(default=False)},
    at_most_one=("amoContactId", "email", "phone"),
    description="the guest, named by amoContactId, email (compared in lower case) or phone (compared by its "
    "digits): one of them is required; alsoInAmo also clears the person in amoCRM: the contact's name, phones and "
    "e-mails, the lead custom fields and task texts that hold them",
)
BODIES: dict[str, Obj] = {
    "POST /exchange-api-key": Obj(
        {"login": Str(320), "api_key": Str(200), "state": OAUTH_STATE}, required=("login", "api_key")
    ),
    "POST /set-tokens": Obj(
        {"access_token": Str(8000), "refresh_token": Str(8000), "expires_in": Int(1, default=86400)},
        required=("access_token", "refresh_token"),
    ),
    "PUT /stages/{stageId}/mapping": Obj(
        {"mappedStatus": Str(enum=STATUSES), "pipelineId": ID}, required=("mappedStatus",)
    ),
    "POST /mapping/auto-apply": Obj({"minConfidence": FRACTION}),
    "POST /create-lead": Obj({"leadData": LEAD_DATA, "contact": CONTACT}, required=("leadData",)),
    "POST /update-lead": Obj({"leadId": ID, "leadData": LEAD_DATA}, required=("leadId", "leadData")),
    "POST /sync-lead": Obj(
        {"lead": Obj(description="an amoCRM lead object, as GET /api/v4/leads/{id} returns it")}, required=("lead",)
    ),
    "POST /leads/{amoLeadId}/notes": Obj({"text": Str(20000)}, required=("text",)),
    "POST /contacts": CONTACT,
    "PATCH /contacts/{contactId}": CONTACT_CHANGES,
    "POST /tasks": TASK,
    "PATCH /tasks/{taskId}/complete": Obj({"result_text": Str(5000)}),
    "POST /guests/erase": GUEST_ERASURE,
    "POST /webhook/register": Obj(
        {"url": Str(), "allowForeignDestination": Bool(default=False)},
        description="url defaults to this service's own webhook route; another host only with "
        "allowForeignDestination: true (amoCRM sends the secret and every event there)",
    ),
    "DELETE /webhook/register": Obj({"url": Str()}),
}
BODY_MAY_BE_OMITTED = frozenset(
    {"POST /mapping/auto-apply", "PATCH /tasks/{taskId}/complete", "POST /webhook/register", "DELETE /webhook/register"}
)

# -- query parameters ------------------------------------------------------------------------------

PAGE_LIMIT = Int(1, MAX_LIMIT, default=DEFAULT_LIMIT)
SYNC_LIMIT = Int(0, default=50)  # 0 = everything
ACTIVITY_LIMIT = Int(1, MAX_LIMIT, default=50)
ENTITY_TYPE = Str(enum=ENTITY_TYPES)
