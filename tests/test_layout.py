"""The code's shape, checked: lint-clean, no import circles, pure packages pure, modules small enough to read.

Run alone with `make lint`. Imports are read from the source (every import statement,
including those inside functions and under TYPE_CHECKING: a circle that only a lazy import
hides is still a circle for the reader).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "scoring", "registry", "streams")
MAX_LINES = 400
# Third-party libraries only the streaming shell may use (the registry's MongoDB store uses pymongo).
SHELL_ONLY = {"faust", "mode", "aiokafka", "confluent_kafka", "pymongo", "gridfs", "bson", "prometheus_client",
              "typer", "rich"}
ALLOWED = {
    "features": {"features"},
    "scoring": {"features", "scoring"},
    "registry": {"registry", "scoring"},
    "streams": {"features", "scoring", "registry", "streams"},
}
THIRD_PARTY_ALLOWED = {"registry": {"pymongo", "gridfs", "bson"}}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of everything `name` imports (modules, or the module a name is taken from)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` the module mod.
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module)
    return found


GRAPH = {name: {m for m in _imports(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed (make install)"
    proc = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_module_imports_itself_through_others() -> None:
    """Tarjan's strongly connected components over the import graph: every component is one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert circles == [], f"import circles: {circles}"


def test_the_graph_sees_imports() -> None:
    """The check above can fail: the graph holds the arrows it should."""
    assert "streams.agents.context" in GRAPH["streams.agents.hop"]
    assert "features.store" in GRAPH["streams.agents.windows"]
    assert "registry.store" in GRAPH["registry.local"]


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_the_design_allows(package: str) -> None:
    wrong = []
    for name, path in MODULES.items():
        if name.split(".")[0] != package:
            continue
        for imported in _imports(name, path):
            top = imported.split(".")[0]
            if top in PACKAGES and top not in ALLOWED[package]:
                wrong.append(f"{name} imports {imported}")
            if package != "streams" and top in SHELL_ONLY and top not in THIRD_PARTY_ALLOWED.get(package, set()):
                wrong.append(f"{name} imports {imported} (only streams may)")
    assert wrong == []


def test_faust_internals_are_read_only_in_streams_faust() -> None:
    """No private attribute of faust's or aiokafka's objects is touched outside streams/faust/."""
    private = ("._committed_offset", "._read_offset", "._acked", "._gap", "._client", "._thread",
               "._subscription", ".data[", "_sg_")
    wrong = []
    for name, path in MODULES.items():
        if name.startswith("streams.") and not name.startswith("streams.faust"):
            text = path.read_text()
            wrong += [f"{name}: {p}" for p in private if p in text]
    assert wrong == []


def test_modules_are_small_or_say_why() -> None:
    long = []
    for name, path in MODULES.items():
        text = path.read_text()
        lines = text.count("\n")
        head = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and f"over {MAX_LINES} lines" not in " ".join(head.split()):
            long.append(f"{name}: {lines} lines")
    assert long == [], f"modules over {MAX_LINES} lines must say why in their docstring ('over {MAX_LINES} lines')"
