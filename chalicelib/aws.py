"""The botocore set-up every AWS client of the process shares.

One data loader: a botocore session parses endpoints.json and each service's model the first
time it builds a client. PynamoDB makes a session per model (and per thread) and boto3 one
more, so a cold Lambda's first webhook parsed the same JSON three times: about 1.2 s of its
1.6 s (scripts/webhook_cold_start.py). Sessions made here share one loader, and with it its
cache: each file is parsed once per process.

DynamoDB requests sent as given: DynamoDB speaks JSON, and its request body is the call's
parameters themselves whenever they hold only strings, numbers, booleans, None, lists and
dicts, which is what PynamoDB hands botocore (attribute values arrive already in DynamoDB's
wire format, `{"S": ...}`, `{"N": "12"}`). botocore still walks every value against the
operation's model before `json.dumps`: about 1.3 ms of CPU for a BatchWriteItem of 25 leads,
a fifth of the call. `JsonAsGiven` skips the walk and lets botocore do the rest (signing,
sending, parsing) as usual. A call whose parameters hold anything JSON cannot write as such
(bytes of a binary attribute, which botocore base64-encodes; a datetime; a Decimal; NaN) goes
through botocore's own serializer, as does every operation whose model gives a value any other
meaning (timestamps, renamed members, a host prefix).

DynamoDB answers read as received, for the same reason: botocore's parser walks every value
of an answer against the model after `json.loads`, which made parsing a BatchGetItem of 100
stored leads cost about as much as building their models. `parse_as_received` hands botocore the
answer already parsed (through its `before-parse` event) when the walk would change nothing:
a successful answer of an operation whose output holds no timestamps or renamed members, and
no binary value (botocore base64-decodes those: any answer with a "B" or "BS" key, even an
attribute so named, takes botocore's way). botocore then parses an empty body, for the
response metadata only. One difference: a key botocore's model does not know, or a null, is
kept where botocore drops it; every reader here looks answers up by the keys it knows.
"""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.loaders
import botocore.session
from botocore.model import OperationModel, Shape, StructureShape
from botocore.serialize import JSONSerializer
from pynamodb.connection import base as pynamodb_connection

_loader: botocore.loaders.Loader | None = None


def botocore_session(session_vars: Any = None) -> botocore.session.Session:
    """A new session (botocore clients are not shared across threads) with the shared loader;
    its DynamoDB clients send their requests as given (`JsonAsGiven`)."""
    global _loader
    session = botocore.session.Session(session_vars)
    if _loader is None:
        _loader = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _loader)
    session.register("creating-client-class.dynamodb", _send_as_given)
    session.register("before-parse.dynamodb", parse_as_received)
    return session


def share_loader_with_pynamodb() -> None:
    """PynamoDB asks `pynamodb.connection.base.get_session` for each connection's session."""
    pynamodb_connection.get_session = botocore_session


class JsonAsGiven:
    """A botocore JSON-protocol serializer that writes the parameters as they are when that is
    what botocore's serializer (`fallback`) would write, and asks `fallback` otherwise."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self._templates: dict[str, dict | None] = {}  # per operation: the request without its body

    def serialize_to_request(self, parameters: Any, operation_model: OperationModel) -> dict:
        template = self._template(operation_model)
        if template is not None:
            try:
                body = json.dumps(parameters, allow_nan=False).encode("utf-8")
            except (TypeError, ValueError):  # bytes, datetimes, NaN: botocore converts them
                pass
            else:
                return {**template, "headers": dict(template["headers"]), "body": body}
        return self.fallback.serialize_to_request(parameters, operation_model)

    def _template(self, operation_model: OperationModel) -> dict | None:
        name = operation_model.name
        if name not in self._templates:
            plain = "hostPrefix" not in (operation_model.endpoint or {}) and _as_given(operation_model.input_shape)
            self._templates[name] = self.fallback.serialize_to_request({}, operation_model) if plain else None
        return self._templates[name]


_BINARY_KEY = re.compile(rb'"(?:B|BS)"\s*:')
_as_received: dict[tuple[str, str], bool] = {}  # per (service, operation): may be read as received


def parse_as_received(
    operation_model: OperationModel, response_dict: dict, customized_response_dict: dict, **_: Any
) -> None:
    """botocore's `before-parse` event: a plain answer is parsed here, and botocore's parser
    gets an empty body (see the module's docstring)."""
    body = response_dict["body"]
    if response_dict["status_code"] >= 300 or not body or _BINARY_KEY.search(body):
        return
    key = (operation_model.service_model.service_name, operation_model.name)
    if key not in _as_received:
        shape = operation_model.output_shape
        _as_received[key] = shape is not None and not shape.event_stream_name and _as_given(shape)
    if not _as_received[key]:
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    if isinstance(parsed, dict) and "ResponseMetadata" not in parsed:
        customized_response_dict.update(parsed)
        response_dict["body"] = b""


def _as_given(shape: Shape | None, seen: set[str] | None = None) -> bool:
    """True when botocore's JSON serializer writes, and its parser reads, every value of
    `shape` as it is (a blob excepted: see `JsonAsGiven` and `parse_as_received`)."""
    if shape is None:
        return True
    seen = set() if seen is None else seen
    if shape.name in seen:
        return True
    seen.add(shape.name)
    if shape.type_name == "timestamp":
        return False
    if isinstance(shape, StructureShape):
        return not any("name" in member.serialization for member in shape.members.values()) and all(
            _as_given(member, seen) for member in shape.members.values()
        )
    children = [getattr(shape, attribute, None) for attribute in ("member", "key", "value")]
    return all(_as_given(child, seen) for child in children if child is not None)


class _SendsAsGiven:
    """Mixed into DynamoDB client classes: the client's serializer becomes `JsonAsGiven`, when
    it is botocore's plain JSON one (not one that validates parameters first, nor another
    protocol's, should botocore ever speak another to DynamoDB)."""

    _serializer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self._serializer) is JSONSerializer:
            self._serializer = JsonAsGiven(self._serializer)


def _send_as_given(base_classes: list[type], **_: Any) -> None:
    base_classes.insert(0, _SendsAsGiven)
