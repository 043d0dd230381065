"""`make audit` (scripts/audit.py) passes only when every pinned package was audited."""

import pytest

from scripts import audit

AUDITED = {"name": "requests", "version": "2.32.5", "vulns": []}
SKIPPED = {"name": "boto3", "skip_reason": "Dependency not found on PyPI and could not be audited: boto3 (1.44.8)"}
VULNERABLE = {
    "name": "urllib3",
    "version": "2.0.0",
    "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["2.0.7"], "aliases": ["CVE-2023-45803"], "description": "…"}],
}


@pytest.mark.parametrize("ci", [False, True])
def test_packages_that_could_not_be_audited_are_not_a_pass(ci):
    lines, code = audit.verdict({"dependencies": [SKIPPED, SKIPPED, AUDITED]}, ci=ci)
    assert lines[0].startswith("not audited: 2 of 3 pinned packages") and "boto3 (1.44.8)" in lines[0]
    assert not any("no known vulnerabilities" in line for line in lines)
    if ci:
        assert code == 0 and lines[1].startswith("skipped in CI") and "not a pass" in lines[1]
    else:
        assert code == 1 and len(lines) == 1


@pytest.mark.parametrize("ci", [False, True])
def test_no_report_at_all_says_why_and_is_not_a_pass(ci):
    lines, code = audit.verdict(None, ci=ci, failure="ConnectionError: pypi.org unreachable")
    assert lines[0].startswith("not audited: all") and "pypi.org unreachable" in lines[0]
    assert code == (0 if ci else 1)


@pytest.mark.parametrize("ci", [False, True])
def test_a_known_vulnerability_fails_even_in_ci_and_even_beside_unaudited_packages(ci):
    lines, code = audit.verdict({"dependencies": [VULNERABLE, SKIPPED]}, ci=ci)
    assert code == 1
    assert lines[0] == "VULNERABLE: urllib3 2.0.0: GHSA-xxxx (fixed in 2.0.7)"


def test_every_package_audited_and_none_vulnerable_passes():
    assert audit.verdict({"dependencies": [AUDITED, AUDITED]}, ci=False) == (
        ["audited: 2 pinned packages, no known vulnerabilities"],
        0,
    )


def test_ci_is_read_as_ci_sets_it(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert audit.in_ci()
    monkeypatch.setenv("CI", "")
    assert not audit.in_ci()


def test_make_audit_runs_the_honest_verdict():
    from pathlib import Path

    makefile = (Path(audit.__file__).parent.parent / "Makefile").read_text()
    recipe = makefile.split("\naudit: venv\n", 1)[1].split("\n\n", 1)[0]
    assert recipe.strip() == "$(PY) scripts/audit.py"


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_pin_carries_its_hashes_so_pip_installs_only_what_was_locked(lock):
    from pathlib import Path

    text = (Path(audit.__file__).parent.parent / lock).read_text()
    requirements = [r.strip() for r in text.split("\n") if r and not r.startswith((" ", "#"))]
    assert len(requirements) > 10
    for requirement in requirements:
        name = requirement.split(" ")[0]
        assert "==" in name and requirement.endswith("\\"), f"{name}: no --hash (make lock adds them)"
    assert text.count("--hash=sha256:") >= len(requirements)


def test_pip_audit_that_hangs_is_not_audited(monkeypatch):
    import subprocess

    def hangs(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], audit.TIMEOUT)

    monkeypatch.setattr(audit.subprocess, "run", hangs)
    report, failure = audit.run_pip_audit(audit.REQUIREMENTS)
    assert report is None and "did not answer" in failure
    lines, code = audit.verdict(report, ci=False, failure=failure)
    assert code == 1 and lines[0].startswith("not audited")
