"""The package's import graph, read from its source: no import circle, and every module imports only
its own layer and the layers below it.

Why: a circle makes the import order decide whether a name exists yet (the failure appears in
whichever component happens to import the other module first), and an upward import drags the
heavy, Airflow-facing modules into the pure core that the dag-processor imports all day. The
graph is built with :mod:`ast`, without importing anything, from every ``import`` statement that
runs: at module level and inside functions (a function-level import is still a dependency, only
a later one). Imports under ``if TYPE_CHECKING:`` are left out: they never run, and they are how a
lower module names a higher one's type for mypy only.

An import of a package's ``__init__`` counts as importing it: ``from airflow_provider_orvideo
import _internal`` depends on ``airflow_provider_orvideo`` and ``_internal``, and importing
``hooks._transport`` from outside ``hooks`` runs ``hooks/__init__.py`` too. The importer's own
packages are not counted again: Python has run them before the importer's first line.
"""

from __future__ import annotations

import ast
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_orvideo"

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "foundation: the packages' __init__ files, Airflow compatibility, exceptions, defaults",
        frozenset(
            {
                PACKAGE,
                "_internal",
                "decorators",
                "hooks",
                "links",
                "operators",
                "plugins",
                "triggers",
                "_internal.compat",  # the exceptions' base classes (AirflowException) come from it
                "_internal.versions",
                "exceptions",
                "defaults",
            }
        ),
    ),
    (
        "pure core: decisions without I/O",
        frozenset(
            {
                "_internal.api",
                "_internal.arguments",
                "_internal.assets",
                "_internal.budgets",
                "_internal.callback_urls",
                "_internal.field_checks",
                "_internal.lineage",
                "_internal.request_fields",
                "_internal.submission",
                "_internal.task_record",
                "_internal.validation",
                "_internal.waiting",
                "polling",
                "pricing",
                "retry",
                "webhooks",
            }
        ),
    ),
    (
        "I/O: files, object storage, media sources, HTTP",
        frozenset(
            {
                "_internal.atomic_output",
                "_internal.object_storage",
                "_internal.output_paths",
                "_internal.ledger",
                "hooks._async_sessions",
                "hooks._transport",
                "hooks.openrouter_video",
                "media",
            }
        ),
    ),
    (
        "orchestration: a job's lifecycle and the trigger",
        frozenset(
            {"_internal.lifecycle", "_internal.spending", "_internal.task_setup", "triggers.openrouter_video"}
        ),
    ),
    (
        "Airflow surfaces: operator, decorator, link, plugin and its pages, provider info",
        frozenset(
            {
                "cli",
                "decorators.openrouter_video",
                "get_provider_info",
                "links.openrouter_video",
                "operators.openrouter_video",
                "operators.openrouter_video_download",
                "plugins._video_html",
                "plugins._video_sources",
                "plugins._video_viewer",
                "plugins._video_views",
                "plugins._webhook_receiver",
                "plugins.openrouter_video",
            }
        ),
    ),
)
"""Bottom to top. A module may import its own layer and any layer below it."""

ALLOWED_UPWARD: Mapping[tuple[str, str], str] = {}
"""(importer, imported) -> why that one import runs upward. At most one, and none today."""


@dataclass(frozen=True)
class Import:
    """One dependency: ``importer`` imports ``imported`` at ``path:line``."""

    importer: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}  ({self.path}:{self.line})"


def _short(dotted: str) -> str:
    """``airflow_provider_orvideo.hooks._transport`` -> ``hooks._transport`` (the root keeps its name)."""
    return dotted.removeprefix(PACKAGE + ".")


