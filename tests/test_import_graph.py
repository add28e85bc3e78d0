"""The project's import graph has no cycle, and every import inside a function is listed with its reason."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connector", "ngsi", "devledger", "demo")

# Imports inside functions that stay, each with its measured or structural reason: (importer, imported),
# "*" for every import of that importer. Import times: `python -X importtime -c "import MODULE"`.
_CLI = "a sub-command's handler imports what it runs: --help loads connector.cli in 0.1 s, not 1-3 s"
_WEB3 = "web3 takes 2 s to import; loaded only when Ethereum is on (ethereum.enabled, demo --ethereum)"
DEFERRED: dict[tuple[str, str], str] = {
    ("connector.commands.demo", "*"): _CLI,
    ("connector.commands.ethereum", "*"): _CLI,
    ("connector.commands.keys", "*"): _CLI,
    ("connector.commands.orion", "*"): _CLI,
    ("connector.commands.run", "*"): _CLI,
    ("connector.commands.portfolio", "*"): _CLI,
    ("connector.commands.proof", "*"): _CLI,
    ("connector.commands.verify", "*"): _CLI,
    ("devledger.cli", "*"): "the dev ledger's own command line: `check` needs no server, `--help` nothing",
    ("connector.service", "connector.ethereum.relay"): _WEB3,
    ("connector.service", "connector.ethereum.client"): _WEB3,
    ("connector.service", "connector.ethereum.anvil"): _WEB3,
    ("connector.service", "connector.ethereum.portfolio_relay"): _WEB3,
    ("connector.proofcheck", "connector.ethereum.portfolio"): _WEB3,
    ("connector.api.verification", "connector.ethereum.report"): _WEB3,
    ("demo.run", "demo.ethereum"): _WEB3,
    # prometheus_client picks its multiprocess value class from PROMETHEUS_MULTIPROC_DIR at its first
    # import; the service imports it, so the supervisor imports the service only after setting the folder.
    ("connector.supervisor", "connector.service"): "PROMETHEUS_MULTIPROC_DIR must be set first",
}


def module_files() -> dict[str, Path]:
    """Every module of the project's packages by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = module_files()


def _targets(node: ast.Import | ast.ImportFrom, importer: str) -> Iterator[str]:
    """The project modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer.split(".")
            package = package[: len(package) - node.level + (1 if _is_package(importer) else 0)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != importer:
            yield name


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(name: str) -> Iterator[tuple[str, bool]]:
    """(imported module, inside a function) for each project import of module `name` that runs (not
    under `if TYPE_CHECKING:`)."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                yield from (t for c in child.orelse for t in walk(c, in_function))
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield from ((t, in_function) for t in _targets(child, name))
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, inner)

    yield from walk(ast.parse(MODULES[name].read_text()), False)


def graph() -> dict[str, set[str]]:
    """Every module's project imports, at module level and inside functions alike."""
    return {name: {target for target, _ in imports(name)} for name in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    """No chain of imports (module-level or inside functions) leads a module back to itself."""
    assert cycles(graph()) == []


def test_every_import_inside_a_function_is_listed_with_its_reason():
    """Imports are at module top; the few deferred ones are the allow-list's, each with a reason."""
    deferred = {(name, target) for name in MODULES for target, inside in imports(name) if inside}
    unlisted = {(name, target) for name, target in deferred if (name, "*") not in DEFERRED}
    listed = {key for key in DEFERRED if key[1] != "*"}
    assert unlisted == listed, sorted(unlisted ^ listed)
    assert all(any(name == key[0] for name, _ in deferred) for key in DEFERRED)


def test_the_cycle_finder_finds_a_cycle():
    """A two-module loop and a three-module loop are reported; a chain is not."""
    edges = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"g"}, "g": set()}
    assert sorted(cycles(edges)) == [["a", "b"], ["c", "d", "e"]]
