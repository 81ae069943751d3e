"""Two hub instances on one PostgreSQL store: a page served by one shows what the other's ingest heard."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hub_server.app import create_app
from hub_server.appkeys import LIVE_KEY
from hub_server.config import HubConfig
from hub_server.ingest.fanout import fanout_ctx
from hub_server.store import provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests import postgres
from tests.hub.conftest import ClientFactory, add_user, hub_config_data
from tests.web.test_off_loop import _next_update
from tests.web.test_pages import log_in


async def test_a_page_on_one_instance_shows_an_event_the_other_heard(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    postgres.require()
    data = hub_config_data(tmp_path / "hub")
    data["store"] = {"url": postgres.fresh_database()}
    config = HubConfig.model_validate(data)
    db_a, db_b = Database(config.store.location, refuse_on_loop=True), Database(config.store.location)
    add_user(db_a, "olga", Role.OPERATOR)
    with db_a.write() as conn:
        provisioning.add(conn, "dev-a", "test-street", "dev-a", "test")
    # The ingest is left out (no broker here): the notes are published as it publishes them.
    app_a = create_app(config, database=db_a, background=False, extra_contexts=[fanout_ctx])
    app_b = create_app(config, database=db_b, background=False, extra_contexts=[fanout_ctx])
    client_a = await aiohttp_client(app_a)
    await aiohttp_client(app_b)  # started (with its fan-out) as a second instance is; its pages are not used
    await log_in(client_a, "olga")
    # Both heard dev-a come online; then it leaves while connected to instance B.
    for app in (app_a, app_b):
        app[LIVE_KEY].seen("dev-a", "test-street", online=True)
    stream = await client_a.get("/live?lang=en")
    try:
        assert (await stream.content.readuntil(b"\n\n")) == b"retry: 3000\n\n"
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"event: hello")
        app_b[LIVE_KEY].changed("dev-a", "test-street", online=False)
        app_b[LIVE_KEY].notify(
            "availability", {"device": "dev-a", "site": "test-street", "online": False, "reason": "will"}
        )
        update: dict[str, Any] = await asyncio.wait_for(_next_update(stream), 30)
    finally:
        stream.close()
    assert update["kind"] == "availability"
    assert update["state"]["status-dev-a"] == "offline"  # not instance A's own, older, knowledge
    assert update["text"]["online-count"] == "0/1"
