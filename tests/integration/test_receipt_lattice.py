"""The receipt lattice, as a hypothesis state machine over the real store.

Submit results (what the worker records after a hand-off) and delivery receipts (what a provider
posts later) reach the store in any order, duplicated, batched together or apart, and for several
messages at once. Whatever the order, after every step:

- each message's status is the highest on the lattice (`RECEIPT_RANK`: delivered >
  undelivered = failed > sent > unknown > sending > queued) among what has been applied to it:
  `sending` from `mark_sending`, every submit result, and every receipt the store could match to
  it (by our reference echoed back, or by the provider's message id once a `sent` result has
  stored it);
- no receipt is lost: every distinct receipt (by its dedup key) is in `receipts` exactly once, a
  duplicate is not stored again, and the summary `apply_receipts` returns counts them right;
- a receipt that arrived before the send was recorded (provider id unknown, no reference) is held
  (stored, `message_id` NULL), and applied when the `sent` result with that provider id lands.

The machine drives the store functions `leases.mark_sending`, `record_outcomes` (and in it
`apply_held_receipts`) and `apply_receipts` (and `_advance_statuses`), each in its own write
transaction through `Store.db.write`, as `Store` itself runs them, on a fresh SQLite file per
example (a copy of one made at the schema once). The rules are synchronous; each one runs its
coroutine to completion on an event loop the machine owns, so a step is one commit, as when a
hand-off or a receipt request finishes. The Store's group-commit timers are left out (they only
decide which items share a commit; a rule that draws several items puts them in one commit
itself): with them every step waits 2-5 ms and shrinking a failure took minutes. No gateway,
worker or sandbox runs, so nothing else touches the rows.

Two machines:

- `TestLattice` (must pass): submit results are `sent` (the hand-off succeeded; repeated, as when
  the recovery loop resolves the same hand-off again) and receipts are `sent`, `delivered` or
  `undelivered`, racing the `sent` commit both ways.
- `TestLatticeAnyResult`: submit results may also be `unknown` (the provider call timed out) or
  `failed`, and receipts may be `failed`. It found that `record_outcomes` let a late result pull a
  receipt's status down (a late `sent` over a `failed` receipt, a late `unknown` or `failed` or
  retry over `delivered`, a late `unknown` or retry over a `sent` receipt - the retry would have
  sent the message twice); fixed, and the orders are pinned in
  `test_a_late_submit_result_never_lowers_a_receipt`.

How it was checked that `TestLattice` can fail: in a scratch copy of the tree (copied to /tmp,
this one untouched), flipping the comparison in `domain/receipts.receipt_may_replace` (then in
`receipts._advance_statuses`) from `>` to `<`
makes it fail within the first examples (a later, lower receipt overwrites `delivered`); dropping
the `apply_held_receipts` call at the end of `record_outcomes` fails it on a held receipt that
is never applied; and counting a repeat as fresh (the `seen` filter in `apply_receipts`
removed) fails it on the first duplicate receipt (summary says held, not duplicate). Shrinking
such a failure takes about a minute; the first failing example shows in seconds.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import shutil
import tempfile
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.domain.models import RECEIPT_RANK, Status
from gateway.domain.receipts import status_reason
from gateway.store.records import Outcome, ReceiptRecord, SendingMark
from gateway.store.schema import messages, receipts
from gateway.store.sql import leases
from gateway.store.sql import messages as message_sql
from gateway.store.sql import outcomes as outcome_sql
from gateway.store.sql import receipts as receipt_sql
from gateway.store.store import SqlStore

T = TypeVar("T")
MESSAGES = 3
PROVIDER = "sandbox"
TENANT = "default"


def rank(status: str) -> int:
    return RECEIPT_RANK[Status(status)]


def message_row(message_id: str, now: float) -> dict[str, Any]:
    """A queued SMS job as the accept path stores it."""
    return {
        "id": message_id,
        "tenant_id": TENANT,
        "idempotency_key": None,
        "request_hash": None,
        "idempotency_expires_at": None,
        "channel": "sms",
        "to_addr": "+8613800000000",
        "content": '{"text":"hello"}',
        "category": "marketing",
        "user_id": None,
        "campaign": "lattice",
        "variant": None,
        "send_at": None,
        "expires_at": None,
        "fallback": None,
        "metadata": None,
        "tz": None,
        "status": "queued",
        "reason": None,
        "provider": None,
        "provider_message_id": None,
        "sender": None,
        "attempt_count": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_until": None,
        "error_code": None,
        "error_message": None,
        "created_at": now,
        "updated_at": now,
    }


def submit_result(message_id: str, sid: str, status: str, now: float) -> Outcome:
    """A hand-off's result as the worker builds it (`Worker._outcome_of` / `_resolve_unknown`)."""
    if status == "sent":
        return Outcome(
            message_id,
            TENANT,
            "sent",
            now,
            reason="provider.accepted",
            attempt=1,
            attempt_outcome="sent",
            provider=PROVIDER,
            provider_message_id=sid,
        )
    if status == "unknown":
        return Outcome(
            message_id,
            TENANT,
            "unknown",
            now,
            reason="unknown.handoff",
            attempt=1,
            attempt_outcome="unknown",
            provider=PROVIDER,
            error_message="TimeoutError: provider call ended without an answer",
        )
    return Outcome(
        message_id,
        TENANT,
        "failed",
        now,
        reason="provider.permanent.21610",
        attempt=1,
        attempt_outcome="failed",
        provider=PROVIDER,
        error_kind="permanent",
        error_code="21610",
    )


