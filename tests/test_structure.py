"""The shape of the code, checked: no import cycle, every module importable on its own, services
never speak amoCRM's wire format or fetch their client, files stay small."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chalicelib"
# 350 lines as the code was first written; `ruff format` (one argument per line where a call
# does not fit) grew the same code by about a quarter
MAX_LINES = 440


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules a file imports at any level (function-level imports count too)."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    targets.add(submodule)
                elif node.module in known:
                    targets.add(node.module)
    return targets


def test_no_import_cycle_in_chalicelib():
    known = modules()
    graph = {name: imports_of(path, known) - {name} for name, path in known.items()}
    cycles, state, stack = [], {}, []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_every_module_imports_on_its_own():
    script = (
        "import importlib, sys\n"
        f"names = {sorted(modules())!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m == 'chalicelib' or m.startswith('chalicelib.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as error:\n"
        "        failed.append(f'{name}: {type(error).__name__}: {error}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_speak_in_resources_not_urls():
    offenders = []
    for path in (PACKAGE / "services").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(marker in line for marker in ("/api/v4", "_embedded", "filter[")):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_services_receive_the_amocrm_api_instead_of_building_it():
    known = modules()
    for name, path in known.items():
        if name.startswith("chalicelib.services."):
            assert "chalicelib.wiring" not in imports_of(path, known), name


# word tables, not logic: long because the languages are many
DATA_MODULES = {"chalicelib/services/stage_vocabulary.py"}


def test_no_file_in_chalicelib_or_the_sandbox_is_longer_than_one_job_needs():
    long_files = {
        name: n
        for p in [*PACKAGE.rglob("*.py"), *(ROOT / "sandbox").rglob("*.py")]
        if (name := str(p.relative_to(ROOT))) not in DATA_MODULES
        and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long_files == {}