def _ancestors(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, wherever it is; not the body of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _import_statements(ast.Module(body=[child], type_ignores=[]))
            continue
        yield from _import_statements(node)


def _source(statement: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module a ``from ... import`` reads from, relative levels resolved."""
    if not statement.level:
        return statement.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (statement.level - 1)]
    return ".".join([*base, *([statement.module] if statement.module else [])])


def _imported(
    statement: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: Container[str]
) -> list[str]:
    """The modules a statement makes run or reads from. ``import a.b`` runs ``a`` and ``a.b``;
    ``from a import b`` runs ``a`` and reads ``a.b`` if that is a module, else reads the name from
    ``a``'s ``__init__`` (then ``a`` counts even when it is the importer's own package: the name
    must already exist there). The importer's own packages are otherwise not counted: they ran
    before its first line."""
    loaded_first = {*_ancestors(importer), importer}
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
        return [m for name in names for m in [*_ancestors(name), name] if m not in loaded_first]
    source = _source(statement, importer, is_package)
    submodules = [f"{source}.{alias.name}" for alias in statement.names]
    reads_the_init = any(m not in modules for m in submodules)
    ran = [m for m in [*_ancestors(source), source] if m not in loaded_first]
    return [*ran, *([source] if reads_the_init else []), *(m for m in submodules if m in modules)]


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> list[Import]:
    """The dependencies among ``sources`` (dotted module name -> (source text, is a package's
    ``__init__``)), in the order written. Imports of anything outside ``sources`` are left out."""
    found: dict[tuple[str, str], Import] = {}
    for importer, (text, is_package) in sources.items():
        for statement in _import_statements(ast.parse(text)):
            for imported in _imported(statement, importer, is_package, sources):
                if imported in sources and imported != importer and (importer, imported) not in found:
                    found[(importer, imported)] = Import(importer, imported, importer, statement.lineno)
    return list(found.values())


def strongly_connected(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components; a component of more than one module is a circle."""
    successors: dict[str, list[str]] = {node: [] for node in nodes}
    for start, end in edges:
        successors.setdefault(start, []).append(end)
        successors.setdefault(end, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in successors:
        if root in index:
            continue
        work = [(root, iter(successors[root]))]  # iterative: no recursion limit on a long chain
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            for successor in pending:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(successors[successor])))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _package_sources() -> tuple[dict[str, tuple[str, bool]], dict[str, str]]:
    """The package's modules by short name: (source, is a package) and the file, for messages."""
    sources: dict[str, tuple[str, bool]] = {}
    files: dict[str, str] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        sources[name] = (path.read_text(), is_package)
        files[_short(name)] = str(path.relative_to(ROOT))
    return sources, files


def package_graph() -> tuple[list[str], list[Import]]:
    sources, files = _package_sources()
    edges = [
        Import(_short(e.importer), _short(e.imported), files[_short(e.importer)], e.line)
        for e in import_graph(sources)
    ]
    return [_short(name) for name in sources], edges


def _layer_of() -> dict[str, int]:
    return {module: level for level, (_, modules) in enumerate(LAYERS) for module in modules}


def test_every_module_has_exactly_one_layer() -> None:
    modules, _ = package_graph()
    placed = [module for _, members in LAYERS for module in members]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    unplaced = sorted(set(modules) - set(placed))
    assert not unplaced, f"new modules need a layer in tests/test_layers.py LAYERS: {unplaced}"
    gone = sorted(set(placed) - set(modules))
    assert not gone, f"LAYERS names modules that no longer exist: {gone}"


def test_the_graph_is_read_from_every_kind_of_import() -> None:
    """Guards the reader itself: a graph without these edges would pass every check below."""
    _, edges = package_graph()
    pairs = {(e.importer, e.imported) for e in edges}
    assert ("operators.openrouter_video", "hooks.openrouter_video") in pairs  # module level
    assert ("plugins.openrouter_video", "plugins._webhook_receiver") in pairs  # inside a function
    assert ("get_provider_info", PACKAGE) in pairs  # from the package's __init__


def test_no_import_circle() -> None:
    modules, edges = package_graph()
    circles = [
        c for c in strongly_connected(modules, [(e.importer, e.imported) for e in edges]) if len(c) > 1
    ]
    report = []
    for circle in circles:
        members = set(circle)
        report.append("circle: " + ", ".join(circle))
        report += [f"  {e}" for e in edges if e.importer in members and e.imported in members]
    assert not circles, "\n".join(["import circles among the package's modules:", *report])