def mark(message_id: str, now: float) -> SendingMark:
    return SendingMark(message_id, TENANT, 1, "sms", PROVIDER, "+10000", now)


class Message:
    """What the model knows of one message: what reached the store, and what must follow from it."""

    def __init__(self, message_id: str, sid: str, echoes_reference: bool) -> None:
        self.id = message_id
        self.sid = sid  # the provider's id for it; the store learns it from a `sent` result
        self.echoes_reference = echoes_reference  # its receipts carry our id (the sandbox's do)
        self.marked = False
        self.sid_known = False
        self.applied: list[str] = ["queued"]  # every status applied to it, in order
        self.receipts: dict[str, str] = {}  # dedup key -> status, every distinct receipt posted
        self.held: list[str] = []  # statuses of receipts stored but not matched yet

    def matchable(self) -> bool:
        return self.sid_known or self.echoes_reference


@functools.cache
def schema_file() -> Path:
    """A database at this build's schema, made once per test process: each example starts from a
    copy of it (creating the schema anew was a quarter of the machines' time)."""
    folder = tempfile.mkdtemp(prefix="lattice-schema-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "gateway.db"
    loop = asyncio.new_event_loop()
    store = SqlStore.open(f"sqlite:///{path}", synchronous="OFF")
    try:
        loop.run_until_complete(store.migrate())
    finally:
        loop.run_until_complete(store.close())
        loop.close()
    return path


class ReceiptLattice(RuleBasedStateMachine):
    submit_statuses: tuple[str, ...] = ("sent",)
    receipt_statuses: tuple[str, ...] = ("sent", "delivered", "undelivered")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="lattice-"))
        shutil.copyfile(schema_file(), self.tmp / "gateway.db")
        self.store = SqlStore.open(f"sqlite:///{self.tmp / 'gateway.db'}", synchronous="OFF")
        self.messages: list[Message] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(echoes=st.lists(st.booleans(), min_size=MESSAGES, max_size=MESSAGES))
    def accept(self, echoes: list[bool]) -> None:
        """Three queued messages; for each, whether its provider echoes our reference in receipts."""
        now = time.time()
        for echo in echoes:
            tag = uuid.uuid4().hex
            self.messages.append(Message(f"msg_{tag[:24]}", f"SBX{tag}", echo))
        outcomes = self.run(self.store.accept([message_row(m.id, now) for m in self.messages]))
        assert [o.kind for o in outcomes] == ["accepted"] * MESSAGES

    # --- the worker ------------------------------------------------------------------------------

    @precondition(lambda self: any(not m.marked for m in self.messages))
    @rule(data=st.data())
    def mark_sending(self, data: st.DataObject) -> None:
        """The worker commits `sending` before the hand-off (marks admitted together share it)."""
        unmarked = [i for i, m in enumerate(self.messages) if not m.marked]
        chosen = data.draw(st.lists(st.sampled_from(unmarked), min_size=1, unique=True), label="mark")
        now = time.time()
        self.run(self.store.db.write(leases.mark_sending, [mark(self.messages[i].id, now) for i in chosen], now + 30))
        for i in chosen:
            self.messages[i].marked = True
            self.messages[i].applied.append("sending")

    @precondition(lambda self: any(m.marked for m in self.messages))
    @rule(data=st.data())
    def submit_results(self, data: st.DataObject) -> None:
        """Hand-off results in one commit, possibly repeated (the recovery loop resolving a
        hand-off the worker also resolves)."""
        marked = [i for i, m in enumerate(self.messages) if m.marked]
        picked = data.draw(
            st.lists(st.tuples(st.sampled_from(marked), st.sampled_from(self.submit_statuses)), min_size=1, max_size=3),
            label="results (message, status)",
        )
        now = time.time()
        outcomes = [submit_result(self.messages[i].id, self.messages[i].sid, status, now) for i, status in picked]
        self.run(self.store.db.write(outcome_sql.record_outcomes, outcomes))
        for i, status in picked:
            self.messages[i].applied.append(status)
            if status == "sent":
                self.messages[i].sid_known = True
        for m in self.messages:
            if m.sid_known and m.held:
                m.applied.extend(m.held)  # held receipts land with the provider id
                m.held = []

    # --- the provider ----------------------------------------------------------------------------

    @rule(data=st.data())
    def post_receipts(self, data: st.DataObject) -> None:
        """One receipt request: any statuses, any messages, duplicates within and across requests.

        A provider that echoes our reference only reports after the hand-off was marked (it
        cannot know the message before); the others may report at any time, and are held until a
        `sent` result names their provider id.
        """
        can_report = [i for i, m in enumerate(self.messages) if m.marked or not m.echoes_reference]
        if not can_report:
            return
        picked = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(can_report),
                    st.sampled_from(self.receipt_statuses),
                    st.sampled_from((None, "30003")),
                ),
                min_size=1,
                max_size=4,
            ),
            label="receipts (message, status, error code)",
        )
        batch = [
            ReceiptRecord(
                provider=PROVIDER,
                provider_message_id=self.messages[i].sid,
                status=status,
                reference=self.messages[i].id if self.messages[i].echoes_reference else None,
                error_code=None if status in ("sent", "delivered") else code,
                occurred_at=time.time(),
            )
            for i, status, code in picked
        ]
        summary = self.run(self.store.db.write(receipt_sql.apply_receipts, batch, time.time()))
        already = {key for m in self.messages for key in m.receipts}
        fresh: dict[str, tuple[Message, str]] = {}
        for (i, status, _), record in zip(picked, batch, strict=True):
            if record.dedup_key not in already:
                fresh.setdefault(record.dedup_key, (self.messages[i], status))
        matched = sum(1 for m, _ in fresh.values() if m.matchable())
        assert summary == {"applied": matched, "duplicate": len(batch) - len(fresh), "held": len(fresh) - matched}
        for key, (m, status) in fresh.items():
            m.receipts[key] = status
            (m.applied if m.matchable() else m.held).append(status)

    # --- what must hold after every step ---------------------------------------------------------

    @invariant()
    def the_record_agrees(self) -> None:
        if not self.messages:
            return

        def read(conn: Any) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
            rows = {r["id"]: dict(r) for r in conn.execute(sa.select(messages)).mappings()}
            return rows, [dict(r) for r in conn.execute(sa.select(receipts)).mappings()]

        rows, stored = self.run(self.store.db.read(read))
        for m in self.messages:
            status = rows[m.id]["status"]
            highest = max(rank(s) for s in m.applied)
            assert rank(status) == highest and status in m.applied, (
                f"message {self.messages.index(m)}: status {status!r} (rank {rank(status)}), but {m.applied}"
                f" were applied in that order (highest rank {highest}); held: {m.held}"
            )
            if m.sid_known:
                assert rows[m.id]["provider_message_id"] == m.sid
        # No receipt lost, none stored twice, each attached to its message once anything matches it.
        keys = [r["dedup_key"] for r in stored]
        assert len(keys) == len(set(keys)), "a receipt was stored twice"
        expected = {key: (m, status) for m in self.messages for key, status in m.receipts.items()}
        assert set(keys) == set(expected), f"lost: {set(expected) - set(keys)}, unexpected: {set(keys) - set(expected)}"
        for row in stored:
            m, status = expected[row["dedup_key"]]
            assert (row["status"], row["provider_message_id"]) == (status, m.sid)
            assert row["message_id"] == (m.id if m.matchable() else None), (row, m.sid_known, m.echoes_reference)


