"""Every call a flow makes, seen at the two boundaries, and one fault put into one of them.

- AWS: botocore's `BaseClient._make_api_call`, below PynamoDB and boto3 and above botocore's own
  retries (what a fault here models has already survived those), named `dynamodb.PutItem
  amocrm-leads`, `sqs.SendMessageBatch`…
- amoCRM and the Main Backend: `requests.Session.send` towards the sandbox, named
  `amo GET /api/v4/leads/{id}` or `main-backend POST /notifications`.

A fault is (a call's name, which occurrence of that name in the flow, a kind): threads make
the global order of calls vary from run to run (a sync reads pipelines beside its first lead
pages), the order of the calls of one name does not. The kinds, per boundary:
- `throttled`: refused before it applied (DynamoDB `ProvisionedThroughputExceededException`, a
  transaction cancelled with `ThrottlingError`, SQS throttling; amoCRM's HTML 429 without
  Retry-After, reference §3.4);
- `lost_answer`: it applied and its answer was lost. At AWS botocore then sends it again and
  returns what that second attempt got (a transaction's retry carries the same
  ClientRequestToken, which DynamoDB answers as the first attempt); over HTTP the caller sees
  a read timeout;
- `unreachable`: the endpoint could not be reached; nothing applied;
- `cut_body` (HTTP): it applied and the body broke off mid-transfer, which the client can see
  (the Content-Length was not reached);
- `short_body` (HTTP): it applied and its body stops half-way with nothing to show it (no
  Content-Length, the connection simply closed): a 2xx whose JSON does not parse;
- `no_id` (HTTP writes): it applied and a 2xx came back without the ids the caller needs.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import botocore.client
import requests
from botocore.exceptions import ClientError, EndpointConnectionError

AWS_KINDS = ("throttled", "lost_answer", "unreachable")
HTTP_KINDS = ("throttled", "lost_answer", "unreachable", "cut_body", "short_body")
WRITE_KINDS = ("no_id",)
ID_IN_PATH = re.compile(r"/\d+")
WRITES = frozenset({"POST", "PATCH", "PUT"})
HTML_429 = "<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>"


@dataclass(frozen=True)
class Call:
    boundary: str  # aws | amo | main-backend
    name: str
    method: str = ""

    def kinds(self) -> tuple[str, ...]:
        if self.boundary == "aws":
            return AWS_KINDS
        return HTTP_KINDS + (WRITE_KINDS if self.method in WRITES else ())


@dataclass(frozen=True)
class Fault:
    call: str  # a Call's name
    occurrence: int  # 0: the first call of that name in the flow
    kind: str

    def __str__(self) -> str:
        return f"{self.call} #{self.occurrence} {self.kind}"


@dataclass
class Injector:
    """Records calls; fails the one at `fault.index` in the way `fault.kind` says (once)."""

    sandbox_host: str
    fault: Fault | None = None
    calls: list[Call] = field(default_factory=list)
    fired: bool = False
    active: bool = False  # only the flow's faulted part is counted
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The test's own calls (receiving from a queue as SQS would) are not the flow's."""
        active, self.active = self.active, False
        try:
            yield
        finally:
            self.active = active

    def _next(self, call: Call) -> str | None:
        if not self.active:
            return None
        with self._lock:
            occurrence = sum(1 for seen in self.calls if seen.name == call.name)
            self.calls.append(call)
            if self.fault is None or self.fired or (call.name, occurrence) != (self.fault.call, self.fault.occurrence):
                return None
            self.fired = True
            return self.fault.kind

    def faults(self) -> list[Fault]:
        """Every fault this (clean) run's calls can take: each call × each kind of its boundary."""
        seen: dict[str, int] = {}
        found = []
        for call in self.calls:
            occurrence = seen.get(call.name, 0)
            seen[call.name] = occurrence + 1
            found += [Fault(call.name, occurrence, kind) for kind in call.kinds()]
        return found

    # -- AWS ----------------------------------------------------------------------------------------

    def aws(self, original: Any, client: Any, operation: str, params: dict) -> Any:
        service = client.meta.service_model.service_name
        table = params.get("TableName") or ""
        kind = self._next(Call("aws", f"{service}.{operation} {table}".strip()))
        if kind is None:
            return original(client, operation, params)
        if kind == "throttled":
            raise _throttled(service, operation, params)
        if kind == "unreachable":
            raise EndpointConnectionError(endpoint_url=f"https://{service}.us-east-1.amazonaws.com")
        try:  # lost_answer: it applied; botocore's retry then sees what the first attempt did
            first = original(client, operation, params)
        except ClientError:
            raise
        if operation == "TransactWriteItems":
            return first  # same ClientRequestToken: DynamoDB answers the retry as it did the first
        return original(client, operation, params)

    # -- HTTP ---------------------------------------------------------------------------------------

    def http(self, original: Any, session: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        parts = urlsplit(request.url or "")
        if (
            parts.netloc != self.sandbox_host
            or parts.path.startswith("/_sandbox/")
            and "main-backend" not in parts.path
        ):
            return original(session, request, **kwargs)
        method = request.method or "GET"
        if parts.path.startswith("/_sandbox/main-backend"):
            call = Call(
                "main-backend", f"main-backend {method} {parts.path.removeprefix('/_sandbox/main-backend')}", method
            )
        else:
            call = Call("amo", f"amo {method} {ID_IN_PATH.sub('/{id}', parts.path)}", method)
        kind = self._next(call)
        if kind is None:
            return original(session, request, **kwargs)
        if kind == "unreachable":
            raise requests.ConnectionError("injected: connection refused")
        if kind == "throttled":
            return _response(request, 429, HTML_429, "text/html")
        response = original(session, request, **kwargs)
        if kind == "lost_answer":
            raise requests.ReadTimeout("injected: the answer never came")
        if kind == "cut_body":
            raise requests.exceptions.ChunkedEncodingError("injected: connection broken mid-body")
        if kind == "short_body":
            half = response.content[: len(response.content) // 2].decode(errors="ignore")
            return _response(request, response.status_code, half, response.headers.get("Content-Type", ""))
        if kind == "no_id" and 200 <= response.status_code < 300:
            return _response(request, response.status_code, "{}", "application/hal+json")
        return response


def _throttled(service: str, operation: str, params: dict) -> ClientError:
    if operation == "TransactWriteItems":
        reasons = [{"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity"}] * len(
            params.get("TransactItems") or [1]
        )
        error = {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled [ThrottlingError]"},
            "CancellationReasons": reasons,
        }
        return ClientError(error, operation)
    code = "ProvisionedThroughputExceededException" if service == "dynamodb" else "ThrottlingException"
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, operation)


def _response(request: requests.PreparedRequest, status: int, body: str, content_type: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers["Content-Type"] = content_type
    response.url = request.url or ""
    response.request = request
    return response


@contextmanager
def installed(injector: Injector) -> Iterator[Injector]:
    """The injector sees (and may fail) every AWS call and every HTTP call to the sandbox."""
    aws_original = botocore.client.BaseClient._make_api_call
    http_original = requests.Session.send

    def aws(client: Any, operation: str, params: dict) -> Any:
        return injector.aws(aws_original, client, operation, params)

    def http(session: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        return injector.http(http_original, session, request, **kwargs)

    botocore.client.BaseClient._make_api_call = aws  # type: ignore[method-assign]
    requests.Session.send = http  # type: ignore[method-assign]
    try:
        yield injector
    finally:
        botocore.client.BaseClient._make_api_call = aws_original  # type: ignore[method-assign]
        requests.Session.send = http_original  # type: ignore[method-assign]
