"""Import time of `app` against the libraries alone (median of 10 fresh processes), and the
size of the Lambda package that `chalice package` builds."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _median_import_ms(statement: str, runs: int = 10) -> float:
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    code = f"import time; t = time.perf_counter(); {statement}; print((time.perf_counter() - t) * 1000)"
    times = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                                  text=True, check=True).stdout) for _ in range(runs)]
    return round(statistics.median(times), 1)


def _package_size() -> tuple[float | None, float | None]:
    chalice = Path(sys.executable).parent / "chalice"
    with tempfile.TemporaryDirectory() as out:
        built = subprocess.run([str(chalice), "package", "--stage", "dev", out], cwd=ROOT, capture_output=True,
                               env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}, text=True)
        archive = Path(out) / "deployment.zip"
        if built.returncode != 0 or not archive.exists():
            return None, None
        with zipfile.ZipFile(archive) as zipped:
            unzipped = sum(info.file_size for info in zipped.infolist())
        return round(archive.stat().st_size / 1e6, 1), round(unzipped / 1e6, 1)


def run() -> dict:
    zipped, unzipped = _package_size()
    return {"import_app_ms": _median_import_ms("import app"),
            "import_libraries_ms": _median_import_ms("import chalice, boto3, pynamodb.models, requests"),
            "package_zip_mb": zipped, "package_unzipped_mb": unzipped}


if __name__ == "__main__":
    print(run())
