"""A private Mosquitto for the demo, the tests and the benchmarks: own port, password file, ACL, persistence.

Production uses the system Mosquitto configured from ``systemd/mosquitto-hub.conf``; this runner writes the
same kind of configuration into a folder of its own and runs ``mosquitto`` as a child process. Like production
it has two listeners: ``port`` for the hub (any client id, as the hub's ingest and CLI need several) and
``device_port`` for the devices, where the broker replaces the client id with the user name
(``use_username_as_clientid``), so one device's credentials cannot take over another client's session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hub_server.fleet import dynsec

CLI_CLIENT_ID_PREFIX = "hub-cli-"
"""Client ids of the hub's short CLI sessions (a random suffix each); no device may be named like them."""


class BrokerError(RuntimeError):
    """Mosquitto could not be found, configured or started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if path is None:
        raise BrokerError(f"{name} not found: install Mosquitto (apt-get install mosquitto mosquitto-clients)")
    return path


def passwd_command(path: Path, user: str, password: str) -> tuple[list[str], str]:
    """Arguments and standard input that make ``mosquitto_passwd`` add or change ``user`` in ``path``.

    The password goes through standard input (the tool's prompt, asked twice), never the command line: any
    local user can read a process's arguments from /proc while it runs.
    """
    if "\n" in password or "\r" in password:
        raise BrokerError("a broker password cannot contain a line break")
    return [find_binary("mosquitto_passwd"), str(path), user], f"{password}\n{password}\n"


def set_password(path: Path, user: str, password: str) -> None:
    """Add or change one user in a password file; ``mosquitto_passwd`` stores only a hash."""
    args, stdin = passwd_command(path, user, password)
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BrokerError(f"mosquitto_passwd failed: {(result.stderr or result.stdout).strip()}")


def write_password_file(path: Path, users: dict[str, str]) -> None:
    path.write_text("")
    path.chmod(0o600)
    for user, password in users.items():
        set_password(path, user, password)


@dataclass
class PrivateBroker:
    """One mosquitto process on 127.0.0.1; ``users`` maps name to password, ``acl`` is the ACL file's lines."""

    folder: Path
    users: dict[str, str]
    acl: list[str]
    port: int = field(default_factory=free_port)
    device_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    dynsec_admin: tuple[str, str] | None = None
    """(user, password) of an account administrator: accounts then live in the dynamic-security plugin,
    not in a password file and ACL (``users`` and ``acl`` become its first clients and roles)."""

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def config_path(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def pid_path(self) -> Path:
        return self.folder / "mosquitto.pid"

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def dynsec_path(self) -> Path:
        return self.folder / "dynamic-security.json"

    def _access_lines(self) -> list[str]:
        if self.dynsec_admin is None:
            write_password_file(self.folder / "passwd", self.users)
            (self.folder / "acl").write_text("\n".join(self.acl) + "\n")
            return [f"password_file {self.folder / 'passwd'}", f"acl_file {self.folder / 'acl'}"]
        plugin = dynsec.find_plugin()
        if plugin is None:
            raise BrokerError(
                f"Mosquitto's {dynsec.PLUGIN_NAME} not found: install Mosquitto 2 (apt-get install mosquitto)"
            )
        if self.dynsec_path.exists():  # written beforehand (hub-server device dynsec-init), or by the plugin
            return [f"plugin {plugin}", f"plugin_opt_config_file {self.dynsec_path}"]
        data = dynsec.initial_config(*self.dynsec_admin)
        blocks = dynsec.acl_blocks(self.acl)
        for user, password in self.users.items():
            role = dynsec.role_name(user)
            data["roles"].append({"rolename": role, "acls": dynsec.acl_entries(blocks.get(user, []))})
            # The plugin's own rounds for the clients it creates: a test broker checks many logins.
            hashed = dynsec.password_hash(password, dynsec.CLIENT_ITERATIONS)
            data["clients"].append({"username": user, **hashed, "roles": [{"rolename": role}]})
        self.dynsec_path.write_text(json.dumps(data, indent=1))
        self.dynsec_path.chmod(0o600)
        return [f"plugin {plugin}", f"plugin_opt_config_file {self.dynsec_path}"]

    def write_config(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "data").mkdir(exist_ok=True)
        access = self._access_lines()
        self.config_path.write_text(
            "\n".join(
                [
                    # Started as root (CI containers), mosquitto would switch to its own user, which cannot
                    # read this private folder; a private broker keeps the caller's identity instead.
                    *(["user root"] if os.geteuid() == 0 else []),
                    "per_listener_settings false",
                    f"listener {self.device_port} 127.0.0.1",
                    # The session is the account's: a client naming another's id cannot push it off.
                    "use_username_as_clientid true",
                    # Last, so that listener settings appended to this file (TLS in tests) apply to it.
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous false",
                    *access,
                    "persistence true",
                    f"persistence_location {self.folder / 'data'}/",
                    "autosave_interval 1",
                    "max_queued_messages 1000",
                    f"pid_file {self.pid_path}",
                    f"log_dest file {self.log_path}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> None:
        if not self.config_path.exists():
            self.write_config()
        binary = find_binary("mosquitto")
        self.process = subprocess.Popen(  # noqa: S603
            [binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise BrokerError(f"mosquitto exited at start: {err.strip()} {log.strip()[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def reload(self) -> None:
        """Re-read password file and ACL (SIGHUP), as provisioning does after a device change."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)
            time.sleep(0.3)

    def admin(self) -> dynsec.DynsecAdmin:
        """An account administrator's session on the hub's listener (a broker with ``dynsec_admin`` only)."""
        if self.dynsec_admin is None:
            raise BrokerError("this broker keeps its accounts in files, not in the dynamic-security plugin")
        user, password = self.dynsec_admin
        return dynsec.DynsecAdmin(self.host, self.port, user, password, client_id=f"{CLI_CLIENT_ID_PREFIX}{user}")

    def add_user(self, user: str, password: str, acl_lines: list[str]) -> None:
        self.users[user] = password
        if self.dynsec_admin is not None:
            role = dynsec.role_name(user)
            with self.admin() as admin:
                admin.command("createRole", rolename=role, acls=dynsec.acl_entries(acl_lines))
                admin.command("createClient", username=user, password=password, roles=[{"rolename": role}])
            self.acl.extend(acl_lines)
            return
        set_password(self.folder / "passwd", user, password)
        self.acl.extend(acl_lines)
        (self.folder / "acl").write_text("\n".join(self.acl) + "\n")
        self.reload()

    def kill(self) -> None:
        """SIGKILL: what a power cut does to the broker (unsaved state is lost)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> PrivateBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