def test_no_import_runs_up_a_layer_except_the_one_listed() -> None:
    assert len(ALLOWED_UPWARD) <= 1, "at most one upward import: move the function down instead"
    layer = _layer_of()
    _, edges = package_graph()
    upward = [e for e in edges if layer[e.imported] > layer[e.importer]]
    unexplained = [e for e in upward if (e.importer, e.imported) not in ALLOWED_UPWARD]
    lines = [
        f"  {e}: {LAYERS[layer[e.importer]][0]!r} imports {LAYERS[layer[e.imported]][0]!r}"
        for e in unexplained
    ]
    assert not unexplained, "\n".join(["imports from a lower layer up to a higher one:", *lines])
    stale = sorted(set(ALLOWED_UPWARD) - {(e.importer, e.imported) for e in upward})
    assert not stale, f"ALLOWED_UPWARD lists imports that no longer run upward: {stale}"


# ------------------------------------------------------------------------------------ the reader


def _graph_of(**modules: str) -> set[tuple[str, str]]:
    """Modules named ``pkg__sub`` for ``pkg.sub``; a name ending in ``__init`` is a package."""
    sources = {}
    for key, text in modules.items():
        is_package = key.endswith("__init")
        name = key.removesuffix("__init").rstrip("_").replace("__", ".")
        sources[name] = (text, is_package)
    return {(e.importer, e.imported) for e in import_graph(sources)}


def test_the_reader_resolves_every_form() -> None:
    graph = _graph_of(
        p__init="",
        p__a="from . import b\nimport p.c as see\n",
        p__b="def f():\n    from .c import x\n",
        p__c="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.a import A\nelse:\n    import p.d\n",
        p__d="import os\n",
        p__q__init="",
        p__q__e="from ..d import y\nfrom p.q import f\n",
        p__q__f="from p import d\n",
        p__q__g="from p import name\n",
    )
    assert graph == {
        ("p.a", "p.b"),  # from . import b
        ("p.a", "p.c"),  # import p.c as see
        ("p.b", "p.c"),  # inside a function
        ("p.c", "p.d"),  # the else of TYPE_CHECKING runs; its if does not
        ("p.q.e", "p.d"),  # from ..d
        ("p.q.e", "p.q.f"),  # its own package p.q is not an edge
        ("p.q.f", "p.d"),  # from p import d: a module, so p's __init__ (run already) is not read
        ("p.q.g", "p"),  # from p import name: read from p's __init__
    }


def test_importing_a_package_module_from_outside_counts_its_init() -> None:
    """``p/h/__init__.py`` imports ``p.x``, which imports ``p.h.t``: running ``p.h`` first is a circle."""
    graph = _graph_of(p__init="", p__h__init="from p.x import z\n", p__h__t="", p__x="import p.h.t\n")
    assert graph == {("p.h", "p.x"), ("p.x", "p.h"), ("p.x", "p.h.t")}
    assert ["p.h", "p.x"] in strongly_connected(["p", "p.h", "p.h.t", "p.x"], graph)


def _reaches(edges: set[tuple[int, int]], start: int, end: int) -> bool:
    seen, frontier = {start}, [start]
    while frontier:
        node = frontier.pop()
        for a, b in edges:
            if a == node and b not in seen:
                if b == end:
                    return True
                seen.add(b)
                frontier.append(b)
    return False


@given(st.sets(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=24))
def test_components_are_exactly_the_mutually_reachable_modules(edges: set[tuple[int, int]]) -> None:
    """Against the definition: two modules share a component iff each reaches the other."""
    nodes = list(range(8))
    named = {(str(a), str(b)) for a, b in edges}
    components = strongly_connected([str(n) for n in nodes], named)
    assert sorted(m for c in components for m in c) == sorted(str(n) for n in nodes)
    component_of = {m: i for i, c in enumerate(components) for m in c}
    for a in nodes:
        for b in nodes:
            together = a == b or (_reaches(edges, a, b) and _reaches(edges, b, a))
            assert (component_of[str(a)] == component_of[str(b)]) == together
