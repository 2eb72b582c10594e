"""The package's shape: rooms whose imports only point down, no cycles, no private names across modules.

Every ``import`` in ``gradflow/`` is read with ``ast`` (module-level and deferred ones inside
functions alike) and resolved to the module it names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gradflow"

# The rooms, lowest first: a module may import its own room or any room before it.
LAYERS = (
    "core",
    "cells",
    "engine",
    "models",
    "measure",
    "prediction",
    "training",
    "sweep",
    "display",
    "report",
    "<api>",
    "studies",
    "<entry>",
)
# Top-level modules: the public namespace (gradflow/__init__ and its thin public modules) and the entry points.
TOP = {
    "gradflow": "<api>",
    "gradflow.inputs": "<api>",
    "gradflow.meanfield": "<api>",
    "gradflow.tasks": "<api>",
    "gradflow.cli": "<entry>",
    "gradflow._cli_parser": "<entry>",
    "gradflow.__main__": "<entry>",
}
MAX_LINES = 400
# Modules still over the limit, each with the ceiling it may not grow past. The list only shrinks: a
# module that gets under the limit must leave it (test_oversize_list_only_shrinks).
OVERSIZE: dict[str, int] = {}  # empty: every module is within the limit


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def room(module: str) -> str:
    if module in TOP:
        return TOP[module]
    return module.split(".")[1]


def is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def imports(module: str):
    """(target module, imported name or None, line, deferred) for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if is_package(module) else module.rsplit(".", 1)[0]
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if _in_type_checking(tree, node):  # annotations only: never imported at run time
            continue
        deferred = id(node) not in top_level
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gradflow":
                    yield alias.name, None, node.lineno, deferred
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "gradflow":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from . import _html` imports a module
                    yield sub, None, node.lineno, deferred
                else:
                    yield target, alias.name, node.lineno, deferred


def _in_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    for block in tree.body:
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
            if any(child is node for child in ast.walk(block)):
                return True
    return False


EDGES = [(m, *edge) for m in MODULES for edge in imports(m)]


def test_every_module_belongs_to_a_room():
    for module in MODULES:
        if module == "gradflow" or module in TOP:
            continue
        assert room(module) in LAYERS, f"{module} is in no room of {LAYERS}"


def test_imports_only_point_down():
    upward = []
    for source, target, _name, line, _ in EDGES:
        if target not in MODULES:
            continue
        if LAYERS.index(room(target)) > LAYERS.index(room(source)):
            upward.append(
                f"{MODULES[source].relative_to(ROOT)}:{line} imports {target} "
                f"({room(source)} -> {room(target)})"
            )
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_private_name_crosses_a_module():
    private = []
    for source, target, name, line, _ in EDGES:
        if name and name.startswith("_") and not name.startswith("__") and target != source:
            private.append(f"{MODULES[source].relative_to(ROOT)}:{line} imports {target}.{name}")
    assert not private, "private names imported from other modules:\n" + "\n".join(private)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for source, target, _name, _line, _ in EDGES:
        if target in MODULES and target != source:
            # A package's __init__ re-exports its own modules; the edge that matters is to the module.
            graph[source].add(target)
    for module in graph:  # a module's import of its package's __init__ is not a cycle through itself
        package = module.rsplit(".", 1)[0]
        if package in graph[module] and module in graph.get(package, ()):
            graph[module].discard(package)
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checks_catch_what_they_claim(tmp_path):
    # The cycle finder and the room order, on a small made-up graph.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert LAYERS.index("core") < LAYERS.index("engine") < LAYERS.index("studies")


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_benchmarks_use_the_public_api(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gradflow"):
            assert not any(part.startswith("_") for part in node.module.split(".")), (
                f"{path.name}:{node.lineno} imports the private module {node.module}"
            )
            assert not any(a.name.startswith("_") for a in node.names), (
                f"{path.name}:{node.lineno} imports a private name from {node.module}"
            )


def _line_counts():
    return {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}


def test_no_module_is_over_400_lines():
    long = {path: n for path, n in _line_counts().items() if n > OVERSIZE.get(path, MAX_LINES)}
    assert not long, f"modules over {MAX_LINES} lines (or past their OVERSIZE ceiling): {long}"


def test_oversize_list_only_shrinks():
    counts = _line_counts()
    stale = [path for path in OVERSIZE if counts.get(path, 0) <= MAX_LINES]
    assert not stale, f"now within {MAX_LINES} lines (or gone): remove from OVERSIZE: {stale}"
