"""The OpenAPI description covers exactly the app's routes, and is served."""
import json
import re
import sys
from pathlib import Path

from app import app
from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parent.parent
SPEC = json.loads((ROOT / "chalicelib" / "openapi.json").read_text())


def test_every_route_is_described_and_nothing_stale():
    described = {(path, method.upper()) for path, methods in SPEC["paths"].items() for method in methods}
    served = {(path, method) for path, methods in app.routes.items() for method in methods}
    assert described == served


def test_path_parameters_match_the_route_placeholders():
    for path, methods in SPEC["paths"].items():
        placeholders = set(re.findall(r"{(\w+)}", path))
        for method, operation in methods.items():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == placeholders, f"{method.upper()} {path}"


def test_only_the_callback_and_the_webhook_are_public():
    public = {path for path, methods in SPEC["paths"].items() for op in methods.values() if op.get("security") == []}
    assert public == {"/integrations/amo-crm/callback", "/integrations/amo-crm/webhook"}
    assert SPEC["components"]["securitySchemes"]["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_the_committed_file_is_what_the_generator_writes():
    sys.path.insert(0, str(ROOT))
    from scripts.build_openapi import build

    assert json.loads(json.dumps(build())) == SPEC, "run scripts/build_openapi.py and commit the result"


def test_it_is_served_behind_the_api_key(client):
    assert client.http.get("/integrations/amo-crm/openapi.json").status_code == 401
    served = client.http.get("/integrations/amo-crm/openapi.json", headers={"X-API-Key": API_KEY})
    assert served.status_code == 200 and served.json_body["openapi"].startswith("3.")
