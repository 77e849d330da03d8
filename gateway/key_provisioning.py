"""The API keys a start provisions: GATEWAY_API_KEY, or a first key on a first start.

A module of its own so that the supervisor, which prepares the database before any gateway
process starts, does not import the whole gateway (gateway.app) to do it."""

from __future__ import annotations

from gateway.api.auth import SCOPES, key_row, new_key, provisioned_key_id
from gateway.settings import Settings
from gateway.store.port import KeyStore


async def provision_keys(store: KeyStore, settings: Settings) -> str | None:
    """Store GATEWAY_API_KEY if given; on a first start without keys, make one. Returns a new key to show."""
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value()
        row = key_row(key, provisioned_key_id(key), "default", "GATEWAY_API_KEY", SCOPES)
        await store.provision_api_key(row)
        return None
    if await store.count_api_keys() > 0:
        return None
    key, key_id = new_key()
    await store.add_api_key(key_row(key, key_id, "default", "first-start", SCOPES))
    return key
