"""Schema-based fuzzing of the whole API with schemathesis, driven by the hub's own /api/v1/openapi.json.

Every operation gets valid and invalid input (bounded number of examples): no 5xx, every answer documented,
invalid input refused with 4xx, valid input accepted, and protected operations refuse a missing token.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest

from hub_server.app import API_KEY, create_app
from hub_server.config import HubConfig
from hub_server.store import accounts, provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.conftest import BrokerSetup
from tests.hub.test_api_data import T0, insert_device, insert_window

EXAMPLES_PER_OPERATION = 12

SETTINGS = """
# A pushed agent config is a string to the schema, but the hub refuses text that is not TOML or names another
# device (422 with the reason): valid by the schema, refused by meaning.
[[operations]]
include-operation-id = "push_device_config"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_schemathesis_finds_no_failure(
    tmp_path: Path, managed_broker: tuple[BrokerSetup, Path, HubConfig], aiohttp_server: Any
) -> None:
    _, _, config = managed_broker
    db = Database(config.store.location)
    insert_device(db, "cam-1")
    insert_window(db, "cam-1", T0, {("door", "in", "pedestrian"): 12})
    token = "hubt_" + secrets.token_urlsafe(32)
    with db.write() as conn:
        created = accounts.add_token(conn, "fuzzer", Role.ADMIN, token, "test")
        # Far from the ids the fuzzer tries, so that it does not revoke its own token.
        conn.execute("UPDATE api_tokens SET id = ? WHERE id = ?", (2**52 + 4321, created.id))

    app = create_app(config, database=db, background=False, pages=False)
    # Schemathesis leaves out the operation that serves the document it was pointed at.
    operations = len([op for op in app[API_KEY].operations if op.path != "/openapi.json"])
    server = await aiohttp_server(app)
    tool = Path(sys.executable).with_name("st")
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(SETTINGS)
    process = await asyncio.create_subprocess_exec(
        str(tool),
        "--config-file",
        str(settings),
        "run",
        str(server.make_url("/api/v1/openapi.json")),
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "20260504",
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "10",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=170)
    text = output.decode(errors="replace")
    report = text[text.find("=== FAILURES") :] if "=== FAILURES" in text else text
    assert process.returncode == 0, report[:8000]
    tested = re.search(r"Tested:\s+(\d+)", text)
    assert tested is not None and int(tested.group(1)) == operations, text[-3000:]
    # Valid input reached the real work: the fuzzer provisioned devices on the broker.
    assert provisioning.list_all(db.conn)
