"""The click redirect's working parts: links kept in memory once looked up (a destination never changes
once registered), the per-IP click rate, and the destination with attribution and a claim token."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from gateway.domain.claims import Claim, mint, with_claim
from gateway.domain.limits import US_PER_S, emission_interval_us, gcra
from gateway.domain.tracking import with_attribution
from gateway.settings import LinkSettings
from gateway.store.port import TrackingStore

LINK_CACHE_SIZE = 100_000
PEERS_KEPT = 100_000  # client IPs whose rate is tracked; beyond it, the idle ones are forgotten


class ClickRate:
    """Clicks per client IP in this process: GCRA in memory (a Redis round trip per click would cost
    more than the click). Returns the seconds to wait, or 0 when the click may go."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._interval_us = emission_interval_us(rate) if rate > 0 else 0
        self._tat_us: dict[str, int] = {}

    def wait(self, peer: str) -> float:
        if self.rate <= 0:
            return 0.0
        now_us = int(time.monotonic() * US_PER_S)
        decision = gcra(self._tat_us.get(peer, 0), now_us, self._interval_us, self.burst, 1)
        if not decision.allowed:
            return decision.retry_after_us / US_PER_S
        if len(self._tat_us) >= PEERS_KEPT and peer not in self._tat_us:
            self._tat_us = {p: tat for p, tat in self._tat_us.items() if tat > now_us}
        self._tat_us[peer] = decision.tat_us
        return 0.0


class Redirects:
    def __init__(self, store: TrackingStore, settings: LinkSettings, claim_secret: bytes) -> None:
        self.store = store
        self.settings = settings
        self.claim_secret = claim_secret
        self.rate = ClickRate(settings.clicks_per_ip_per_second, settings.click_burst)
        # token -> (link, the destination it redirects to): both fixed once the link is registered.
        self._links: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()

    async def link(self, token: str) -> tuple[dict[str, Any], str] | None:
        """The registered link and its destination; looked up once per process, then kept (the least
        recently used dropped)."""
        found = self._links.get(token)
        if found is not None:
            self._links.move_to_end(token)
            return found
        row = await self.store.find_link(token)
        if row is None:
            return None
        found = self._links[token] = (row, self.destination(row))
        if len(self._links) > LINK_CACHE_SIZE:
            self._links.popitem(last=False)
        return found

    def destination(self, link: dict[str, Any]) -> str:
        url: str = link["url"]
        if self.settings.append_utm:
            url = with_attribution(url, link["campaign"], link["variant"])
        if self.settings.claim_tokens and link["message_id"]:
            # Fixed from the link's creation, so every click of one message carries the same token.
            expires = int(link["created_at"] + self.settings.claim_ttl_seconds)
            url = with_claim(url, mint(self.claim_secret, Claim(link["message_id"], link["campaign"], expires)))
        return url
