"""The README's dependency rule, read from the imports of `shared/` with `ast`.

Arrows point one way, down: no import circle between modules, and no package
importing one above it. An import inside a function counts like any other (a
lazy import is still a dependency); only `if TYPE_CHECKING:` blocks are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO_ROOT

SHARED = REPO_ROOT / "shared"

# Below everything: small modules of the core, importable from anywhere.
CORE = frozenset({"errors", "durations", "config", "scope", "background"})
INFRA = frozenset({"http", "redis", "ratelimit", "cache", "qstash"})

# package (or top-level module) of shared -> what it may import besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "durations": frozenset(),
    "scope": frozenset(),
    "config": frozenset({"errors"}),
    "background": frozenset({"scope"}),
    "routes": frozenset(),
    "http": CORE,
    "redis": CORE | {"http"},
    "ratelimit": CORE | {"http", "redis"},
    "cache": CORE | {"redis"},
    "qstash": CORE | {"http"},
    "web": CORE | {"http", "ratelimit"},
    "jobs": CORE | INFRA | {"web", "routes"},
    "orders": CORE | INFRA | {"web", "jobs", "routes"},
    "settings": CORE | INFRA | {"web", "routes"},
    "app": CORE | INFRA | {"web", "jobs", "orders", "settings", "routes"},
}
# Never imported by shared/: other programs, and the platforms' own modules.
FOREIGN = (
    "devstack",
    "worker",
    "worker_adapter",
    "js_fetch",
    "vercel_api",
    "tests",
    "bench",
    "tools",
)
PLATFORM = ("js", "pyodide", "workers")


def module_name(path: Path, base: Path = REPO_ROOT) -> str:
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, type_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node, type_only)


def import_graph(
    root: Path = SHARED, *, base: Path = REPO_ROOT, type_only: bool = False
) -> dict[str, set[str]]:
    """Module -> the modules it imports (absolute or relative, first-party or not).

    `from package import name` depends on `package.name` when that is a module of the
    tree, else on `package`: importing a submodule is not a dependency on its siblings.
    `type_only=True` counts `if TYPE_CHECKING:` imports too.
    """
    files = {module_name(p, base): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8")), type_only):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
                continue
            origin = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                origin = f"{anchor}.{origin}" if origin else anchor
            for alias in node.names:
                sub = f"{origin}.{alias.name}"
                deps.add(sub if sub in files else origin)
        deps.discard(module)
        graph[module] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work.append((start, iter(sorted(d for d in graph[start] if d in graph))))
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(d for d in graph[nxt] if d in graph))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def package_of(module: str) -> str:
    """`shared.redis.client` -> `redis`; `shared.settings` -> `settings`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


GRAPH = import_graph()


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checker itself sees a circle when there is one (so a pass means something)."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_plain_relative_submodule_and_type_only_imports(tmp_path: Path) -> None:
    """`import x`, `from . import y`, `from pkg import submodule` are edges; type-only
    imports count only when asked for."""
    pkg = tmp_path / "shared" / "p"
    pkg.mkdir(parents=True)
    (tmp_path / "shared" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from shared.p.a import A\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shared.p import b\nA = 1\n"
    )
    (pkg / "b.py").write_text("from . import c\nimport shared.p.a\n")
    (pkg / "c.py").write_text("")
    graph = import_graph(tmp_path / "shared", base=tmp_path, type_only=True)
    assert graph["shared.p"] == {"shared.p.a"}
    assert graph["shared.p.a"] == {"shared.p.b", "typing"}
    assert graph["shared.p.b"] == {"shared.p.c", "shared.p.a"}
    assert find_cycles(graph) == [["shared.p.a", "shared.p.b"]]
    assert find_cycles(import_graph(tmp_path / "shared", base=tmp_path)) == []


def test_shared_redis_has_no_circle_even_for_type_checking() -> None:
    """No module of shared/redis imports one that imports it, type-only imports included
    (the package's own re-exporting `__init__` aside)."""
    graph = import_graph(type_only=True)
    inner = {
        m: {d for d in deps if d.startswith("shared.redis.")}
        for m, deps in graph.items()
        if m.startswith("shared.redis.")
    }
    assert find_cycles(inner) == []


def test_no_import_circle_between_modules_of_shared() -> None:
    """No module of shared/ reaches itself through its imports, lazy ones included."""
    assert find_cycles(GRAPH) == []


def test_every_package_is_in_the_rule() -> None:
    """Each package and top-level module of shared/ has a place in the dependency rule."""
    packages = {package_of(m) for m in GRAPH if m != "shared"}
    assert packages <= set(ALLOWED), sorted(packages - set(ALLOWED))


def test_no_package_imports_one_above_it() -> None:
    """Each package imports only what the README's rule puts below it."""
    broken = sorted(
        f"{module} imports {dep}"
        for module, deps in GRAPH.items()
        if module != "shared"
        for dep in deps
        if dep.startswith("shared.")
        and package_of(dep) != package_of(module)
        and package_of(dep) not in ALLOWED.get(package_of(module), frozenset())
    )
    assert broken == []


def test_shared_imports_no_other_program_and_no_platform_module() -> None:
    """shared/ never imports the devstack, the entrypoints, tests or `js`/`pyodide`/`workers`."""
    broken = sorted(
        f"{module} imports {dep}"
        for module, deps in GRAPH.items()
        for dep in deps
        if dep.split(".")[0] in FOREIGN + PLATFORM
    )
    assert broken == []


def test_pydantic_is_imported_only_by_the_order_models_and_routes() -> None:
    """Only shared/orders may import pydantic; the core is standard library only."""
    users = sorted(
        m for m, deps in GRAPH.items() if any(d.split(".")[0] == "pydantic" for d in deps)
    )
    assert all(m.startswith("shared.orders.") for m in users), users
