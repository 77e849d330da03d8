"""Sender numbers: the pools, their health, and the operator's hand on them (flag, restore, retire).

What a sender may be depends on its kind (an E.164 number, a short code, an alphanumeric id), so a
new number is one model per kind; the handler picks it by `kind` as the document's union does."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, StringConstraints, TypeAdapter

from gateway.contract.base import LABEL_PATTERN, Body, Reply, absent, explain_pattern, judge
from gateway.contract.jobs import PhoneNumber
from gateway.contract.operations import Answer, Named, Operation, Query, auth_answers, body_answers, problem
from gateway.domain.jobs import FieldError
from gateway.domain.numbers import NumberState, SenderKind

MAX_DAILY_CAP = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
# The countries column holds at most 400 characters: 133 codes and their commas.
MAX_COUNTRIES = 133
POOL_PATTERN = explain_pattern(r"^[A-Za-z0-9_.\-]{1,64}$", "must be 1-64 letters, digits, '.', '_' or '-'")
NUMBER_ID_PATTERN = r"^num_[0-9a-f]{16}$"
KINDS = tuple(k.value for k in SenderKind)
STATES = tuple(s.value for s in NumberState)
Channel = Literal["sms", "voice"]
Category = Literal["marketing", "transactional"]
State = Literal[STATES]  # type: ignore[valid-type]
Iso = Annotated[str, Field(json_schema_extra={"format": "date-time"})]

PoolName = Annotated[str, StringConstraints(pattern=POOL_PATTERN), Field(examples=["us-sms"])]
# Which names are configured is the gateway's configuration: the handler checks it (a `format`).
ProviderName = Annotated[
    str,
    Field(
        description="the name of a provider configured on this gateway",
        json_schema_extra={"format": "provider-name"},
        examples=["sandbox"],
    ),
]
Country = Annotated[
    str,
    StringConstraints(pattern=explain_pattern(r"^[A-Za-z]{2}$", "must be an ISO 3166 alpha-2 country code")),
    Field(examples=["US"]),
]
ANY_CAP = f"must be a whole number from 1 to {MAX_DAILY_CAP} or null"
ANY_RATE = "must be a positive number of messages per second or null"


def _whole(value: Any) -> Any:
    """JSON has one number type: 500.0 is the integer 500 to JSON Schema, so to the API too."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Reason = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=LABEL_PATTERN)]


