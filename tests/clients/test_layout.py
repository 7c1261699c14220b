"""The clients' shape (issue 20): the core imports no front end, and no module imports itself through others."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

CLIENTS = REPO / "clients"


def _module_name(path: Path) -> str:
    """clients/core/faces.py -> clients.core.faces; a package's __init__.py -> the package."""
    rel = path.relative_to(REPO).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _imports() -> dict[str, set[str]]:
    """Each clients module and the clients modules it imports anywhere (lazy and TYPE_CHECKING imports too)."""
    graph: dict[str, set[str]] = {}
    for path in CLIENTS.rglob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "clients":
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "clients"}
        graph[_module_name(path)] = found
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str]:
    """A chain of imports from `start` back to itself, or [] (depth-first)."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, chain = stack.pop()
        for dep in graph[node]:
            if dep == start:
                return chain + [dep]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, chain + [dep]))
    return []


def test_no_import_cycles_in_the_clients():
    graph = _imports()
    assert {"clients.bot.app", "clients.bot.handlers", "clients.core.analyze", "clients.cli"} <= set(graph)
    assert [c for c in (_cycle_from(m, graph) for m in sorted(graph)) if c] == []


def test_the_core_imports_no_front_end():
    front_ends = ("clients.web", "clients.bot", "clients.cli")
    graph = _imports()
    leaks = {m: sorted(d for d in deps if d.startswith(front_ends))
             for m, deps in graph.items() if m.startswith("clients.core")}
    assert {m: d for m, d in leaks.items() if d} == {}
