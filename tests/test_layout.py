"""The code's layers show in its folders, and imports point one way: web -> services -> rules/readiness -> models;
the core never imports sync/, and sync/ never imports Flask or the web layer. Every import counts, including the
ones made inside a function."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("tracker.web", "tracker.cli")  # the ways in: pages and the device API, and the command line


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("tracker", "sync"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imported(module: str, node: ast.ImportFrom) -> list[str]:
    """Return the full names an import-from statement reaches."""
    if node.level:
        parts = module.split(".")
        if MODULES[module].name != "__init__.py":
            parts = parts[:-1]
        base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    # `from package import module` reaches the module; `from package import name` reaches the package.
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def _closest(name: str) -> str | None:
    """Return the project module a dotted name lives in, or None for a library."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> dict[str, set[str]]:
    """Map each project module to the project modules and top-level libraries it imports."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = _imported(module, node)
            else:
                continue
            for name in names:
                target = _closest(name)
                found.add(target if target else name.split(".")[0])
        found.discard(module)
        graph[module] = found
    return graph


GRAPH = _imports()


def _within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_blueprint_lives_directly_under_tracker():
    """Pages live in tracker/web/; the modules directly under tracker/ are the core."""
    defining = [p.name for p in (ROOT / "tracker").glob("*.py") if "Blueprint(" in p.read_text(encoding="utf-8")]
    assert defining == []


@pytest.mark.parametrize("layer", ["tracker.db", "tracker.models", "tracker.services", "tracker.rules",
                                   "tracker.readiness", "tracker.audit", "tracker.access", "tracker.clock"])
def test_core_imports_nothing_from_sync(layer):
    """The database, models, services and rules know nothing of field sync."""
    reached = {t for m, targets in GRAPH.items() if _within(m, layer) for t in targets if _within(t, "sync")}
    assert reached == set()


def test_only_the_edges_import_sync():
    """Only the web layer and the command line, the ways in, use the sync package."""
    users = {m for m, targets in GRAPH.items() if m.startswith("tracker") and any(_within(t, "sync") for t in targets)}
    assert users and all(_within(m, *EDGES) for m in users), users


def test_sync_never_imports_flask_or_the_web_layer():
    """sync/ takes a session or an engine and returns plain data."""
    bad = {(m, t) for m, targets in GRAPH.items() if _within(m, "sync") for t in targets
           if t in ("flask", "flask_login", "flask_wtf", "flask_htmx", "werkzeug") or _within(t, *EDGES)}
    assert bad == set()


@pytest.mark.parametrize(("lower", "upper"), [
    ("tracker.models", "tracker.services"), ("tracker.models", "tracker.web"), ("tracker.models", "tracker.rules"),
    ("tracker.rules", "tracker.services"), ("tracker.readiness", "tracker.services"), ("tracker.services", "tracker.web"),
    ("tracker.rules", "tracker.models"), ("sync.centre", "sync.device"), ("sync.device", "sync.centre"),
])
def test_imports_point_one_way(lower, upper):
    """A lower layer never reaches up: models know no services, services no pages; the two sides of sync are apart."""
    reached = {(m, t) for m, targets in GRAPH.items() if _within(m, lower) for t in targets if _within(t, upper)}
    assert reached == set()


def test_no_import_circles():
    """No chain of imports leads back to where it started."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH[module] & MODULES.keys():
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while (top := stack.pop()) != module:
                component.append(top)
            if component:
                circles.append(sorted([module, *component]))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert circles == []


def test_resource_names_are_told_apart_by_their_layer():
    """Where a resource has a page, an operation and a table, each sits in its own package."""
    core = {p.stem for p in (ROOT / "tracker").glob("*.py")}
    layered = {p.stem for sub in ("web", "services", "models") for p in (ROOT / "tracker" / sub).glob("*.py")}
    assert core & layered - {"__init__", "audit"} == set()  # audit.py keeps the log; models/audit.py its table
