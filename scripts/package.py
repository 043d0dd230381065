"""Build the Lambda package and its template: `python scripts/package.py [--stage prod] OUT_DIR`.

1. Refuses to build on a Python other than the Lambda runtime (RUNTIME, named here and nowhere
   else in the build): Chalice downloads wheels for the interpreter it runs on, and the template
   pins the runtime.
2. `chalice package --stage STAGE --merge-template infra/<stage>-resources.json`:
   OUT_DIR/deployment.zip and OUT_DIR/sam.json, every dependency at the version
   requirements.txt pins (boto3 and botocore as one matched pair, the pair the tests run with).
3. Rewrites the zip smaller and reproducible: botocore's and boto3's data only for the AWS
   services the code uses (SERVICES; the rest of botocore's ~450 service models is ~90 % of
   an unpruned package), every module compiled ahead (`compiled`: Lambda cannot cache what it
   compiles, so without it every cold start compiled every module it imported), entries
   sorted with fixed timestamps.
4. Finishes the template (`finish`): every SQS event source consumes the stack's own queue
   (Chalice names the queue from what app.py read at import), every API integration invokes
   the API function's alias (the canary, scripts/infra_rollout.py), then refuses a template
   that names another stage's tables, queues, secrets or stack.
5. cfn-lint on the template.

tests/test_infra.py builds the package this way and checks its contents against the pins.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import marshal
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.infra_spec import (  # noqa: E402
    QUEUES,
    chalice_config,
    deployed_stages,
    resource_prefix,
    secrets_prefix,
    stack_name,
)

# The Lambda runtime, named here only. Moving to another one: change it here, and the Makefile's
# `--python-version` and pyproject.toml's ruff/mypy targets follow (tests/test_runtime.py fails
# until they agree); build on that Python (docs/deploy.md, "Runtime").
RUNTIME = "python3.11"
# AWS's dates for RUNTIME (docs/deploy.md, "Runtime"): deprecated (no more security patches), then
# no function can be created with it, then none updated (a deploy fails from that day on).
RUNTIME_DATES = {
    "deprecated": datetime.date(2027, 6, 30),
    "function create blocked": datetime.date(2027, 7, 31),
    "function update blocked": datetime.date(2027, 8, 31),
}
RUNWAY_WARNING_DAYS = 180
# dynamodb: PynamoDB; sqs: chalicelib/services/queues.py; secretsmanager: chalicelib/secrets.py
SERVICES = ("dynamodb", "sqs", "secretsmanager")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(SystemExit):
    """Stops the build with a message saying what is wrong."""


def check_python() -> None:
    running = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if running != RUNTIME:
        raise PackageError(
            f"the Lambda runtime is {RUNTIME}; package with it (this is {running}): wheels are built for "
            "the interpreter that runs chalice"
        )


def runway_warning(today: datetime.date) -> str | None:
    """A warning once the runtime's first AWS date is less than RUNWAY_WARNING_DAYS away."""
    first = RUNTIME_DATES["deprecated"]
    if (first - today).days >= RUNWAY_WARNING_DAYS:
        return None
    dates = ", ".join(f"{what} {day.isoformat()}" for what, day in RUNTIME_DATES.items())
    return f"WARNING: Lambda's {RUNTIME}: {dates}. Move to a newer runtime (docs/deploy.md, 'Runtime')"


def _kept(name: str) -> bool:
    parts = name.split("/")
    if "__pycache__" in parts or name.endswith(".pyc"):
        return False
    if len(parts) > 3 and parts[:2] in (["botocore", "data"], ["boto3", "data"]):
        return parts[2] in SERVICES
    return True


