"""Build the Lambda package and its template: `python scripts/package.py [--stage prod] OUT_DIR`.

1. Refuses to build on a Python other than the pinned Lambda runtime (infra_spec.RUNTIME):
   Chalice downloads wheels for the interpreter it runs on, and the template pins the runtime.
2. `chalice package --merge-template infra/prod-resources.json`: OUT_DIR/deployment.zip and
   OUT_DIR/sam.json, every dependency at the version requirements.txt pins (boto3 and
   botocore as one matched pair, the pair the tests run with).
3. Rewrites the zip smaller and reproducible: botocore's and boto3's data only for the AWS
   services the code uses (SERVICES; the rest of botocore's ~450 service models is ~90 % of
   an unpruned package), no __pycache__, entries sorted with fixed timestamps.
4. cfn-lint on the template.

tests/test_infra.py builds the package this way and checks its contents against the pins.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.infra_spec import RUNTIME  # noqa: E402

# dynamodb: PynamoDB; sqs: chalicelib/services/queues.py; secretsmanager: chalicelib/secrets.py
SERVICES = ("dynamodb", "sqs", "secretsmanager")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def check_python() -> None:
    running = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if running != RUNTIME:
        sys.exit(
            f"the Lambda runtime is {RUNTIME}; package with it (this is {running}): wheels are built for "
            "the interpreter that runs chalice"
        )


def _kept(name: str) -> bool:
    parts = name.split("/")
    if "__pycache__" in parts or name.endswith(".pyc"):
        return False
    if len(parts) > 3 and parts[:2] in (["botocore", "data"], ["boto3", "data"]):
        return parts[2] in SERVICES
    return True


def slim(archive: Path) -> None:
    """Rewrite `archive` without the data of unused AWS services and byte-for-byte reproducible."""
    slimmed = archive.with_suffix(".slim")
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in sorted(source.infolist(), key=lambda i: i.filename):
            if info.is_dir() or not _kept(info.filename):
                continue
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            entry.external_attr = info.external_attr
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, source.read(info))
    slimmed.replace(archive)


def sizes(archive: Path) -> tuple[float, float]:
    with zipfile.ZipFile(archive) as zipped:
        return archive.stat().st_size / 1e6, sum(i.file_size for i in zipped.infolist()) / 1e6


def build(stage: str, out: Path) -> None:
    check_python()
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
            "infra/prod-resources.json",
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
    subprocess.run([str(bin_dir / "cfn-lint"), str(out / "sam.json")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    build(args.stage, args.out.resolve())


if __name__ == "__main__":
    main()
