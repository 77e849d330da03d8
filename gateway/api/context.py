"""What handlers share: the store, settings, metrics and the idempotency keys in flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.api.auth import Authenticator
from gateway.callback_intake import CallbackIntake
from gateway.content_service import ContentService
from gateway.domain.jobs import JobLimits
from gateway.domain.limits import SleepingPolicy
from gateway.domain.routing import RoutingConfig
from gateway.domain.templates import TemplateContent
from gateway.experiment_assignment import ExperimentAssigner
from gateway.link_redirects import Redirects
from gateway.metrics import Metrics
from gateway.number_pool import NumberPool
from gateway.provider_registry import ProviderRegistry
from gateway.settings import Settings
from gateway.state.base import State
from gateway.store.port import Store


@dataclass
class ApiContext:
    settings: Settings
    store: Store
    state: State
    metrics: Metrics
    auth: Authenticator
    providers: ProviderRegistry
    limits: JobLimits
    content: ContentService | None = None
    click_secret: str = ""
    numbers: NumberPool | None = None
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    sleeping: SleepingPolicy | None = None  # limits.sleeping: who GET /v1/recipients?sleeping= shows
    intake: CallbackIntake | None = None  # what receipts and replies go through once parsed
    experiments: ExperimentAssigner = field(default_factory=ExperimentAssigner)  # variant "auto" at accept
    redirects: Redirects | None = None  # the click redirect's links in memory, click rate, claim tokens
    # (tenant, idempotency key) of requests between accept and commit in this process: a second
    # request with the same key meanwhile gets 409, as the contract says, rather than waiting.
    inflight_keys: set[tuple[str, str]] = field(default_factory=set)
    # Published template versions never change: each parsed once, by (template row id, version).
    template_versions: dict[tuple[int, int], TemplateContent] = field(default_factory=dict)
    # Template rows (archived, latest version) by (tenant, name), each with the monotonic time it was
    # read: jobs reuse one for TEMPLATE_ROW_SECONDS (api/templated_jobs.py) rather than read it each.
    template_rows: dict[tuple[str, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)


CONTEXT = web.AppKey("context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]