class AnyResultLattice(ReceiptLattice):
    submit_statuses = ("sent", "sent", "unknown", "failed")
    receipt_statuses = ("sent", "delivered", "undelivered", "failed")


ReceiptLattice.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Known to fail (see the module docstring): finding one failure is enough, shrinking it costs time.
AnyResultLattice.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    database=None,
)


class TestLattice(ReceiptLattice.TestCase):
    pass


# Not strict: gateway/store/sql/outcomes.py was being changed in parallel (a fix that keeps delivered,
# undelivered and failed against later results was in the working tree when this was written);
# drop these markers once `record_outcomes` keeps the whole lattice.
class TestLatticeAnyResult(AnyResultLattice.TestCase):
    pass


# --- the orders the state machine found, pinned --------------------------------------------------


@pytest.mark.parametrize(
    ("receipt", "result"),
    [
        ("delivered", "sent"),
        ("undelivered", "sent"),
        ("failed", "sent"),
        ("delivered", "unknown"),
        ("sent", "unknown"),
        ("delivered", "failed"),
    ],
)
async def test_a_late_submit_result_never_lowers_a_receipt(database_url: str, receipt: str, result: str) -> None:
    """The sandbox echoes our id, so its receipt can land (and be applied) before the worker has
    committed the hand-off's result; that result must then not move the status down."""
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        message_id, sid = f"msg_{uuid.uuid4().hex[:24]}", f"SBX{uuid.uuid4().hex}"
        await store.accept([message_row(message_id, now)])
        await store.db.write(leases.mark_sending, [mark(message_id, now)], now + 30)
        code = None if receipt in ("sent", "delivered") else "30003"
        early = ReceiptRecord(PROVIDER, sid, receipt, reference=message_id, error_code=code)
        assert await store.db.write(receipt_sql.apply_receipts, [early], now) == {
            "applied": 1,
            "duplicate": 0,
            "held": 0,
        }
        await store.db.write(outcome_sql.record_outcomes, [submit_result(message_id, sid, result, time.time())])
        stored = await store.db.read(message_sql.get_message, TENANT, message_id)
        assert stored is not None
        assert stored["status"] == receipt, f"{receipt} receipt, then a {result} result: {stored['status']}"
        # The receipt's reason and error code stay with the status it set: the failure report
        # groups by them, and a result without a code must not blank the code out.
        assert (stored["reason"], stored["error_code"]) == (status_reason(receipt, code), code)
    finally:
        await store.close()


