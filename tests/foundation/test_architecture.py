"""The walls of the house (docs in README 'Architecture'): each import rule here is one a reviewer would ask for."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


RULES = [
    # (folder, paths exempt (relative to the folder, a "/" ending names a sub-folder), forbidden import prefixes, why)
    (
        "edge_agent/counting",
        (),
        ("edge_agent.transport", "edge_agent.lockers", "edge_agent.privacy", "paho"),
        "counting emits crossings, nothing else",
    ),
    ("edge_agent/transport", (), ("edge_agent.counting", "cv2"), "the transport carries opaque, protected events"),
    ("edge_agent/privacy", (), ("paho", "edge_agent.transport"), "privacy hands windows to a sink, not to MQTT"),
    (
        "hub_server",
        ("demo/",),
        ("edge_agent",),
        "the hub imports only the wire contract of the agent",
    ),
    ("hub_server/store", (), ("aiohttp", "hub_server.web", "hub_server.api"), "the store knows nothing of HTTP"),
    ("hub_server/api", (), ("sqlite3",), "the API knows nothing of SQL"),
    ("hub_server/web", (), ("sqlite3",), "the pages know nothing of SQL"),
    ("hub_protocol", (), ("edge_agent", "hub_server", "cv2", "gpiozero", "aiohttp"), "the contract stands alone"),
]


@pytest.mark.parametrize(("folder", "exempt", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_walls(folder: str, exempt: tuple[str, ...], forbidden: tuple[str, ...], why: str) -> None:
    files = [p for p in (ROOT / folder).rglob("*.py") if not p.relative_to(ROOT / folder).as_posix().startswith(exempt)]
    assert files, f"no Python files under {folder}"
    broken = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not broken, f"{why}: " + "; ".join(broken)


SQL = re.compile(
    r"\.execute(many|script)?\(|\b(SELECT .* FROM|INSERT (OR \w+ )?INTO|UPDATE \w+ SET|DELETE FROM|PRAGMA \w)"
)


def sql_outside_the_store(package: Path) -> list[str]:
    """Files of ``package`` outside its store/ that run SQL or hold SQL text (a statement in a string)."""
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).parts[0] == "store":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        texts = [ast.unparse(n.func) + "(" for n in ast.walk(tree) if isinstance(n, ast.Call)]
        texts += [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        if any(SQL.search(text) for text in texts):
            offenders.append(str(path.relative_to(package.parent)))
    return offenders


def test_no_sql_outside_the_store() -> None:
    """SQL lives in hub_server/store; every other hub module calls its functions."""
    offenders = sql_outside_the_store(ROOT / "hub_server")
    assert not offenders, f"SQL outside hub_server/store: {offenders}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(node: ast.AST) -> Iterator[str]:
    """Modules an import names when it runs: at module level or in a function, not under ``if TYPE_CHECKING:``
    (``from a import b`` names ``a`` and ``a.b``, which is a module or not)."""
    for child in ast.iter_child_nodes(node):
        statements = child.orelse if isinstance(child, ast.If) and _is_type_checking(child.test) else [child]
        for stmt in statements:
            if isinstance(stmt, ast.Import):
                yield from (alias.name for alias in stmt.names)
            elif isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                yield stmt.module
                yield from (f"{stmt.module}.{alias.name}" for alias in stmt.names)
            yield from _runtime_imports(stmt)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at run time. Importing ``a.b.c`` runs ``a`` and ``a.b`` too;
    a module's own enclosing packages are left out (they are being imported already, by Python's rules)."""
    paths = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets = set()
        for imported in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            parts = imported.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[name] = {t for t in targets if t in paths and t != name and t not in own}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circles_in_the_hub() -> None:
    """No circle of run-time imports among hub_server's modules (an import inside a function counts: it only
    postpones the circle; ``if TYPE_CHECKING:`` imports do not run)."""
    cycle = find_cycle(import_graph(ROOT / "hub_server"))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