def compiled(name: str, source: bytes) -> tuple[str, bytes] | None:
    """The bytecode Lambda would otherwise compile at every cold start (its /var/task is
    read-only, so Python cannot cache what it compiles): `<dir>/__pycache__/<module>.cpython-311.pyc`,
    hash-based and unchecked, so it is used whatever the files' times, and the same for the
    same source. None for a file that does not compile (Python would never import it either).
    At 0.29 CPU this halved the API function's cold start (BENCHMARKS.md §7)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    folder, _, file = name.rpartition("/")
    tag = RUNTIME.replace("python", "cpython-").replace(".", "")
    pyc = f"{folder + '/' if folder else ''}__pycache__/{file[:-3]}.{tag}.pyc"
    flags = 0b01  # hash-based; the check-source bit (0b10) unset
    header = importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + importlib.util.source_hash(source)
    return pyc, header + marshal.dumps(code)


def slim(archive: Path) -> None:
    """Rewrite `archive` without the data of unused AWS services, with every module compiled,
    byte-for-byte reproducible."""
    slimmed = archive.with_suffix(".slim")
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as target:
        entries: dict[str, tuple[zipfile.ZipInfo, bytes]] = {}
        for info in source.infolist():
            if info.is_dir() or not _kept(info.filename):
                continue
            data = source.read(info)
            entries[info.filename] = (info, data)
            bytecode = compiled(info.filename, data) if info.filename.endswith(".py") else None
            if bytecode:
                entries[bytecode[0]] = (info, bytecode[1])
        for name in sorted(entries):
            info, data = entries[name]
            entry = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            entry.external_attr = info.external_attr
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, data)
    slimmed.replace(archive)


def sizes(archive: Path) -> tuple[float, float]:
    with zipfile.ZipFile(archive) as zipped:
        return archive.stat().st_size / 1e6, sum(i.file_size for i in zipped.infolist()) / 1e6


def bind_queues(template: dict) -> None:
    """Point every SQS event source at the stack's own queue. Chalice builds the queue's ARN from
    the name app.py passed to `on_sqs_message` when it was imported, which is whatever the
    packaging environment held: never trusted to be this stage's."""
    consumed = {queue.consumer: queue_id for queue_id, queue in QUEUES.items()}
    for function_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            if function_id not in consumed:
                raise PackageError(f"{function_id} consumes a queue scripts/infra_spec.py does not define")
            event["Properties"]["Queue"] = {"Fn::GetAtt": [consumed[function_id], "Arn"]}


def invoke_the_alias(template: dict) -> None:
    """Make every API integration invoke APIHandler's alias (scripts/infra_rollout.py), so API
    traffic follows the canary. Chalice writes the unqualified function's ARN into each one."""
    for methods in template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"].values():
        for operation in methods.values():
            integration = operation["x-amazon-apigateway-integration"]
            uri = integration["uri"]["Fn::Sub"]
            if isinstance(uri, str) and "${APIHandler.Arn}" in uri:
                # SAM resolves `Ref: APIHandler.Alias`; cfn-lint knows it only as a Ref, not inside a Sub
                integration["uri"] = {
                    "Fn::Sub": [uri.replace("${APIHandler.Arn}", "${Target}"), {"Target": {"Ref": "APIHandler.Alias"}}]
                }


def foreign_names(template: dict, stage: str, stages: list[str]) -> list[str]:
    """Every name in `template` that belongs to another stage than `stage`."""
    text = json.dumps(template)
    found = set()
    for other in stages:
        if other == stage:
            continue
        for pattern in (
            re.escape(resource_prefix(other)),
            re.escape(secrets_prefix(other)),
            re.escape(stack_name(other)) + r"(?!\w)",
        ):
            found.update(re.findall(r"[\w:/.#-]*" + pattern + r"[\w/.#-]*", text))
    return sorted(found)


def finish(template: dict, stage: str) -> None:
    bind_queues(template)
    if "RestAPI" in template["Resources"]:
        invoke_the_alias(template)
    stages = sorted(set(chalice_config().get("stages", {})) | set(deployed_stages()))
    foreign = foreign_names(template, stage, stages)
    if foreign:
        raise PackageError(
            f"the {stage} template names another stage's resources: {', '.join(foreign[:10])}; "
            f"every name must derive from the stage (check stages.{stage} in .chalice/config.json)"
        )


def build(stage: str, out: Path) -> None:
    check_python()
    warning = runway_warning(datetime.date.today())
    if warning:
        print(warning, file=sys.stderr)
    merge = ROOT / "infra" / f"{stage}-resources.json"
    if stage not in deployed_stages() or not merge.exists():
        raise PackageError(
            f"{stage} is not a deployed stage: .chalice/config.json must give it AMO_BASE_URL, and "
            f"scripts/build_infra.py must have written {merge.relative_to(ROOT)}"
        )
    if out.exists():
        shutil.rmtree(out)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    subprocess.run(
        [
            str(bin_dir / "chalice"),
            "package",
            "--stage",
            stage,
            "--merge-template",
            str(merge.relative_to(ROOT)),
            str(out),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    archive = out / "deployment.zip"
    before = sizes(archive)
    slim(archive)
    after = sizes(archive)
    print(
        f"deployment.zip: {before[0]:.1f} MB zipped / {before[1]:.1f} MB unzipped as Chalice built it, "
        f"{after[0]:.1f} / {after[1]:.1f} MB slimmed"
    )
    template_file = out / "sam.json"
    template = json.loads(template_file.read_text())
    finish(template, stage)
    template_file.write_text(json.dumps(template, indent=2) + "\n")
    subprocess.run([str(bin_dir / "cfn-lint"), str(template_file)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    build(args.stage, args.out.resolve())


if __name__ == "__main__":
    main()
