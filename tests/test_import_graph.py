"""No import cycle among the modules of `server/`, `client_sdk/` and `protocol/` (issue 21).

The graph is read from the source with `ast`, not from `sys.modules`, so an import inside a function
counts as an edge: moving an import into a function hides a cycle from Python at import time but
keeps the two modules knowing each other, which is what the layering forbids (a domain below never
imports a domain above; a cascade across domains lives in one module above them).

Edges:
  * ``import a.b.c``                 -> ``a.b.c``
  * ``from a.b import c``            -> ``a.b.c`` when that is a module, else ``a.b``
  * relative imports, resolved against the importing module's package.
Imports under ``if TYPE_CHECKING:`` never run and are not edges. A package's ``__init__`` that
re-exports its submodules is an ordinary node: ``client_sdk.errors`` does not import
``client_sdk``, so the package importing its own submodules is no cycle.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "client_sdk", "protocol")

Graph = Mapping[str, Iterable[str]]


def module_names(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement in `tree`, at any depth, except those under `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, is_package: bool, tree: ast.AST, known: Iterable[str]) -> set[str]:
    """The modules among `known` that module `name` imports, at module level or in a function."""
    known = set(known)
    package = name if is_package else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in known)
            continue
        if node.level:
            base_parts = package.split(".")
            if node.level > 1:
                base_parts = base_parts[: -(node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in known:
                edges.add(submodule)
            elif base in known:
                edges.add(base)
    edges.discard(name)
    return edges


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    modules = module_names(root, packages)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = imports_of(name, path.name == "__init__.py", tree, modules)
    return graph


def _successors(graph: Graph) -> dict[str, list[str]]:
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    return {n: sorted(graph.get(n, ())) for n in nodes}


def components(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted, in order.

    Tarjan's algorithm, iterative so a deep graph cannot hit the recursion limit.
    """
    succ = _successors(graph)
    nodes = list(succ)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if i < len(succ[node]):
                work.append((node, i + 1))
                nxt = succ[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
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
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module:
    a shortest one through the component's first module, so the message names a path a reader
    can follow, the same one on every run."""
    succ = _successors(graph)
    return [_shortest_cycle(succ, set(c), c[0]) for c in components(graph)]


def _shortest_cycle(succ: Mapping[str, list[str]], members: set[str], start: str) -> list[str]:
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in succ[node]:
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt in members and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")  # pragma: no cover


def describe(graph: Graph, package: str) -> str:
    """Each cycle in `package`, then every module of its component (all of them must be broken)."""
    succ = _successors(graph)
    lines = []
    for component in components(graph):
        if component[0].split(".")[0] == package:
            lines.append(" -> ".join(_shortest_cycle(succ, set(component), component[0])))
            lines.append(f"    (component: {', '.join(component)})")
    return "\n".join(lines)


# --- the checker can fail -------------------------------------------------------------------


def test_a_synthetic_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_two_separate_cycles_are_both_reported() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "x": {"y"}, "y": {"z"}, "z": {"x"}, "a2": {"x"}}
    assert find_cycles(graph) == [["a", "b", "a"], ["x", "y", "z", "x"]]


def test_the_message_names_the_cycle_and_every_module_of_it() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c", "p.a"}, "p.c": {"p.a"}, "q.x": {"q.y"}, "q.y": {"q.x"}}
    assert describe(graph, "p") == "p.a -> p.b -> p.a\n    (component: p.a, p.b, p.c)"


def test_a_graph_without_cycles_passes() -> None:
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_an_import_inside_a_function_is_an_edge(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/low.py", "def cascade():\n    from pkg import high\n    high.end()\n")
    _write(tmp_path, "pkg/high.py", "from pkg.low import cascade\n")
    assert find_cycles(import_graph(tmp_path, ["pkg"])) == [["pkg.high", "pkg.low", "pkg.high"]]


def test_from_package_import_submodule_resolves_to_the_submodule(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/sub/__init__.py", "VALUE = 1\n")
    _write(tmp_path, "pkg/sub/mod.py", "from .. import other\nfrom . import VALUE\n")
    _write(tmp_path, "pkg/other.py", "from pkg.sub import mod\nimport pkg.sub\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.sub.mod"] == {"pkg.other", "pkg.sub"}
    assert graph["pkg.other"] == {"pkg.sub.mod", "pkg.sub"}
    assert find_cycles(graph) == [["pkg.other", "pkg.sub.mod", "pkg.other"]]


def test_type_checking_imports_are_not_edges(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(
        tmp_path,
        "pkg/a.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n",
    )
    _write(tmp_path, "pkg/b.py", "from pkg import a\n")
    assert find_cycles(import_graph(tmp_path, ["pkg"])) == []


# --- the project ------------------------------------------------------------------------------


@functools.cache
def project_graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_covers_the_three_packages() -> None:
    graph = project_graph()
    for name in ("server.app", "client_sdk._client", "protocol.oprf"):
        assert name in graph
    assert "server.disclosures.services" in graph["server.disclosures.routes"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package: str) -> None:
    message = describe(project_graph(), package)
    if message:
        pytest.fail(f"import cycles in {package}/:\n{message}", pytrace=False)


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def imports_into(graph: Graph, importer: str, imported: str) -> list[str]:
    """Each edge from a module of package `importer` to one of package `imported`."""
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if _inside(name, importer)
        for target in targets
        if _inside(target, imported)
    )


def test_an_import_from_a_domain_below_is_named() -> None:
    graph = {
        "s.consents.services": {"s.disclosures.services", "s.db"},
        "s.cascades": {"s.disclosures"},
    }
    assert imports_into(graph, "s.consents", "s.disclosures") == [
        "s.consents.services -> s.disclosures.services"
    ]


@pytest.mark.parametrize("domain", ["server.consents", "server.cases", "server.checks"])
def test_domains_below_disclosures_never_import_it(domain: str) -> None:
    """A withdrawn consent or case ends its disclosure requests through `server.cascades`."""
    assert not imports_into(project_graph(), domain, "server.disclosures")


# --- protocol.hazmat is protocol's own ------------------------------------------------------


def test_an_import_of_hazmat_inside_a_function_is_named(tmp_path: Path) -> None:
    (tmp_path / "server" / "oprf").mkdir(parents=True)
    (tmp_path / "protocol" / "hazmat").mkdir(parents=True)
    for package in ("server", "server/oprf", "protocol", "protocol/hazmat"):
        (tmp_path / package / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "protocol" / "hazmat" / "ristretto255.py").write_text("", encoding="utf-8")
    (tmp_path / "protocol" / "keyops.py").write_text(
        "from protocol.hazmat import ristretto255\n", encoding="utf-8"
    )
    (tmp_path / "server" / "oprf" / "services.py").write_text(
        "from protocol import keyops\n\n\ndef f():\n"
        "    from protocol.hazmat.ristretto255 import scalar_mult\n",
        encoding="utf-8",
    )
    graph = import_graph(tmp_path, ("server", "protocol"))
    assert imports_into(graph, "server", "protocol.hazmat") == [
        "server.oprf.services -> protocol.hazmat.ristretto255"
    ]


@pytest.mark.parametrize("package", ["server", "client_sdk"])
def test_only_protocol_imports_hazmat(package: str) -> None:
    """The raw group operations trust their caller; the server and the SDK use the safe API
    (`protocol.keyops`, `protocol.oprf`, `protocol.entry`, ...). Migrations count too."""
    assert not imports_into(project_graph(), package, "protocol.hazmat")