async def _sms_that_fell_back_to_voice(store: SqlStore, now: float) -> tuple[str, str]:
    """An SMS job sent at `now` (provider id returned) that got no receipt within 60 s and moved to voice."""
    message_id, sid = f"msg_{uuid.uuid4().hex[:24]}", f"SBX{uuid.uuid4().hex}"
    await store.accept([{**message_row(message_id, now), "fallback": "voice"}])
    await store.db.write(leases.mark_sending, [mark(message_id, now)], now + 30)
    deadline = now + 60
    sent = submit_result(message_id, sid, "sent", now)
    sent.next_attempt_at = deadline
    await store.db.write(outcome_sql.record_outcomes, [sent])
    assert await store.db.read(outcome_sql.unreceipted_sends, ["sms"], now + 59, 10) == []
    [due] = await store.db.read(outcome_sql.unreceipted_sends, ["sms"], now + 61, 10)
    assert due.id == message_id and due.next_attempt_at == deadline
    move = Outcome(
        message_id, TENANT, "queued", now + 61, reason="fallback.no_receipt", channel="voice",
        fallback=None, next_attempt_at=now + 61, detail={"from": "sms", "to": "voice"},
    )  # fmt: skip
    assert await store.db.write(outcome_sql.fall_back_unreceipted, [(move, deadline)]) == [message_id]
    assert await store.db.write(outcome_sql.fall_back_unreceipted, [(move, deadline)]) == [], "moved once"
    return message_id, sid


