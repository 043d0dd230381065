"""The shape of the code, checked: no import cycle anywhere in the repository, every chalicelib
module importable on its own, services never speak amoCRM's wire format or fetch their client,
files stay small."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chalicelib"
# 350 lines as the code was first written; `ruff format` (one argument per line where a call
# does not fit) grew the same code by about a quarter
MAX_LINES = 440


# every package of the repository (a folder with an __init__.py at the top) and the modules
# beside them (app.py): found, not listed, so a package is covered the day it appears
PACKAGES = sorted(init.parent for init in ROOT.glob("*/__init__.py"))
TOP_MODULES = sorted(ROOT.glob("*.py"))


def modules(roots: list[Path], base: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every .py file under `roots` (folders, or single files)."""
    found = {}
    for root in roots:
        for path in root.rglob("*.py") if root.is_dir() else [root]:
            name = ".".join(path.relative_to(base).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imported_from(node: ast.ImportFrom, path: Path, base: Path) -> str | None:
    """The module `from X import …` names, a relative X (`.`, `..a`) resolved from the file's package."""
    if node.level == 0:
        return node.module
    package = path.parent.relative_to(base).parts
    parts = [*package[: len(package) - (node.level - 1)], *([node.module] if node.module else [])]
    return ".".join(parts) or None


def imports_of(path: Path, known: dict[str, Path], base: Path = ROOT) -> set[str]:
    """Project modules a file imports at any level (function-level and TYPE_CHECKING imports count too)."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and (module := _imported_from(node, path, base)):
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if submodule in known:
                    targets.add(submodule)
                elif module in known:
                    targets.add(module)
    return targets


def import_cycles(known: dict[str, Path], base: Path = ROOT) -> list[str]:
    graph = {name: imports_of(path, known, base) - {name} for name, path in known.items()}
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
    return cycles


def test_the_cycle_check_covers_every_package_and_app_py():
    found = {path.name for path in [*PACKAGES, *TOP_MODULES]}
    assert {"chalicelib", "sandbox", "benchmarks", "scripts", "tests", "app.py"} <= found


def test_no_import_cycle_anywhere_in_the_repository():
    assert import_cycles(modules([*PACKAGES, *TOP_MODULES])) == []


def test_a_cycle_through_relative_imports_is_found(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "from .sub.c import helper\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "def helper():\n    from ..a import thing\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    known = modules([tmp_path / "pkg"], base=tmp_path)
    assert import_cycles(known, base=tmp_path) == ["pkg.a -> pkg.b -> pkg.sub.c -> pkg.a"]


def test_every_module_imports_on_its_own():
    script = (
        "import importlib, sys\n"
        f"names = {sorted(modules([PACKAGE]))!r}\n"
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
    known = modules([PACKAGE])
    for name, path in known.items():
        if name.startswith("chalicelib.services."):
            assert "chalicelib.wiring" not in imports_of(path, known), name


def test_settings_depend_on_nothing_of_the_amocrm_gateway():
    """Configuration sits below everything: the gateway reads settings, never the other way round
    (followed through settings' own imports, so a detour through another module counts too)."""
    known = modules([PACKAGE])
    reached, todo = set(), ["chalicelib.settings"]
    while todo:
        for target in imports_of(known[todo.pop()], known) - reached:
            reached.add(target)
            todo.append(target)
    assert sorted(name for name in reached if name == "chalicelib.amo" or name.startswith("chalicelib.amo.")) == []


def positional_after_the_first(path: Path, base: Path = ROOT) -> list[str]:
    """`file:line name` of each function of 4 or more parameters (self and cls not counted) that
    takes a parameter after its first positionally: those calls read as a row of bare values."""
    offenders = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            positional = [*node.args.posonlyargs, *node.args.args]
            if positional and positional[0].arg in ("self", "cls"):
                positional = positional[1:]
            if len(positional) + len(node.args.kwonlyargs) >= 4 and len(positional) > 1:
                offenders.append(f"{path.relative_to(base)}:{node.lineno} {node.name}")
    return offenders


def test_a_function_of_four_or_more_parameters_takes_all_but_the_first_by_keyword():
    files = [*PACKAGE.rglob("*.py"), ROOT / "app.py"]
    assert [offender for path in sorted(files) for offender in positional_after_the_first(path)] == []


def test_the_keyword_rule_counts_parameters_as_a_call_sees_them(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "def fine(a, *, b, c, d): ...\n"
        "def short(a, b, c): ...\n"
        "def wrong(a, b, *, c, d): ...\n"
        "class C:\n"
        "    def method(self, a, b, c): ...\n"
        "    def other(self, a, b, c, d): ...\n"
        "    async def later(self, a, /, b, *, c, d): ...\n"
    )
    names = [offender.split(" ")[1] for offender in positional_after_the_first(source, base=tmp_path)]
    assert names == ["wrong", "other", "later"]


def test_no_file_in_chalicelib_or_the_sandbox_is_longer_than_one_job_needs():
    long_files = {
        str(p.relative_to(ROOT)): n
        for p in [*PACKAGE.rglob("*.py"), *(ROOT / "sandbox").rglob("*.py")]
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long_files == {}


def test_the_sandbox_needs_only_the_standard_library():
    """It is never deployed, starts with any Python, and the tests build their amoCRM bodies with it."""
    outside = set()
    for path in (ROOT / "sandbox").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            top = {name.split(".")[0] for name in names}
            outside |= {f"{path.name}: {name}" for name in top - sys.stdlib_module_names - {"sandbox"}}
    assert outside == set()
