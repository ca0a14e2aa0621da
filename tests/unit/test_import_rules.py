"""The import graph of `shared/`, read with `ast`: no module of `shared/redis` imports
itself back through another.

`module_graph()` and `find_cycle()` are written for the whole tree so that the
dependency rule in the README can be checked here as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_name(path: Path, root: Path) -> str:
    """`shared/redis/client.py` -> `shared.redis.client`; a package's `__init__` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(node: ast.AST, here: str, is_package: bool, known: set[str]) -> Iterable[str]:
    """The modules of `known` that one import statement names (type-only imports count)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = here.split(".") if is_package else here.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            if sub in known:  # `from shared.redis import parsers`: the submodule
                yield sub
            elif target in known:  # `from shared.redis.client import Redis`
                yield target


def module_graph(root: Path = REPO, package: str = "shared") -> dict[str, set[str]]:
    """Every module of `package` (under `root`) -> the modules of `package` it imports."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(tree):
            edges.update(_imported(node, name, is_package, known))
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import cycle as `[a, b, ..., a]`, or None when the graph has none."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt, black) == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if colour.get(nxt) == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return None

    for start in sorted(graph):
        if colour[start] == white:
            found = visit(start)
            if found:
                return found
    return None


def subgraph(graph: Mapping[str, Iterable[str]], prefix: str) -> dict[str, set[str]]:
    """The modules under `prefix.` and the edges between them (the package's own
    `__init__`, which re-exports them, is left out)."""
    inside = {m for m in graph if m.startswith(prefix + ".")}
    return {m: {n for n in graph[m] if n in inside} for m in inside}


def test_find_cycle_reports_a_cycle_and_accepts_a_tree() -> None:
    """The cycle finder names the modules of a circle and finds none in a tree."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_module_graph_reads_plain_relative_and_submodule_imports(tmp_path: Path) -> None:
    """`import x`, `from . import y` and `from pkg import submodule` are all edges."""
    pkg = tmp_path / "shared" / "p"
    pkg.mkdir(parents=True)
    (tmp_path / "shared" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from shared.p.a import A\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shared.p import b\nA = 1\n"
    )
    (pkg / "b.py").write_text("from . import c\nimport shared.p.a\n")
    (pkg / "c.py").write_text("")
    graph = module_graph(tmp_path)
    assert graph["shared.p"] == {"shared.p.a"}
    assert graph["shared.p.a"] == {"shared.p.b"}
    assert graph["shared.p.b"] == {"shared.p.c", "shared.p.a"}
    assert find_cycle(subgraph(graph, "shared.p")) == ["shared.p.a", "shared.p.b", "shared.p.a"]


def test_shared_redis_has_no_import_cycle() -> None:
    """No module of shared/redis imports, even for type checking only, one that imports it."""
    assert find_cycle(subgraph(module_graph(), "shared.redis")) is None
