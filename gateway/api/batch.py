"""POST /v1/messages/batch: up to 1,000 send jobs in one request, each judged and answered on its own."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.api.bodies import read_json
from gateway.api.context import ApiContext, context
from gateway.api.messages import (
    in_channel_order,
    job_row,
    json_response,
    key_in_flight_problem,
    key_reused_problem,
    refusal_now,
    request_hash,
)
from gateway.api.problems import Problem, validation_problem
from gateway.api.recipient_jobs import addressed_job, people_of
from gateway.api.templated_jobs import rendered_job
from gateway.contract.base import judge
from gateway.contract.jobs import judge_job
from gateway.contract.messages import BatchRequest
from gateway.domain.jobs import FieldError
from gateway.store.records import AcceptOutcome, Addressing


def _refused(index: int, problem: Problem) -> dict[str, Any]:
    return {"index": index, "status": problem.status, "problem": problem.body()}


def _key_reused_in_batch(prefix: str, first_index: int) -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency key reused",
        f"item {first_index} of this batch uses this idempotency_key with a different body",
        errors=[FieldError(f"{prefix}/idempotency_key", "already used with a different body")],
    )


class _Batch:
    """One batch's items on their way to a single accept: the results so far, the rows to store, and
    the idempotency keys the batch holds while it is in flight."""

    def __init__(self, ctx: ApiContext, tenant_id: str, items: list[Any]) -> None:
        self.ctx = ctx
        self.tenant_id = tenant_id
        self.items = items
        self.now = time.time()
        self.results: list[dict[str, Any] | None] = [None] * len(items)
        self.rows: list[dict[str, Any]] = []
        self.row_index: list[int] = []
        self.first_of_key: dict[str, tuple[int, str]] = {}
        self.same_as: dict[int, int] = {}
        self.claimed: list[tuple[str, str]] = []
        self.templates: dict[str, Any] = {}  # template rows by name, read once per batch
        self.people: dict[str, Addressing | None] = {}  # recipients' profiles by user_id, read once per batch

    async def read_people(self) -> None:
        named = people_of(self.items)
        if named:
            self.people = dict(zip(named, await self.ctx.store.addressings(self.tenant_id, named), strict=True))

    async def judge_item(self, index: int, item: Any) -> None:
        prefix = f"/messages/{index}"
        judged, errors = judge_job(item, self.ctx.limits, prefix, batch=True)
        key = judged.idempotency_key if judged is not None else None  # type: ignore[attr-defined]
        if judged is not None and key is None and self.ctx.settings.api.require_idempotency_key:
            errors = [FieldError(f"{prefix}/idempotency_key", "is required")]
        if judged is None or errors:
            self.results[index] = _refused(index, validation_problem(errors))
            return
        job, choice, refusal = await addressed_job(
            self.ctx, self.tenant_id, judged.to_send_job(), judged.listed, prefix, self.people
        )
        if refusal is None:
            job, wrong = await self.ctx.experiments.assign(
                self.ctx.store, self.tenant_id, in_channel_order(self.ctx, job), prefix
            )
            if wrong is not None:
                self.results[index] = _refused(index, validation_problem([wrong]))
                return
            job, refusal = await rendered_job(self.ctx, self.tenant_id, job, prefix, self.templates)
        body_hash = request_hash({k: v for k, v in item.items() if k != "idempotency_key"})
        refusal = refusal or refusal_now(self.ctx, self.tenant_id, job, self.now, prefix)
        if refusal is not None:
            # A retried item the gateway already took gets its first answer, not today's verdict.
            earlier = await self.ctx.store.find_by_idempotency_key(self.tenant_id, key) if key else None
            if earlier is not None and earlier["request_hash"] == body_hash:
                self.results[index] = {"index": index, "status": 202, "id": earlier["id"], "replayed": True}
            else:
                self.results[index] = _refused(index, refusal)
            return
        if key is not None and not self._hold_key(index, prefix, key, body_hash):
            return
        self.rows.append(job_row(self.ctx, self.tenant_id, job, key, body_hash, self.now, choice))
        self.row_index.append(index)

    def _hold_key(self, index: int, prefix: str, key: str, body_hash: str) -> bool:
        """Whether this item goes on to be stored under its key (the first item of the batch to use it,
        and no other request using it right now)."""
        if key in self.first_of_key:
            first_index, first_hash = self.first_of_key[key]
            if first_hash == body_hash:
                self.same_as[index] = first_index
            else:
                self.results[index] = _refused(index, _key_reused_in_batch(prefix, first_index))
            return False
        flight = (self.tenant_id, key)
        if flight in self.ctx.inflight_keys:
            self.results[index] = _refused(index, key_in_flight_problem())
            return False
        self.first_of_key[key] = (index, body_hash)
        self.ctx.inflight_keys.add(flight)
        self.claimed.append(flight)
        return True

    async def store(self) -> None:
        try:
            outcomes = await self.ctx.store.accept(self.rows) if self.rows else []
        finally:
            for flight in self.claimed:
                self.ctx.inflight_keys.discard(flight)
        for index, outcome in zip(self.row_index, outcomes, strict=True):
            self.results[index] = self._answer(index, outcome)
        for index, first_index in self.same_as.items():
            first = self.results[first_index]
            assert first is not None
            self.results[index] = {**first, "index": index, **({"replayed": True} if first.get("id") else {})}

    def _answer(self, index: int, outcome: AcceptOutcome) -> dict[str, Any]:
        if outcome.kind == "mismatch":
            return _refused(index, key_reused_problem(outcome))
        if outcome.kind == "replay":
            self.ctx.metrics.replayed.inc()
            return {"index": index, "status": 202, "id": outcome.row["id"], "replayed": True}
        self.ctx.metrics.accepted.labels(outcome.row["channel"]).inc()
        return {"index": index, "status": 202, "id": outcome.row["id"]}

    def response(self) -> web.Response:
        accepted = sum(1 for r in self.results if r is not None and r["status"] == 202 and not r.get("replayed"))
        return json_response({"accepted": accepted, "results": self.results})


async def create_batch(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = await ctx.auth.principal(request, "send")
    body = await read_json(request, ctx.settings.api.max_batch_body_bytes)
    if not isinstance(body, dict):
        raise validation_problem([FieldError("/messages", "must be a list of send jobs")])
    envelope, errors = judge(BatchRequest, body)
    limit = ctx.settings.api.max_batch_items
    if envelope is not None and len(envelope.messages) > limit:
        errors = [FieldError("/messages", f"must hold at most {limit} items")]
    if envelope is None or errors:
        raise validation_problem(errors)
    batch = _Batch(ctx, principal.tenant_id, envelope.messages)
    await batch.read_people()
    for index, item in enumerate(batch.items):
        await batch.judge_item(index, item)
    await batch.store()
    return batch.response()