class NumberAttributes(Body):
    """What an operator may change on a number: not its pool, sender or state."""

    kind: Literal[KINDS] = absent()  # type: ignore[valid-type]
    provider: ProviderName | None = Field(None, description="null: any provider of the channel")
    channel: Channel = absent()
    countries: Annotated[list[Country], Field(max_length=MAX_COUNTRIES, description="empty: any")] = absent()
    categories: Annotated[list[Category], Field(description="empty: any")] = absent()
    region: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=LABEL_PATTERN)] | None = Field(
        None, examples=["guangdong"]
    )
    daily_cap: Annotated[int, Field(ge=1, le=MAX_DAILY_CAP), BeforeValidator(_whole)] | None = None
    rate: Annotated[float, Field(gt=0, description="messages per second")] | None = None
    warmup: Annotated[bool, Field(description="ramp the daily cap up over the first days")] = absent()

    error_messages: ClassVar[dict[tuple[str, str], str]] = {
        **{("daily_cap", kind): ANY_CAP for kind in ("int_type", "greater_than_equal", "less_than_equal")},
        **{("rate", kind): ANY_RATE for kind in ("float_type", "greater_than")},
        ("pool", "extra_forbidden"): "cannot be changed",
        ("sender", "extra_forbidden"): "cannot be changed",
    }

    def changes(self) -> dict[str, Any]:
        """The attributes given, in their stored form."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        if "countries" in given:
            given["countries"] = ",".join(sorted({c.upper() for c in self.countries or ()}))
        if "categories" in given:
            given["categories"] = ",".join(sorted(set(self.categories or ())))
        return given


class _NewNumber(NumberAttributes):
    pool: PoolName
    channel: Channel = "sms"
    warmup: bool = False
    sender: str
    kind_value: ClassVar[SenderKind]
    error_messages: ClassVar[dict[tuple[str, str], str]] = {
        **NumberAttributes.error_messages,
        ("pool", "missing"): "is required: 1-64 letters, digits, '.', '_' or '-'",
        ("sender", "missing"): "is required: the number, short code or alphanumeric id",
    }


class NewLongNumber(_NewNumber):
    kind_value = SenderKind.NUMBER
    kind: Literal["number"] = "number"
    sender: PhoneNumber


class NewShortCode(_NewNumber):
    kind_value = SenderKind.SHORT_CODE
    kind: Literal["short_code"]
    sender: Annotated[
        str, StringConstraints(pattern=explain_pattern(r"^[0-9]{3,8}$", "a short code is 3-8 digits"))
    ] = Field(examples=["12345"])


class NewAlphanumericId(_NewNumber):
    kind_value = SenderKind.ALPHANUMERIC
    kind: Literal["alphanumeric"]
    sender: Annotated[
        str,
        StringConstraints(
            pattern=explain_pattern(r"^[A-Za-z0-9 ]{1,11}$", "an alphanumeric id is 1-11 letters, digits or spaces")
        ),
    ] = Field(examples=["ACME"])


_BY_KIND: dict[str, type[_NewNumber]] = {
    m.kind_value.value: m for m in (NewLongNumber, NewShortCode, NewAlphanumericId)
}
NEW_NUMBER = Named("NumberRequest", TypeAdapter(NewLongNumber | NewShortCode | NewAlphanumericId))


def judge_new_number(body: Any) -> tuple[_NewNumber | None, list[FieldError]]:
    """A number to add, judged by the rules of its kind (a long number when no kind is given)."""
    if not isinstance(body, dict):
        return None, [FieldError("/", "must be a JSON object")]
    kind = body.get("kind", SenderKind.NUMBER.value)
    model = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None, [FieldError("/kind", f"must be one of {', '.join(KINDS)}")]
    return judge(model, body)


class NumberAction(Body):
    reason: Reason | None = Field(None, description="why; kept with the state change as its evidence")


class FlagRequest(NumberAction):
    reason: Reason = Field(description="why the number is flagged", examples=["reported as spam by a handset vendor"])
    error_messages: ClassVar[dict[tuple[str, str], str]] = {
        ("reason", "missing"): "is required: why the number is flagged"
    }


class NumberQuery(Query):
    pool: PoolName | None = None
    state: State | None = None


class Health(Reply):
    sent: int
    delivered: int
    failed: int
    filtered: int
    opt_out: int
    failure_rate: float
    window_seconds: float = Field(description="evidence counted since the last state change that reset it")


class Number(Reply):
    id: Annotated[str, StringConstraints(pattern=NUMBER_ID_PATTERN)]
    pool: str
    sender: str = Field(description="E.164 number, short code or alphanumeric id")
    kind: Literal[KINDS]  # type: ignore[valid-type]
    provider: str | None = Field(description="null: any provider of the channel")
    channel: Channel
    countries: list[str] = Field(description="empty: any")
    categories: list[Category] = Field(description="empty: any")
    region: str | None
    daily_cap: int | None
    daily_cap_now: int | None = Field(description="the cap in force now: the lowest of the caps")
    rate: float | None = Field(description="messages per second")
    warmup: bool
    state: State
    reason: str | None = Field(description="why it is in this state (the last change's reason)")
    state_since: Iso
    cooldown_until: Iso | None
    checked_at: Iso | None = Field(description="the last reputation check")
    health: Health
    source: str
    created_at: Iso
    updated_at: Iso


class StateChange(Reply):
    at: Iso
    from_: str | None = Field(alias="from")
    to: str
    reason: str
    evidence: dict[str, Any]
    actor: str


class NumberDetail(Number):
    events: list[StateChange] = Field(description="state changes, newest first")


class NumberList(Reply):
    data: list[Number]


NUMBER_ID = {"type": "string", "pattern": NUMBER_ID_PATTERN, "examples": ["num_0123456789abcdef"]}
NOT_FOUND = problem("no such number")
INVALID = problem("a field is invalid; each is named")
EXAMPLE = {"pool": "us-sms", "sender": "+14155552671", "countries": ["US"], "categories": ["marketing"]}
ACTIONS = (
    ("flag", "An operator flags the number: quarantined at once, with the reason (admin scope)"),
    ("restore", "Back to active from any state, evidence reset (admin scope)"),
    ("retire", "Out of rotation for good, until restored (admin scope)"),
)


def _action(action: str, summary: str) -> Operation:
    flagging = action == "flag"
    answers = {200: Answer("the number after the action", Number), **body_answers(), **auth_answers()}
    answers |= {404: NOT_FOUND, 422: problem("an invalid or missing reason")}
    if flagging:
        answers[409] = problem("a retired number cannot be flagged; restore it first")
    return Operation(
        "post",
        f"/v1/numbers/{{id}}/{action}",
        f"{action}Number",
        summary,
        path_params={"id": NUMBER_ID},
        body=FlagRequest if flagging else NumberAction,
        body_required=flagging,
        body_examples={"why": {"reason": "reported as spam by a handset vendor" if flagging else "carrier cleared it"}},
        answers=answers,
    )


OPERATIONS = (
    Operation(
        "get",
        "/v1/numbers",
        "listNumbers",
        "Sender numbers with their state, health counts and last reason",
        query=NumberQuery,
        answers={200: Answer("the numbers", NumberList), 400: problem("invalid query"), **auth_answers()},
    ),
    Operation(
        "post",
        "/v1/numbers",
        "createNumber",
        "Add a sender to a pool (admin scope)",
        body=NEW_NUMBER,
        body_examples={
            "number": EXAMPLE,
            "short code": {"pool": "us-short", "sender": "12345", "kind": "short_code", "daily_cap": 10000},
        },
        answers={
            201: Answer("added", Number, headers={"Location": {"schema": {"type": "string"}}}),
            **body_answers(),
            **auth_answers(),
            409: problem("the pool already has this sender"),
            422: INVALID,
        },
    ),
    Operation(
        "get",
        "/v1/numbers/{id}",
        "getNumber",
        "One number with its state changes and their evidence",
        path_params={"id": NUMBER_ID},
        answers={200: Answer("the number", NumberDetail), **auth_answers(), 404: NOT_FOUND},
    ),
    Operation(
        "patch",
        "/v1/numbers/{id}",
        "updateNumber",
        "Change a number's attributes (not its pool, sender or state; admin scope)",
        path_params={"id": NUMBER_ID},
        body=NumberAttributes,
        body_examples={"cap": {"daily_cap": 500, "warmup": True}},
        answers={
            200: Answer("changed", Number),
            **body_answers(),
            **auth_answers(),
            404: NOT_FOUND,
            422: INVALID,
        },
    ),
    Operation(
        "delete",
        "/v1/numbers/{id}",
        "deleteNumber",
        "Remove a number (admin scope); its sticky recipients get another",
        path_params={"id": NUMBER_ID},
        answers={204: Answer("removed"), **auth_answers(), 404: NOT_FOUND},
    ),
    *(_action(action, summary) for action, summary in ACTIONS),
)
