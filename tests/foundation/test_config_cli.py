"""check-config for both programs: OK for the examples, one line per problem with its key path otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; from {program}.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("program", "example"), [("edge_agent", "agent.example.toml"), ("hub_server", "hub.example.toml")]
)
def test_example_configs_are_valid(program: str, example: str) -> None:
    path = ROOT / "configs" / example
    if not path.exists():
        pytest.fail(f"{path} is missing")
    result = _run(program, "check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


def test_bad_agent_config_names_every_problem_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('[device]\nid = "Lamp Post"\nsite = "x"\n[mqtt]\nport = 70000\ncolour = "red"\n')
    result = _run("edge_agent", "check-config", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert any(f"{bad}: device.id:" in line for line in lines)
    assert any("mqtt.port:" in line and "65535" in line for line in lines)
    assert any("mqtt.colour:" in line and "Extra inputs" in line for line in lines)
    assert any("mqtt.password_file:" in line and "required" in line for line in lines)


@pytest.mark.parametrize("content", ["not toml [[", "", "device = 3\n"])
def test_unparseable_or_wrong_shaped_config_is_one_clear_error(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text(content)
    result = _run("edge_agent", "check-config", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr


def test_missing_config_file_and_bad_arguments() -> None:
    result = _run("hub_server", "check-config", "/nonexistent/hub.toml")
    assert result.returncode == 1
    assert "cannot read file" in result.stderr
    result = _run("edge_agent", "no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr
