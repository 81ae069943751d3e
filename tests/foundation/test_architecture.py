"""The walls of the house (docs in README 'Architecture'): each import rule here is one a reviewer would ask for."""

from __future__ import annotations

import ast
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


def test_no_raw_sql_outside_the_store() -> None:
    """SQL text belongs in hub_server/store; other hub modules call its functions."""
    offenders = [
        str(path.relative_to(ROOT))
        for sub in ("api", "web")
        for path in (ROOT / "hub_server" / sub).rglob("*.py")
        if ".execute(" in path.read_text(encoding="utf-8")
    ]
    assert not offenders, offenders
