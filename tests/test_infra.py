"""Infrastructure cannot drift from the code: every table the models define and every queue the
code uses is in the merge template, and the packaged template passes cfn-lint."""

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.models import ALL_MODELS
from scripts.infra_spec import FUNCTIONS, QUEUES, SECRET_OF, deployed_stages, function_setting, resource_prefix
from scripts.package import RUNTIME

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = json.loads((ROOT / "infra" / "prod-resources.json").read_text())
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())


def tables_by_suffix():
    found = {}
    for resource in TEMPLATE["Resources"].values():
        if resource.get("Type") == "AWS::DynamoDB::Table":
            name = resource["Properties"]["TableName"]["Fn::Sub"]
            found[name.replace("${TablePrefix}", "")] = resource["Properties"]
    return found


def _keys(schema):
    return sorted((k["AttributeName"], k["KeyType"]) for k in schema)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_every_model_has_its_table_with_the_same_keys_and_indexes(model):
    table = tables_by_suffix().get(model.Meta.table_suffix)
    assert table is not None, f"{model.__name__}: no table in infra/prod-resources.json (run scripts/build_infra.py)"
    schema = model._get_schema()
    assert _keys(table["KeySchema"]) == _keys(schema["key_schema"])
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    expected_indexes = {i["index_name"]: _keys(i["key_schema"]) for i in schema.get("global_secondary_indexes", [])}
    actual_indexes = {i["IndexName"]: _keys(i["KeySchema"]) for i in table.get("GlobalSecondaryIndexes", [])}
    assert actual_indexes == expected_indexes
    projections = {i["IndexName"]: i["Projection"] for i in table.get("GlobalSecondaryIndexes", [])}
    assert projections == {i["index_name"]: i["projection"] for i in schema.get("global_secondary_indexes", [])}
    definitions = {d["AttributeName"]: d["AttributeType"] for d in schema["attribute_definitions"]}
    for index in schema.get("global_secondary_indexes", []):
        definitions.update({d["AttributeName"]: d["AttributeType"] for d in index["attribute_definitions"]})
    assert {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]} == definitions
    ttl = [name for name, attribute in model.get_attributes().items() if type(attribute).__name__ == "TTLAttribute"]
    assert (table.get("TimeToLiveSpecification") or {}).get("AttributeName") == (ttl[0] if ttl else None)


def test_the_template_has_no_table_the_models_do_not_define():
    assert set(tables_by_suffix()) == {m.Meta.table_suffix for m in ALL_MODELS}


@pytest.mark.parametrize("stage", deployed_stages())
def test_each_deployed_stage_names_its_tables_queues_and_secrets_after_itself(stage):
    template = json.loads((ROOT / "infra" / f"{stage}-resources.json").read_text())
    assert template["Parameters"]["TablePrefix"]["Default"] == resource_prefix(stage) == f"amocrm-{stage}-"
    assert template["Parameters"]["SecretsPrefix"]["Default"] == f"amocrm-integration/{stage}/"
    env = CONFIG["stages"][stage]["environment_variables"]
    assert not [name for name in env if name == "TABLE_PREFIX" or name.endswith("_QUEUE_NAME")]
    assert not [value for value in env.values() if "secretsmanager:" in value]  # the template derives them


def test_staging_is_a_deployed_stage_beside_prod():
    assert {"prod", "staging"} <= set(deployed_stages()) and "dev" not in deployed_stages()