async def _apply_late_receipt(store: SqlStore, sid: str, receipt: str, at: float) -> None:
    """The SMS's receipt, naming only its provider id (no reference): it must be matched, not held."""
    code = None if receipt in ("sent", "delivered") else "30003"
    late = ReceiptRecord(PROVIDER, sid, receipt, error_code=code)
    assert await store.db.write(receipt_sql.apply_receipts, [late], at) == {"applied": 1, "duplicate": 0, "held": 0}


@pytest.mark.parametrize("receipt", ["delivered", "undelivered", "failed", "sent"])
async def test_a_late_receipt_for_the_channel_a_job_fell_back_from_changes_nothing(
    database_url: str, receipt: str
) -> None:
    """No receipt came in time, so the job moved from sms to voice; then the SMS receipt arrives,
    matched by the SMS's provider id, while the call is queued: the job must stay queued for its
    call (a `delivered` would have cancelled it; `undelivered` or `failed` would end it)."""
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        message_id, sid = await _sms_that_fell_back_to_voice(store, now)
        await _apply_late_receipt(store, sid, receipt, now + 62)
        stored = await store.db.read(message_sql.get_message, TENANT, message_id)
        assert stored is not None
        assert (stored["status"], stored["channel"], stored["reason"]) == ("queued", "voice", "fallback.no_receipt")
        events = [(e["type"], e["status"], e["reason"]) for e in stored["events"]]
        assert events[-2:] == [
            ("status", "queued", "fallback.no_receipt"),
            ("receipt.earlier_channel", None, f"receipt.{receipt}"),
        ]
        assert [r["provider_message_id"] for r in stored["receipts"]] == [sid]
        claimed = await store.db.write(leases.claim_due, "w", now + 63, 10, now + 93)
        assert [job.id for job in claimed] == [message_id], "the call is still due"
    finally:
        await store.close()


@pytest.mark.parametrize("receipt", ["delivered", "undelivered"])
async def test_a_late_receipt_without_our_id_finds_the_job_after_its_next_channel_was_tried(
    database_url: str, receipt: str
) -> None:
    """The job fell back from sms to voice and the call went out (the message now carries the call's
    provider id); then the SMS receipt arrives with only the SMS's provider id. It is matched through
    the SMS attempt and kept as an earlier-channel receipt, not held forever as unknown."""
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        message_id, sms_sid = await _sms_that_fell_back_to_voice(store, now)
        call_sid = "CALL-1"
        call = SendingMark(message_id, TENANT, 2, "voice", PROVIDER, "+10000", now + 62)
        await store.db.write(leases.mark_sending, [call], now + 92)
        call_sent = Outcome(
            message_id, TENANT, "sent", now + 62, reason="provider.accepted", attempt=2, attempt_outcome="sent",
            provider=PROVIDER, provider_message_id=call_sid, next_attempt_at=now + 120,
        )  # fmt: skip
        await store.db.write(outcome_sql.record_outcomes, [call_sent])

        await _apply_late_receipt(store, sms_sid, receipt, now + 63)
        stored = await store.db.read(message_sql.get_message, TENANT, message_id)
        assert stored is not None
        assert (stored["status"], stored["channel"], stored["provider_message_id"]) == ("sent", "voice", call_sid)
        [earlier] = [e for e in stored["events"] if e["type"] == "receipt.earlier_channel"]
        assert earlier["reason"] == f"receipt.{receipt}"
        assert orjson.loads(earlier["detail"])["channel"] == "sms"
    finally:
        await store.close()


