"""`gateway keys create|list|revoke`: a key made on the command line works at once; revoked, it does not."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.api import auth
from tests.harness import SMS, running_gateway
from tests.processes import gateway_command


async def test_keys_made_listed_and_revoked_on_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    created = gateway_command(db, "keys", "create", "--tenant", "acme", "--name", "crm", "--scopes", "send,read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("gw_") and "shown once" in created.stderr
    key_id = key.split("_")[1]
    listed = gateway_command(db, "keys", "list").stdout
    assert f"{key_id}" in listed and "acme" in listed and "active" in listed and key not in listed
    assert gateway_command(db, "keys", "create", "--scopes", "root").returncode == 2

    async with running_gateway(tmp_path, database_url=f"sqlite:///{db}") as gw:
        headers = {"Authorization": f"Bearer {key}"}
        sent = await gw.session.post(gw.url + "/v1/messages", json=SMS, headers=headers)
        assert sent.status == 202
        revoked = gateway_command(db, "keys", "revoke", key_id)
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        await asyncio.sleep(auth.CACHE_SECONDS + 0.5)  # another process revoked it: honoured within the cache time
        refused = await gw.session.post(gw.url + "/v1/messages", json=SMS, headers=headers)
        assert refused.status == 401
    assert "revoked" in gateway_command(db, "keys", "list").stdout
    assert gateway_command(db, "keys", "revoke", key_id).returncode == 1


async def test_an_expired_key_gets_401_from_its_expiry_on(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    lifetime = 6.0
    async with running_gateway(tmp_path, database_url=f"sqlite:///{db}") as gw:
        # Made while the gateway runs, so its lifetime is not spent on the gateway's start.
        started = time.time()
        created = gateway_command(
            db, "keys", "create", "--tenant", "acme", "--scopes", "send", "--expires-days", str(lifetime / 86400)
        )
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        headers = {"Authorization": f"Bearer {key}"}
        sent = await gw.session.post(gw.url + "/v1/messages", json=SMS, headers=headers)
        assert sent.status == 202  # used while valid, so the key is in the gateway's cache
        await asyncio.sleep(max(0.0, started + lifetime - time.time()) + 4.0)  # the command ran after `started`
        refused = await gw.session.post(gw.url + "/v1/messages", json=SMS, headers=headers)
        assert refused.status == 401
        problem = await refused.json()
        assert problem["type"] == "/problems/unauthorized" and "expired" in problem["detail"]
    assert "expired" in gateway_command(db, "keys", "list").stdout
