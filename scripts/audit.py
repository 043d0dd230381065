"""`make audit`: known vulnerabilities in the pinned dependencies, and an honest verdict.

pip-audit skips a package it cannot look up (no network, or a package index without the
vulnerability data) and still says "No known vulnerabilities found", exit 0. Here every
package must have been audited for a pass:

- a known vulnerability: listed, exit 1 (in CI too);
- any package not audited: "not audited: …", exit 1; in CI (CI=true), where only the package
  registries are reachable, the same line and "skipped", exit 0, never "passed";
- every package audited and none vulnerable: "audited: …", exit 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")
TIMEOUT = 600  # seconds; a vulnerability service that hangs is one that cannot be reached


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def verdict(report: dict | None, *, ci: bool, failure: str = "") -> tuple[list[str], int]:
    """What to print and the exit code, from pip-audit's JSON report (None when it wrote none)."""
    dependencies = (report or {}).get("dependencies") or []
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    lines = [
        f"VULNERABLE: {d['name']} {d.get('version', '')}: "
        + ", ".join(
            f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['no release yet'])})" for v in d["vulns"]
        )
        for d in vulnerable
    ]
    if report is None or skipped or not dependencies:
        why = failure or (skipped[0]["skip_reason"] if skipped else "pip-audit reported no packages")
        lines.append(
            f"not audited: {len(skipped) if report else 'all'} of {len(dependencies) or 'the'} pinned packages "
            f"could not be checked for known vulnerabilities (the vulnerability service is unreachable?): {why}"
        )
        if ci and not vulnerable:
            lines.append("skipped in CI (it reaches only the package registries): this is not a pass")
            return lines, 0
        return lines, 1
    if vulnerable:
        return lines, 1
    return [f"audited: {len(dependencies)} pinned packages, no known vulnerabilities"], 0


def run_pip_audit(requirements: tuple[str, ...]) -> tuple[dict | None, str]:
    """pip-audit's JSON report, or None and the reason it wrote none."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [str(Path(sys.executable).parent / "pip-audit"), "--progress-spinner", "off", "--no-deps"]
        command += ["--disable-pip", "-f", "json", "-o", str(report)]
        for name in requirements:
            command += ["-r", name]
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, f"pip-audit did not answer within {TIMEOUT} s"
        if report.exists() and report.stat().st_size:
            return json.loads(report.read_text()), ""
        last = (done.stderr.strip().splitlines() or [f"pip-audit exited {done.returncode}"])[-1]
        return None, last


def main() -> int:
    report, failure = run_pip_audit(REQUIREMENTS)
    lines, code = verdict(report, ci=in_ci(), failure=failure)
    for line in lines:
        print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
