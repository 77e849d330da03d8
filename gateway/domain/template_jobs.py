"""A send job given as a template: the content it is stored with, and the content each attempt hands
its provider. Pure.

The stored content is the job's channel body rendered at accept, plus the gateway's own keys:
`template` (the pin: name, version, locale, params) and `fallback_content` (the body of each channel
the job may fall back to, rendered from the same version, so a fallback from SMS to voice reads the
voice script). Where a provider of the channel's route has ids of the approved template, the body
also carries `template_params` (each declared variable as text, in declared order) and
`provider_templates` ({provider: ids}); an attempt by a provider with ids gets them (and its
`template_code` where the Alibaba Cloud adapter reads it), an attempt by another gets neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.domain.templates import TemplateContent, param_text, render, render_params

# `addresses`: a recipient's job carries each of its channels' address from the profile (channel -> address).
INTERNAL_KEYS = frozenset({"template", "fallback_content", "addresses"})
TEMPLATE_ID_KEYS = frozenset({"template_params", "provider_templates", "template_code"})


@dataclass(frozen=True, slots=True)
class TemplatePin:
    name: str
    version: int
    locale: str | None
    params: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "locale": self.locale, "params": dict(self.params)}


def job_content(
    template: TemplateContent,
    pin: TemplatePin,
    channels: Sequence[str],
    routes: Mapping[str, Sequence[str]],
) -> dict[str, Any] | None:
    """The content to store for a job on channels[0] that may fall back to the others; None when the
    template has no body for channels[0]. `routes`: per channel, the providers it may go by."""
    rendered = render(template, pin.params, pin.locale)
    main = channels[0]
    if main not in rendered:
        return None
    texts = {name: param_text(value) for name, value in render_params(template.variables, pin.params).items()}
    content = _with_provider_ids(rendered[main], template, routes.get(main, ()), texts)
    alternates = {
        channel: _with_provider_ids(rendered[channel], template, routes.get(channel, ()), texts)
        for channel in channels[1:]
        if channel in rendered
    }
    content["template"] = pin.as_json()
    if alternates:
        content["fallback_content"] = alternates
    return content


def _with_provider_ids(
    body: dict[str, Any], template: TemplateContent, providers: Sequence[str], texts: Mapping[str, str]
) -> dict[str, Any]:
    ids = {provider: dict(template.providers[provider]) for provider in providers if provider in template.providers}
    if not ids:
        return body
    return {**body, "template_params": dict(texts), "provider_templates": ids}


def content_for_channel(content: Mapping[str, Any], channel: str, provider: str | None = None) -> dict[str, Any]:
    """What a provider gets for an attempt on `channel`: the body of that channel when the job fell
    back to it from a template's other channel, else the content as stored; never the gateway's keys.

    Given the `provider`, a templated body's ids and params go only to a provider the template has
    ids for (another would send its own default template with them), with its `template_code` where
    the Alibaba Cloud adapter reads it."""
    alternates = content.get("fallback_content")
    if isinstance(alternates, Mapping) and channel in alternates:
        picked = dict(alternates[channel])
    else:
        picked = {key: value for key, value in content.items() if key not in INTERNAL_KEYS}
    registered = picked.get("provider_templates")
    if provider is None or not isinstance(registered, Mapping):
        return picked
    ids = registered.get(provider)
    if not isinstance(ids, Mapping):
        return {key: value for key, value in picked.items() if key not in TEMPLATE_ID_KEYS}
    return {**picked, "template_code": ids["template_code"]} if "template_code" in ids else picked


def channel_addresses(content: Mapping[str, Any]) -> dict[str, str]:
    """The address of each channel a recipient's job may use (empty for a job given one `to`)."""
    addresses = content.get("addresses")
    return dict(addresses) if isinstance(addresses, Mapping) else {}
