from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from providers.base import CallbackAnswer, InboundRequest, Outbound
from tests.fakes.http import Answer, CallbackSink


@pytest.fixture
async def sink() -> AsyncIterator[CallbackSink]:
    async with CallbackSink() as server:
        yield server


def arrived(sink: CallbackSink, index: int = -1) -> InboundRequest:
    """The callback the sink got, as our receipt endpoint hands it to a provider."""
    recorded = sink.requests[index]
    return InboundRequest(
        method=recorded.method, url=sink.public_url(recorded), headers=recorded.headers, body=recorded.body
    )


def outbound(channel: str, to: str, content: dict[str, object], **kwargs: object) -> Outbound:
    values: dict[str, object] = {
        "reference": "msg_01HZX3",
        "tenant_id": "t1",
        "category": "transactional",
        **kwargs,
    }
    return Outbound(channel=channel, to=to, content=content, **values)  # type: ignore[arg-type]


def as_received(answer: CallbackAnswer) -> Answer:
    """A provider's callback answer as the service receives it over HTTP."""
    return Answer(answer.status, answer.content_type or "application/octet-stream", answer.body)