async def test_one_call_with_an_earlier_channel_receipt_and_an_advancing_one_applies_each(database_url: str) -> None:
    """A provider's callback names a job that fell back (sms -> voice) and another that is simply
    sent: in one call, the first keeps its status and gets its earlier-channel entry, the second
    moves to delivered with its own status event; each event names its own message."""
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        fell_back, old_sid = await _sms_that_fell_back_to_voice(store, now)
        plain, plain_sid = f"msg_{uuid.uuid4().hex[:24]}", f"SBX{uuid.uuid4().hex}"
        await store.accept([message_row(plain, now)])
        await store.db.write(leases.mark_sending, [mark(plain, now)], now + 30)
        await store.db.write(outcome_sql.record_outcomes, [submit_result(plain, plain_sid, "sent", now)])

        both = [ReceiptRecord(PROVIDER, old_sid, "delivered"), ReceiptRecord(PROVIDER, plain_sid, "delivered")]
        applied = await store.db.write(receipt_sql.apply_receipts, both, now + 62)

        assert applied == {"applied": 2, "duplicate": 0, "held": 0}
        moved = await store.db.read(message_sql.get_message, TENANT, fell_back)
        sent = await store.db.read(message_sql.get_message, TENANT, plain)
        assert moved is not None and sent is not None
        assert (moved["status"], moved["channel"]) == ("queued", "voice")
        last = moved["events"][-1]
        assert (last["type"], last["reason"]) == ("receipt.earlier_channel", "receipt.delivered")
        assert sent["status"] == "delivered"
        assert [(e["type"], e["status"]) for e in sent["events"]][-1] == ("status", "delivered")
        assert not any(e["type"] == "receipt.earlier_channel" for e in sent["events"])
    finally:
        await store.close()


async def test_a_receipt_before_the_deadline_keeps_the_job_on_its_channel(database_url: str) -> None:
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        message_id, sid = f"msg_{uuid.uuid4().hex[:24]}", f"SBX{uuid.uuid4().hex}"
        await store.accept([{**message_row(message_id, now), "fallback": "voice"}])
        await store.db.write(leases.mark_sending, [mark(message_id, now)], now + 30)
        sent = submit_result(message_id, sid, "sent", now)
        sent.next_attempt_at = now + 60
        await store.db.write(outcome_sql.record_outcomes, [sent])
        [due] = await store.db.read(
            outcome_sql.unreceipted_sends, ["sms"], now + 61, 10
        )  # seen, then the receipt lands
        await store.db.write(receipt_sql.apply_receipts, [ReceiptRecord(PROVIDER, sid, "delivered")], now + 61)
        move = Outcome(message_id, TENANT, "queued", now + 61, reason="fallback.no_receipt", channel="voice")
        assert await store.db.write(outcome_sql.fall_back_unreceipted, [(move, due.next_attempt_at)]) == []
        stored = await store.db.read(message_sql.get_message, TENANT, message_id)
        assert stored is not None and (stored["status"], stored["channel"]) == ("delivered", "sms")
    finally:
        await store.close()


async def test_jobs_that_cannot_fall_back_do_not_crowd_out_those_that_can(database_url: str) -> None:
    store = SqlStore.open(database_url, synchronous="OFF")
    try:
        await store.migrate()
        now = time.time()
        stuck = [
            {**message_row(f"msg_{uuid.uuid4().hex[:24]}", now - 100), "status": "sent", "fallback": "email"}
            for _ in range(20)
        ]
        movable = {**message_row(f"msg_{uuid.uuid4().hex[:24]}", now), "status": "sent", "fallback": "push,voice"}
        await store.accept([*stuck, movable])
        due = await store.db.read(outcome_sql.unreceipted_sends, ["sms", "voice"], now + 1, 5)
        assert [job.id for job in due] == [movable["id"]], "an e-mail fallback cannot take the number"
    finally:
        await store.close()
