"""The operator's command line: the example config, user accounts without any default, API tokens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub_protocol import tomlwrite
from hub_server.accounts import audit
from hub_server.cli import main
from hub_server.config import load_hub_config
from hub_server.store import accounts
from hub_server.store.db import Database
from tests.conftest import write_secret
from tests.hub.conftest import hub_config_data

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "hub.example.toml"


def test_example_config_passes_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip() == "OK"
    config = load_hub_config(EXAMPLE)
    assert config.provisioning is not None and config.http.behind_tls


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(tomlwrite.dumps(hub_config_data(tmp_path / "hub")))
    return path


def test_no_account_exists_until_one_is_added(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = Database(load_hub_config(config_path).store.location)
    assert accounts.list_users(db.conn) == []
    assert main(["user", "--config", str(config_path), "list"]) == 0
    assert capsys.readouterr().out == ""


def test_user_add_from_a_private_password_file(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = write_secret(tmp_path / "pw", "a long enough password")
    assert (
        main(["user", "--config", str(config_path), "add", "alice", "--role", "admin", "--password-file", str(secret)])
        == 0
    )
    assert "added alice (admin)" in capsys.readouterr().out
    db = Database(load_hub_config(config_path).store.location)
    assert accounts.verify_login(db.conn, "alice", "a long enough password") is not None
    stored = db.conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$")
    entry = audit.query(db.conn, action="user.add")[0]
    assert entry.actor.startswith("cli:") and entry.target == "user:alice"


def test_user_add_refuses_weak_shared_or_missing_passwords(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weak = write_secret(tmp_path / "weak", "short")
    assert (
        main(["user", "--config", str(config_path), "add", "bob", "--role", "viewer", "--password-file", str(weak)])
        == 1
    )
    assert "at least 12 characters" in capsys.readouterr().err
    shared = write_secret(tmp_path / "shared", "a long enough password")
    os.chmod(shared, 0o644)
    assert (
        main(["user", "--config", str(config_path), "add", "bob", "--role", "viewer", "--password-file", str(shared)])
        == 1
    )
    assert "chmod 600" in capsys.readouterr().err
    # No terminal in the test run and no file: it asks for --password-file instead of inventing one.
    assert main(["user", "--config", str(config_path), "add", "bob", "--role", "viewer"]) == 1
    assert "--password-file" in capsys.readouterr().err
    assert (
        main(
            ["user", "--config", str(config_path), "add", "Bad Name", "--role", "viewer", "--password-file", str(weak)]
        )
        == 1
    )
    db = Database(load_hub_config(config_path).store.location)
    assert accounts.list_users(db.conn) == []


def test_role_changes_keep_one_admin(config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = write_secret(tmp_path / "pw", "a long enough password")
    base = ["user", "--config", str(config_path)]
    assert main([*base, "add", "alice", "--role", "admin", "--password-file", str(secret)]) == 0
    assert main([*base, "set-role", "alice", "viewer"]) == 1
    assert "last active admin" in capsys.readouterr().err
    assert main([*base, "add", "bob", "--role", "operator", "--password-file", str(secret)]) == 0
    assert main([*base, "set-role", "bob", "admin"]) == 0
    assert main([*base, "disable", "alice"]) == 0
    capsys.readouterr()
    assert main([*base, "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "disabled" in listing


def test_token_add_prints_the_token_once_and_stores_a_hash(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["user", "--config", str(config_path)]
    assert main([*base, "token-add", "city-dashboard", "--role", "viewer"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("hubt_")
    db = Database(load_hub_config(config_path).store.location)
    found = accounts.find_token(db.conn, token)
    assert found is not None and found.name == "city-dashboard"
    assert token not in str(db.conn.execute("SELECT * FROM api_tokens").fetchall())
    assert main([*base, "token-revoke", str(found.id)]) == 0
    assert accounts.find_token(db.conn, token) is None


@pytest.mark.parametrize(
    ("argv", "argument"),
    [
        (["user", "token-revoke", str(2**64)], "argument id: expected 1 to"),
        (["user", "token-revoke", "0x10"], "argument id: expected a whole number"),
        (["delivery", "list", "--limit", str(10**30)], "argument --limit: expected 1 to 100000"),
        (["delivery", "list", "--limit", "-1"], "argument --limit: expected 1 to 100000"),
        (["device", "reload-config", "cam-1", "--wait", "nan"], "argument --wait: expected 0 to 3600 seconds"),
        (["device", "push-config", "cam-1", "x.toml", "--wait", "inf"], "argument --wait: expected 0 to 3600"),
    ],
)
def test_numbers_out_of_range_are_a_usage_error_and_change_nothing(
    config_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], argument: str
) -> None:
    """Not an OverflowError from the database (a 65-bit token id) nor a wait of NaN seconds."""
    assert main(["user", "--config", str(config_path), "token-add", "keep-me", "--role", "viewer"]) == 0
    db = Database(load_hub_config(config_path).store.location)
    before = db.conn.execute("SELECT * FROM api_tokens").fetchall()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([argv[0], "--config", str(config_path), *argv[1:]])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert argument in err and "Traceback" not in err
    assert db.conn.execute("SELECT * FROM api_tokens").fetchall() == before


@pytest.mark.parametrize("store", ["folder", "garbage"])
@pytest.mark.parametrize("command", [["user", "list"], ["serve"]])
def test_a_store_path_that_is_no_database_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str, command: list[str]
) -> None:
    """A folder or a file that is not SQLite at store.path gave sqlite3's traceback, `serve` included."""
    data = hub_config_data(tmp_path / "hub")
    data["store"] = {}  # SQLite's setting, also in the PostgreSQL run
    path = tmp_path / store
    if store == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"not a database, " * 1000)
    data["store"]["path"] = str(path)
    config = tmp_path / "hub.toml"
    config.write_text(tomlwrite.dumps(data))
    assert main([command[0], "--config", str(config), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert f"store.path '{path}': cannot open the database" in err and "Traceback" not in err
    if store == "garbage":
        assert path.read_bytes() == b"not a database, " * 1000


@pytest.mark.parametrize("command", [["user", "list"], ["serve"]])
def test_a_store_url_where_no_server_answers_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    pytest.importorskip("psycopg", reason="a PostgreSQL store needs psycopg (the [postgresql] extra)")
    data = hub_config_data(tmp_path / "hub")
    url = "postgresql://hub@127.0.0.1:1/hub"  # port 1: nothing listens
    data["store"] = {"url": url}
    config = tmp_path / "hub.toml"
    config.write_text(tomlwrite.dumps(data))
    assert main([command[0], "--config", str(config), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert f"store.url '{url}': cannot open the database" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
