"""Which links a message carries out: tracked per message, per campaign, or as written, per route."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any, Literal

from gateway.domain.models import Job
from gateway.domain.tracking import campaign_token, new_token, rewrite_links

LinkMode = Literal["per_message", "per_campaign", "off"]

# Where links can be in each channel's content; voice is spoken, so it keeps none.
TRACKED_FIELDS = {"sms": ("text",), "push": ("body",), "email": ("text",), "voice": ()}

# A link row that belongs to a campaign and variant rather than one message.
CAMPAIGN_LINK = ""

# A registered template's variables, sent to the provider in place of the text (template_jobs.py):
# a link given as a variable is what the recipient gets, so it is tracked like one in the text.
TEMPLATE_PARAMS = "template_params"


class LinkTracker:
    def __init__(self, base: str, mode: LinkMode, route_modes: Mapping[str, LinkMode], secret: bytes) -> None:
        self.base = base
        self.default_mode = mode
        self.route_modes = dict(route_modes)
        self.secret = secret

    def mode(self, provider: str) -> LinkMode:
        return self.route_modes.get(provider, self.default_mode)

    @property
    def enabled(self) -> bool:
        return self.default_mode != "off" or any(m != "off" for m in self.route_modes.values())

    def track(self, job: Job, content: dict[str, Any], provider: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The content with its links made short tracked links, and the link rows to store."""
        mode = self.mode(provider)
        if mode == "off":
            return content, []
        per_campaign = mode == "per_campaign"
        make_token = (
            partial(campaign_token, self.secret, job.tenant_id, job.campaign, job.variant)
            if per_campaign
            else new_token
        )
        # One token per destination in a message: a link in a template variable and the same link in
        # the rendered text are one link, clicked through either.
        tokens: dict[str, str] = {}

        def token_for(url: str) -> str:
            if url not in tokens:
                tokens[url] = make_token(url)
            return tokens[url]

        content = dict(content)
        for name in TRACKED_FIELDS.get(job.channel, ()):
            text = content.get(name)
            if isinstance(text, str):
                content[name], _ = rewrite_links(text, self.base, token_for)
        params = content.get(TEMPLATE_PARAMS)
        if isinstance(params, Mapping):
            content[TEMPLATE_PARAMS] = {
                key: rewrite_links(value, self.base, token_for)[0] if isinstance(value, str) else value
                for key, value in params.items()
            }
        now = time.time()
        rows = [
            {
                "token": token,
                "tenant_id": job.tenant_id,
                "message_id": CAMPAIGN_LINK if per_campaign else job.id,
                "url": url,
                "campaign": job.campaign,
                "variant": job.variant,
                "created_at": now,
            }
            for url, token in tokens.items()
        ]
        return content, rows
