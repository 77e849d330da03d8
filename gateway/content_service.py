"""The content policy as the running gateway applies it: the current word lists (files plus each
tenant's lists from the store), rebuilt off the event loop when they change, and the rules per route.

Lists are compiled in a worker thread and swapped in whole, so a check never sees half a list and
the event loop never stalls on a 10,000-word rebuild. Every process polls a cheap version stamp of
the tenant lists, so a change made through one API process reaches all workers within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

import structlog

from gateway.background import survived
from gateway.domain.content import (
    ContentReport,
    ContentRules,
    SignatureRule,
    WordLists,
    carrier_list_key,
    check_content,
    check_fields,
    china_marketing_rules,
    load_blocklist_dir,
)
from gateway.domain.content.fields import TEXT_FIELDS
from gateway.domain.content.words import Severity
from gateway.metrics import Metrics
from gateway.settings import ContentSettings
from gateway.store.port import BlocklistStore

log = structlog.get_logger("gateway.content")

# Verdicts kept per process: a campaign sends one copy to many people, and each job's copy is
# checked at accept and again at dispatch. The verdict is a pure function of the texts, the rules,
# the lists and the job's carrier, category and tenant; lists swapped in drop every verdict.
VERDICTS_KEPT = 4096
VerdictKey = tuple[object, ...]


class ContentService:
    def __init__(self, settings: ContentSettings, store: BlocklistStore | None, metrics: Metrics | None = None) -> None:
        """Without a store (the `gateway check` command) only the list files apply."""
        self.metrics = metrics
        self.settings = settings
        self.store = store
        self.default_rules = ContentRules(
            max_segments=settings.max_segments,
            max_links=settings.max_links,
            link_domain_allowlist=settings.link_domain_allowlist,
            hard_max_chars=settings.hard_max_chars,
        )
        self.route_rules: dict[str, ContentRules] = {
            provider: china_marketing_rules(
                self.default_rules,
                unsubscribe_suffixes=route.unsubscribe_suffixes,
                signature=SignatureRule(min_chars=route.signature_min_chars, max_chars=route.signature_max_chars),
            )
            if route.china_marketing
            else self.default_rules
            for provider, route in settings.routes.items()
        }
        self._verdicts: dict[VerdictKey, ContentReport | None] = {}
        self._carrier_words: dict[tuple[object, ...], bool] = {}
        self.words = WordLists.empty()
        self._file_lists: dict[str, tuple[list[str], Severity]] = {}
        self._version: tuple[int, float] | None = None
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None

    @property
    def words(self) -> WordLists:
        return self._words

    @words.setter
    def words(self, words: WordLists) -> None:
        self._words = words
        self._verdicts = {}
        self._carrier_words = {}

    async def start(self) -> None:
        """Raises BlocklistError when the configured lists cannot be read: never run without them."""
        directory = self.settings.blocklist_path
        if directory is not None:
            self._file_lists = await asyncio.to_thread(load_blocklist_dir, directory)
        await self.reload(force=True)
        self._poller = asyncio.create_task(self._poll(), name="content-lists")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def reload(self, force: bool = False) -> None:
        if self.store is None:
            self.words = await asyncio.to_thread(WordLists.build, self._file_lists)
            return
        async with self._lock:
            version = await self.store.blocklists_version()
            if not force and version == self._version:
                return
            lists = dict(self._file_lists)
            for row in await self.store.blocklists():
                lists[f"tenant:{row['tenant_id']}:{row['name']}"] = (row["words"], row["severity"])
            self.words = await asyncio.to_thread(WordLists.build, lists)
            self._version = version
            log.info("content lists loaded", lists=len(lists))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            try:
                await self.reload()
            except Exception as exc:  # noqa: BLE001 - the lists in force stay; the next poll tries again
                survived(self.metrics, "content-lists", "reloading content lists failed; keeping the current ones", exc)

    def route_with_rules(self, providers: Sequence[str]) -> str | None:
        """Of the providers a job may go by, the first whose route has rules of its own (China
        marketing): a job must meet them at accept, since it may go by that route."""
        return next((p for p in providers if self.rules_for(p) is not self.default_rules), None)

    def rules_for(self, provider: str | None) -> ContentRules:
        return self.route_rules.get(provider or "", self.default_rules)

    def check(
        self,
        *,
        channel: str,
        text: str,
        tenant_id: str,
        to: str | None = None,
        category: str = "marketing",
        provider: str | None = None,
    ) -> ContentReport:
        words = self.words
        return check_content(
            text,
            channel=channel,
            rules=self.rules_for(provider),
            words=words,
            carrier=self._carrier(words, to),
            category=category,
            tenant=tenant_id,
        )

    def check_message(
        self,
        *,
        channel: str,
        content: Mapping[str, object],
        tenant_id: str,
        to: str | None = None,
        category: str = "marketing",
        provider: str | None = None,
    ) -> ContentReport | None:
        """A job's content, field by field (an e-mail's subject and text); None when the channel
        carries no text (webhook)."""
        words = self.words
        rules = self.rules_for(provider)
        texts = tuple(map(content.get, TEXT_FIELDS.get(channel, ())))
        carrier = self._carrier(words, to) if self._carrier_matters(words, texts) else None
        key: VerdictKey = (channel, id(rules), carrier, category, tenant_id, texts)
        verdicts = self._verdicts
        if key in verdicts:
            return verdicts[key]
        report = check_fields(
            content, channel=channel, rules=rules, words=words, carrier=carrier, category=category, tenant=tenant_id
        )
        if len(verdicts) >= VERDICTS_KEPT:
            # Emptied whole, not the oldest one by one: a dict's front deletions make each next
            # lookup of the oldest slower, and a campaign's copy is checked again once at most.
            verdicts.clear()
        verdicts[key] = report
        return report

    def _carrier_matters(self, words: WordLists, texts: tuple[object, ...]) -> bool:
        """Whether the texts hold a word of a carrier's list (kept per texts, with the verdicts): most
        do not, and then the recipient's carrier, a phonenumbers lookup per job at accept and again at
        dispatch, changes nothing in the verdict."""
        if not words.has_carrier_lists:
            return False
        known = self._carrier_words.get(texts)
        if known is None:
            known = any(isinstance(text, str) and words.names_carrier_words(text) for text in texts)
            if len(self._carrier_words) >= VERDICTS_KEPT:
                self._carrier_words.clear()
            self._carrier_words[texts] = known
        return known

    @staticmethod
    def _carrier(words: WordLists, to: str | None) -> str | None:
        return carrier_list_key(to) if to and to.startswith("+") and words.has_carrier_lists else None
