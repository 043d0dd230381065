"""Import time of `app` against the libraries alone (median of 10 fresh processes), what
Powertools adds to them, and the size of the Lambda package `make package` builds."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = "import chalice, boto3, pynamodb.models, requests"
POWERTOOLS = "from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter"


def _median_import_ms(statements: dict[str, str], runs: int = 10) -> dict[str, float]:
    """Fresh processes, the statements interleaved so that load on the machine hits each alike."""
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    times: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(runs):
        for name, statement in statements.items():
            code = f"import time; t = time.perf_counter(); {statement}; print((time.perf_counter() - t) * 1000)"
            out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
            times[name].append(float(out.stdout))
    return {name: round(statistics.median(values), 1) for name, values in times.items()}


def _package_size() -> tuple[float | None, float | None]:
    sys.path.insert(0, str(ROOT))
    from scripts.package import sizes

    with tempfile.TemporaryDirectory() as out:
        built = subprocess.run(
            [sys.executable, "scripts/package.py", "--stage", "prod", out], cwd=ROOT, capture_output=True, text=True
        )
        archive = Path(out) / "deployment.zip"
        if built.returncode != 0 or not archive.exists():
            return None, None
        zipped, unzipped = sizes(archive)
        return round(zipped, 1), round(unzipped, 1)


def run() -> dict:
    zipped, unzipped = _package_size()
    imports = _median_import_ms(
        {
            "import_app_ms": "import app",
            "import_libraries_ms": LIBRARIES,
            "import_libraries_and_powertools_ms": f"{LIBRARIES}; {POWERTOOLS}",
        }
    )
    return {
        **imports,
        "app_over_libraries": round(imports["import_app_ms"] / imports["import_libraries_ms"], 2),
        "package_zip_mb": zipped,
        "package_unzipped_mb": unzipped,
    }


if __name__ == "__main__":
    print(run())
