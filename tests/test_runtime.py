"""The Lambda runtime is named once (scripts/package.py); everything that depends on it agrees, and
`make package` warns as AWS's deprecation dates for it come near."""

import datetime
import json
import re
import tomllib
from pathlib import Path

import pytest

from scripts import package
from scripts.infra_spec import deployed_stages

ROOT = Path(__file__).resolve().parent.parent
VERSION = package.RUNTIME.removeprefix("python")  # "3.11"


def test_the_lock_ruff_and_mypy_target_the_runtimes_python():
    makefile = (ROOT / "Makefile").read_text()
    assert re.findall(r"--python-version (\S+)", makefile) == [VERSION]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + VERSION.replace(".", "")
    assert pyproject["tool"]["mypy"]["python_version"] == VERSION


@pytest.mark.parametrize("stage", deployed_stages())
def test_every_function_of_the_committed_templates_runs_on_the_runtime(stage):
    resources = json.loads((ROOT / "infra" / f"{stage}-resources.json").read_text())["Resources"]
    runtimes = {r["Properties"]["Runtime"] for r in resources.values() if "Runtime" in r.get("Properties", {})}
    assert runtimes == {package.RUNTIME}


def test_the_deploy_docs_give_the_runtimes_dates():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    section = deploy.split("\n## Runtime\n", 1)[1].split("\n## ", 1)[0]
    assert f"`{package.RUNTIME}`" in section
    for day in package.RUNTIME_DATES.values():
        assert f"{day:%b} {day.day}, {day.year}" in section  # as AWS writes them: Jun 30, 2027


def test_make_package_warns_when_the_runtimes_first_date_is_near_and_not_before():
    first = package.RUNTIME_DATES["deprecated"]
    assert package.runway_warning(first - datetime.timedelta(days=package.RUNWAY_WARNING_DAYS)) is None
    warning = package.runway_warning(first - datetime.timedelta(days=30))
    assert warning and package.RUNTIME in warning and first.isoformat() in warning and "Runtime" in warning
    assert package.runway_warning(first + datetime.timedelta(days=90))  # and after it
