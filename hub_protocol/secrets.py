"""Secrets come from files, never from TOML: a path, or a name under systemd's ``$CREDENTIALS_DIRECTORY``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hub_protocol.validation import ConfigError


def resolve_secret_path(reference: str) -> Path:
    """``reference`` is either an absolute/relative path or a bare credential name for systemd's LoadCredential."""
    if "/" not in reference and (cred_dir := os.environ.get("CREDENTIALS_DIRECTORY")):
        return Path(cred_dir) / reference
    return Path(reference)


def read_secret(reference: str, what: str, *, refuse_shared: bool = True) -> str:
    """Read one secret; refuse a file others may read (a leaked device password is a break-in)."""
    path = resolve_secret_path(reference)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(what, [f"cannot read secret file {path}: {exc.strerror or exc}"]) from None
    if refuse_shared and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(what, [f"secret file {path} is readable by group or others: run chmod 600 {path}"])
    if not text:
        raise ConfigError(what, [f"secret file {path} is empty"])
    return text