@pytest.mark.parametrize("stage", deployed_stages())
def test_every_queue_the_code_consumes_exists_with_a_dead_letter_queue_and_partial_batches(stage):
    from app import app

    template = json.loads((ROOT / "infra" / f"{stage}-resources.json").read_text())
    consumers = [s for s in app.event_sources if getattr(s, "queue", None)]
    assert consumers
    for source in consumers:
        function_id = "".join(part.capitalize() for part in source.name.split("-"))
        (queue_id,) = [queue_id for queue_id, queue in QUEUES.items() if queue.consumer == function_id]
        queue = template["Resources"][queue_id]
        dlq = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert template["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
        timeout = function_setting(stage, source.name, "lambda_timeout")  # this stage's, not prod's
        assert queue["Properties"]["VisibilityTimeout"] >= 6 * timeout
        events = template["Resources"][function_id]["Properties"]["Events"]
        assert events[f"{function_id}SqsEventSource"]["Properties"]["FunctionResponseTypes"] == [
            "ReportBatchItemFailures"
        ]


def test_queued_rechecks_of_a_delete_end_before_the_queue_dead_letters_it():
    from chalicelib.services.webhook_events import DELETE_CHECKS

    webhook_queue = TEMPLATE["Resources"]["WebhookQueue"]["Properties"]
    assert DELETE_CHECKS < webhook_queue["RedrivePolicy"]["maxReceiveCount"]


def test_every_queue_url_setting_the_code_reads_is_given_to_every_function():
    from chalicelib import settings

    read = {"SYNC_QUEUE_URL", "WEBHOOK_QUEUE_URL", "NOTIFY_QUEUE_URL", "NOTIFY_DLQ_URL"}
    assert all(name in Path(settings.__file__).read_text() for name in read)
    for function in FUNCTIONS:
        variables = TEMPLATE["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert read <= set(variables)


def test_the_committed_templates_and_policies_are_what_the_generator_writes():
    from scripts.build_infra import build, policies

    assert sorted(p.name for p in (ROOT / "infra").glob("*-resources.json")) == [
        f"{stage}-resources.json" for stage in deployed_stages()
    ]
    for stage in deployed_stages():
        committed = json.loads((ROOT / "infra" / f"{stage}-resources.json").read_text())
        assert json.loads(json.dumps(build(stage))) == committed, "run scripts/build_infra.py and commit the result"
    for name, document in policies().items():
        committed = json.loads((ROOT / ".chalice" / name).read_text())
        assert json.loads(json.dumps(document)) == committed, f"{name}: run scripts/build_infra.py"


def _pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if "==" in requirement:
            name, version = requirement.removesuffix("\\").split("==")
            found[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version.strip()
    return found


def test_every_dependency_is_pinned_and_the_tests_run_the_packages_versions():
    runtime, dev = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    assert {"boto3", "botocore", "aws-lambda-powertools", "pynamodb", "requests"} <= set(runtime)
    assert runtime["boto3"] == runtime["botocore"]  # one matched pair, shipped together
    assert {name: dev.get(name) for name in runtime} == runtime
    for name, version in runtime.items():
        assert importlib.metadata.version(name) == version, f"{name}: the tests run another version than Lambda"


def test_every_aws_service_the_code_calls_is_one_the_package_keeps():
    from scripts.package import SERVICES

    code = "\n".join(p.read_text() for p in (ROOT / "chalicelib").rglob("*.py"))
    assert set(re.findall(r'boto3\.client\("([\w-]+)"', code)) <= set(SERVICES)


def test_the_package_holds_exactly_the_pinned_dependencies_and_runs_on_its_own(tmp_path):
    project = tmp_path / "project"  # a copy: packaging must not leave files in the work tree
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".local", "out", "__pycache__", ".pytest_cache", ".chalice/deployments"
        ),
    )
    out = tmp_path / "out"
    built = subprocess.run(
        [sys.executable, "scripts/package.py", "--stage", "prod", str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]  # chalice package, then cfn-lint
    archive = out / "deployment.zip"
    assert archive.stat().st_size < 8e6, f"{archive.stat().st_size / 1e6:.1f} MB zipped"
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        zipped.extractall(tmp_path / "unzipped")
    shipped = {}
    for name in names:
        match = re.match(r"^([^/]+)-([^-/]+)\.dist-info/METADATA$", name)
        if match:
            shipped[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    assert shipped == _pins(ROOT / "requirements.txt")
    # every module compiled ahead, hash-based and unchecked (Lambda cannot cache what it compiles):
    # a pyc beside each .py, none without its source
    sources = {n for n in names if n.endswith(".py")}
    pycs = {n for n in names if n.endswith(".pyc")}
    expected = {f"{n.rpartition('/')[0]}/__pycache__/{n.rpartition('/')[2][:-3]}.cpython-311.pyc" for n in sources}
    assert pycs <= {p.removeprefix("/") for p in expected}
    assert "chalicelib/__pycache__/settings.cpython-311.pyc" in pycs and "__pycache__/app.cpython-311.pyc" in pycs
    assert len(pycs) >= 0.95 * len(sources)  # all but a few files that do not compile
    with zipfile.ZipFile(archive) as zipped:
        header = zipped.read("chalicelib/__pycache__/settings.cpython-311.pyc")[:8]
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, source never checked
    assert {n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") > 2} == {
        "dynamodb",
        "sqs",
        "secretsmanager",
    }
    # the package alone (no site-packages): the app imports and the clients it uses can be built
    unzipped = str(tmp_path / "unzipped")
    smoke = (
        f"import app, boto3, botocore; assert botocore.__file__.startswith({unzipped!r}); "
        "[boto3.client(s) for s in ('dynamodb', 'sqs', 'secretsmanager')]"
    )
    ran = subprocess.run(
        [sys.executable, "-S", "-c", smoke],
        cwd=tmp_path / "unzipped",
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": os.environ.get("PATH", ""),
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(tmp_path / "unzipped"),
        },
    )
    assert ran.returncode == 0, ran.stderr[-2000:]

    sam = json.loads((out / "sam.json").read_text())
    functions = {
        name: r["Properties"] for name, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == set(FUNCTIONS)
    for name, properties in functions.items():
        assert (properties["Runtime"], properties["Tracing"]) == (RUNTIME, "Active"), name
        variables = properties["Environment"]["Variables"]
        for variable, secret in SECRET_OF.items():  # only where the secret is, never the secret
            assert variables[variable] == {"Fn::Sub": f"secretsmanager:${{SecretsPrefix}}{secret}#{variable}"}
        role = sam["Resources"][properties["Role"]["Fn::GetAtt"][0]]
        policy = json.loads((ROOT / ".chalice" / FUNCTIONS[name].policy_file).read_text())
        assert role["Properties"]["Policies"][0]["PolicyDocument"] == policy, name
    # concurrency is a second line behind the shared amoCRM budget: few consumers, one sync at a time
    for name in ("ProcessWebhooks", "ContinueSync"):
        (source,) = [e for e in functions[name]["Events"].values() if e["Type"] == "SQS"]
        assert source["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}, name
    # reserved only where the account's quota allows it (scripts/deploy.py sets ReserveConcurrency)
    for name, reserved in (("IncrementalSync", 1), ("ContinueSync", 2)):
        assert functions[name]["ReservedConcurrentExecutions"] == {
            "Fn::If": ["ReservesConcurrency", reserved, {"Ref": "AWS::NoValue"}]
        }


def test_the_api_function_gets_a_whole_vcpu_so_a_cold_container_answers_a_webhook_in_time():
    """amoCRM counts a webhook answered after 2 s as invalid. At 512 MB (0.29 vCPU) a cold API
    container took 1.9-2.5 s to acknowledge its first delivery, at 1,024 MB 0.9-1.4 s, at
    1,769 MB (one vCPU) 0.4-0.8 s (BENCHMARKS.md §7, the package as built)."""
    for stage in ("prod", "staging"):
        assert CONFIG["stages"][stage]["lambda_functions"]["api_handler"]["lambda_memory_size"] >= 1769
