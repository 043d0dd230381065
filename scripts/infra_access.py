"""Which DynamoDB tables each Lambda function's code uses, and with which actions: read from the
code (static analysis), so that a role cannot drift from what its handlers do.

How: app.py's decorators say which handlers each function runs (every route for the API, one
decorated function for each schedule and queue consumer); the middleware runs around them too
("all" for every function, "http" for the API). The names a handler refers to are resolved to
the chalicelib modules app.py imported them from, and from there every chalicelib module they
import is reached, at any depth, including imports inside functions. A function uses a model
when a module it reaches names it (ALL_MODELS names them all), and a DynamoDB action when a
module it reaches calls the PynamoDB method that sends it (ACTIONS).

Limits, each of which grants more than the code needs, never less:
- modules, not functions: a handler that reaches a module gets every model the module names,
  even in code paths it never takes (the API, which serves every route, reaches all but two);
- actions are a function's, granted on each of its tables; a method name is matched whatever it
  is called on (`.update(` on a dict counts as UpdateItem, `.exists()` of a condition as
  DescribeTable);
- app.py's module-level code and the modules it only imports are not followed: importing
  reaches no table (no chalicelib module touches DynamoDB at import).
What it cannot see, and refuses instead (`unsupported`): a model reached through a name built at
run time (importlib, `__import__`, getattr on the models module).
tests/test_infra_access.py pins the derivation and its limits.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "chalicelib"
API = "api_handler"  # Chalice's name of the function that serves every route
# the decorators of app.py that make a Lambda function of their own -> the middleware type that runs around it
EVENT_DECORATORS = {
    "route": "http",
    "schedule": "cloudwatch",
    "on_cw_event": "cloudwatch",
    "on_sqs_message": "sqs",
    "on_sns_message": "sns",
    "on_s3_event": "s3",
    "lambda_function": "pure_lambda",
}

# PynamoDB method (or class) -> the DynamoDB actions it sends; a transaction's writes are
# authorized as the single-item actions they contain
ACTIONS = {
    "get": ("GetItem",),
    "refresh": ("GetItem",),
    "TransactGet": ("GetItem",),
    "batch_get": ("BatchGetItem",),
    "batch_get_item": ("BatchGetItem",),
    "query": ("Query",),
    "scan": ("Scan",),
    "count": ("Query", "DescribeTable"),
    "save": ("PutItem",),
    "put_item": ("PutItem",),
    "update": ("UpdateItem",),
    "update_item": ("UpdateItem",),
    "delete": ("DeleteItem",),
    "delete_item": ("DeleteItem",),
    "batch_write": ("BatchWriteItem",),
    "batch_write_item": ("BatchWriteItem",),
    "TransactWrite": ("ConditionCheckItem",),
    "condition_check": ("ConditionCheckItem",),
    "exists": ("DescribeTable",),
    "describe_table": ("DescribeTable",),
}


@dataclass
class Access:
    models: set[str] = field(default_factory=set)  # model class names
    actions: set[str] = field(default_factory=set)  # "dynamodb:…"


@dataclass
class _Module:
    imports: set[str]
    names: set[str]  # every Name and attribute name it mentions
    calls: set[str]  # the names of everything it calls (`x.query(…)` → query, `TransactWrite(…)`)


class Project:
    """The chalicelib modules under `root`, parsed once."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.files = {
            ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (root / PACKAGE).rglob("*.py")
        }
        self._parsed: dict[str, _Module] = {}

    def module(self, name: str) -> _Module:
        if name not in self._parsed:
            self._parsed[name] = self._parse(name)
        return self._parsed[name]

    def _parse(self, name: str) -> _Module:
        path = self.files[name]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imports, names, calls = set(), set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports |= {a.name for a in node.names if a.name in self.files}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    imports.add(submodule if submodule in self.files else base)
                    names.add(alias.name)  # an imported model counts, used or not
            elif isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            if isinstance(node, ast.Call):
                function = node.func
                calls.add(function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", ""))
        return _Module({i for i in imports if i in self.files}, names, calls)

    def reached(self, start: set[str]) -> set[str]:
        """`start` and every chalicelib module they import (and the packages around them)."""
        seen: set[str] = set()
        pending = [m for m in start if m in self.files]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            parts = name.split(".")
            pending.extend(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in self.files)
            pending.extend(self.module(name).imports)
        return seen


def _decorator_call(decorator: ast.expr) -> tuple[str, ast.Call] | None:
    """('route', call) for `@app.route(...)`; None for anything not called on `app`."""
    if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute):
        owner = decorator.func.value
        if isinstance(owner, ast.Name) and owner.id == "app":
            return decorator.func.attr, decorator
    return None


def handlers(app_source: str) -> tuple[dict[str, list[ast.FunctionDef]], dict[str, set[str]]]:
    """Chalice function name -> the app.py functions it runs; and the modules app.py binds to each
    name it imports from chalicelib (`from chalicelib.services import sync` → sync)."""
    tree = ast.parse(app_source)
    imported: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            for alias in node.names:
                imported.setdefault(alias.asname or alias.name, set()).update(
                    {f"{node.module}.{alias.name}", node.module or ""}
                )
    functions: dict[str, list[ast.FunctionDef]] = {}
    kinds: dict[str, str] = {}
    middleware: dict[str, list[ast.FunctionDef]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            found = _decorator_call(decorator)
            if found is None:
                continue
            kind, call = found
            if kind == "middleware":
                scope = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else "all"
                middleware.setdefault(str(scope), []).append(node)
            elif kind in EVENT_DECORATORS:
                named = [k.value.value for k in call.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)]
                name = API if kind == "route" else str(named[0]) if named else node.name
                functions.setdefault(name, []).append(node)
                kinds[name] = EVENT_DECORATORS[kind]
    for name, runs in functions.items():
        runs.extend(middleware.get("all", []) + middleware.get(kinds[name], []))
    return functions, imported


def unsupported(project: Project, modules: set[str]) -> list[str]:
    """Modules that could reach a model by a name built at run time, which this cannot follow."""
    return sorted(m for m in modules if {"import_module", "__import__"} & project.module(m).calls)


def access(root: Path = ROOT, *, models: set[str], all_models: str = "ALL_MODELS") -> dict[str, Access]:
    """Chalice function name -> the models and DynamoDB actions its code uses."""
    project = Project(root)
    functions, imported = handlers((root / "app.py").read_text(encoding="utf-8"))
    found: dict[str, Access] = {}
    for name, runs in functions.items():
        used = {n.id for run in runs for n in ast.walk(run) if isinstance(n, ast.Name)}
        start = set().union(*(imported.get(n, set()) for n in used))
        modules = project.reached(start) - {f"{PACKAGE}.models"}  # it defines every model, uses none
        refused = unsupported(project, modules)
        if refused:
            raise ValueError(f"{name}: {', '.join(refused)} import by a name built at run time; grant by hand")
        result = found.setdefault(name, Access())
        for module in modules:
            parsed = project.module(module)
            result.models |= models if all_models in parsed.names else parsed.names & models
            result.actions |= {f"dynamodb:{a}" for call in parsed.calls for a in ACTIONS.get(call, ())}
    return found
