"""A send job for a `user_id` without `to`: its channels chosen at accept from the recipient's profile,
preferences and the configured providers (gateway/domain/recipients.allowed_channels), each with the
profile's address, kept with the job's content so dispatch and fallback need no profile read. A job
none of whose channels can reach the person is refused with a 422 naming each channel and why."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateway.api.context import ApiContext
from gateway.api.problems import Problem, validation_problem
from gateway.contract.base import Label
from gateway.domain.jobs import FieldError
from gateway.domain.models import Channel, SendJob
from gateway.domain.recipients import allowed_channels, choice_detail, refusal_text
from gateway.domain.routing import cheapest_first
from gateway.store.records import Addressing


def _pointer(prefix: str, index: int, listed: bool) -> str:
    if listed:
        return f"{prefix}/channels/{index}"
    return f"{prefix}/channel" if index == 0 else f"{prefix}/fallback/{index - 1}"


_LABEL = TypeAdapter(Label)


def _label(value: Any) -> str | None:
    try:
        return str(_LABEL.validate_python(value, strict=True))
    except ValidationError:
        return None


def people_of(items: Sequence[Any]) -> list[str]:
    """The user_ids a batch's items address without `to`, each once, read together before the items are
    judged; only valid ones (an item with another is refused without a read)."""
    named = (_label(item.get("user_id")) for item in items if isinstance(item, dict) and item.get("to") is None)
    return list(dict.fromkeys(user_id for user_id in named if user_id is not None))


async def addressed_job(
    ctx: ApiContext,
    tenant_id: str,
    job: SendJob,
    listed: bool,
    prefix: str = "",
    known: Mapping[str, Addressing | None] | None = None,
) -> tuple[SendJob, dict[str, Any] | None, Problem | None]:
    """The job with its channels in the order they will be tried and each one's address, the detail of
    its `channel.chosen` event; or the refusal. `listed`: the request gave `channels` (errors name it);
    `known`: people already read, by user_id (a batch's)."""
    if job.user_id is None or job.to:
        return job, None, None
    if known is not None and job.user_id in known:
        found = known[job.user_id]
    else:
        found = await ctx.store.addressing(tenant_id, job.user_id)
    if found is None:
        return job, None, validation_problem([FieldError(f"{prefix}/user_id", f"no recipient {job.user_id!r}")])
    profile, preferences = found
    candidates = [job.channel.value, *(c.value for c in job.fallback)]
    defaults = ctx.settings.tenant(tenant_id).preferences
    category = job.category.value
    choices = allowed_channels(profile, preferences, defaults, category, candidates, served=ctx.providers.channels)
    addresses = {c.channel: c.address for c in choices if c.allowed and c.address}
    if not addresses:
        errors = [FieldError(_pointer(prefix, i, listed), refusal_text(c, category)) for i, c in enumerate(choices)]
        return job, None, validation_problem(errors)
    usable = [c for c in candidates if c in addresses]
    if job.channel_order == "cost":
        first, rest = cheapest_first(usable[0], usable[1:], ctx.routing.costs, addressed=usable)
        usable = [first, *rest]
    chosen = dataclasses.replace(
        job,
        channel=Channel(usable[0]),
        to=addresses[usable[0]],
        fallback=tuple(Channel(c) for c in usable[1:]),
        content={**job.content, "addresses": addresses},
    )
    return chosen, choice_detail(choices, usable, job.channel_order), None
