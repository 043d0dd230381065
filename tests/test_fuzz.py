"""Fuzzing every route in-process: whatever the input, the answer is never a 5xx.

Operations come from the OpenAPI description (so a new route is fuzzed without editing this
file). amoCRM is connected and answers as it does to bad input: reads find nothing (204),
writes fail validation (400 with `validation-errors`), a code exchange is refused (400
OAuthProblemJson). So any 5xx would be the service's own fault, not amoCRM's. Each operation
gets EXAMPLES generated requests: path parameters, query parameters (declared and stray) and
bodies of any JSON shape, or raw text for the webhook. Hostile values are mixed in: numbers
json.dumps cannot write (5,000 digits, 1e400), Infinity and NaN, integers past 2^53, bodies
nested past the stack, and digits int() takes but we must not ("١٧٦٥٧", "1_7657", " 17657").
"""

import json
import re
from pathlib import Path

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fixtures
from tests.conftest import API_KEY
from tests.fixtures import HOST, store_tokens

pytestmark = pytest.mark.usefixtures("aws")  # in-process AWS (moto) with every table

SPEC = json.loads((Path(__file__).resolve().parent.parent / "chalicelib" / "openapi.json").read_text())
OPERATIONS = [(path, method) for path, methods in sorted(SPEC["paths"].items()) for method in sorted(methods)]
EXAMPLES = 25

HOSTILE_NUMBERS = ["9" * 5000, "1e400", "-1e400", "Infinity", "NaN", str(2**53), "1" + "0" * 40, "3.0"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.integers(-(10**40), 10**40)
    | st.floats()
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
scalars = st.one_of(
    st.integers(-5, 10**12).map(str),
    st.text(max_size=30),
    st.sampled_from(
        [
            "0",
            "-1",
            "1.5",
            "true",
            "false",
            "NEW",
            "leads",
            "%%",
            "",
            "99999999999999999999",
            "9007199254740992",
            "١٧٦٥٧",
            "1_7657",
            " 17657",
            "²",
            "9" * 5000,
            "1e400",
            "Infinity",
            "NaN",
        ]
    ),
)
depths = st.integers(30, 3000)


def body_strategy(operation):
    """The body as JSON text: any JSON, an object of the declared fields, or hostile text."""
    fields = ((operation.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get(
        "schema", {}
    ).get("properties") or {}
    known = st.fixed_dictionaries({}, optional=dict.fromkeys(fields, json_values))
    hostile = st.one_of(
        st.builds('{{"{}": {}}}'.format, st.sampled_from(sorted(fields) or ["id"]), st.sampled_from(HOSTILE_NUMBERS)),
        depths.map(lambda depth: "[" * depth + "]" * depth),
        depths.map(lambda depth: '{"a": ' * depth + "1" + "}" * depth),
    )
    return st.one_of(json_values.map(json.dumps), known.map(json.dumps), hostile)


@pytest.fixture
def connected(amo, monkeypatch):
    monkeypatch.setenv("ENABLE_DEV_ENDPOINTS", "true")
    store_tokens()
    problem = {"Content-Type": "application/problem+json"}
    amo.add_callback(responses.GET, re.compile(re.escape(HOST) + r"/.*"), lambda request: (204, {}, ""))
    amo.add_callback(responses.DELETE, re.compile(re.escape(HOST) + r"/.*"), lambda request: (204, {}, ""))
    amo.add_callback(
        responses.POST,
        re.compile(re.escape(HOST) + r"/oauth2/.*"),
        lambda request: (
            400,
            problem,
            json.dumps({**fixtures.REVOKED, "status": 400, "hint": "Authorization code has expired"}),
        ),
    )
    for method in (responses.POST, responses.PATCH):
        amo.add_callback(
            method,
            re.compile(re.escape(HOST) + r"/api/.*"),
            lambda request: (400, problem, json.dumps(fixtures.VALIDATION)),
        )


@pytest.mark.parametrize("path,method", OPERATIONS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_input_makes_a_route_answer_5xx(client, connected, path, method, data, record_property):
    operation = SPEC["paths"][path][method]
    url = re.sub(
        r"{(\w+)}",
        lambda m: data.draw(
            scalars.filter(lambda s: "/" not in s and "?" not in s and "#" not in s and s.strip() != ""),
            label=m.group(1),
        ),
        path,
    )
    names = [p["name"] for p in operation["parameters"] if p["in"] == "query"] + ["stray"]
    params = data.draw(st.dictionaries(st.sampled_from(names), scalars, max_size=4), label="query")
    if params:
        from urllib.parse import urlencode

        url += "?" + urlencode(params)
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    if path.endswith("/webhook") and data.draw(st.booleans(), label="form"):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = data.draw(st.text(max_size=200), label="form body")
    else:
        body = data.draw(body_strategy(operation), label="body")
    if data.draw(st.booleans(), label="idempotency"):
        headers["Idempotency-Key"] = data.draw(st.text(min_size=1, max_size=20).filter(str.isprintable))
    response = client.http.request(method.upper(), url, headers=headers, body=body)
    record_property("fuzz_case", 1)  # counted by conftest.py, also across xdist workers
    assert response.status_code < 500, (method, url, body, response.body[:500])
