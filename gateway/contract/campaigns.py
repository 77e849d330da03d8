"""Campaign results: the campaign report and list (JSON or CSV), and experiments (arms, holdout)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from gateway.contract.base import NO_NUL, Body, Reply, explain_pattern, judge
from gateway.contract.events import CSV
from gateway.contract.operations import Answer, Operation, Query, auth_answers, body_answers, problem
from gateway.contract.reports import INVALID_QUERY
from gateway.domain.experiments import MAX_HOLDOUT, METHOD, RESERVED_ARMS, Experiment
from gateway.domain.jobs import FieldError
from gateway.domain.tracking import CAMPAIGN_DIMENSIONS, METADATA_DIMENSION, METADATA_KEY

_WORD = "(?:" + "|".join(CAMPAIGN_DIMENSIONS) + "|" + METADATA_DIMENSION.replace(".", r"\.") + METADATA_KEY + ")"
GROUP_BY_PATTERN = explain_pattern(
    f"^{_WORD}(?:,{_WORD})*$",
    f"must be a comma-separated list of {', '.join(CAMPAIGN_DIMENSIONS)} or metadata.<key> (letters, digits, _ -)",
)
Format = Literal["json", "csv"]
FORMAT_FIELD = Field(None, description="csv: the report as CSV (as with Accept: text/csv); default JSON")
CSV_NOTE = "also as text/csv (Accept: text/csv or ?format=csv): one line per group, nested counts as name.key columns"


class CampaignQuery(Query):
    group_by: Annotated[str, StringConstraints(pattern=GROUP_BY_PATTERN)] = Field(
        "variant",
        description="what to group by, comma-separated: any of "
        + ", ".join(CAMPAIGN_DIMENSIONS)
        + ", metadata.<key> (a key of the job's metadata, e.g. metadata.rule)",
    )
    format: Format | None = FORMAT_FIELD


class CampaignListQuery(Query):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)] | None = Field(
        None, description="next_cursor of the previous page (campaigns after this name)"
    )
    format: Format | None = FORMAT_FIELD


Count = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(ge=0)] | None
Money = dict[str, float]


class CampaignTotals(Reply):
    messages: Count
    sent: Count = Field(description="taken by a provider (sent, delivered or undelivered)")
    delivered: Count
    failed: Count = Field(description="did not reach the handset (failed, undelivered, rejected, expired, unknown)")
    suppressed: Count
    sleeping: Count = Field(description="of the suppressed, those left alone because the recipient was sleeping")
    held_out: Count = Field(description="in the experiment's holdout: recorded, never sent")
    clicks: Count
    human_clicks: Count = Field(description="clicks not made by link previews, crawlers or scanners")
    unique_clicks: Count = Field(description="messages clicked at least once by a person")
    conversions: Count
    converted: Count = Field(description="messages with at least one conversion")
    value: float
    cost: Money = Field(description="what the providers charge, per ISO 4217 currency (routing.prices)")
    cost_per_delivered: Money = Field(description="cost / delivered, per currency")
    cost_per_conversion: Money = Field(description="cost / conversions, per currency")
    suppressed_by_reason: dict[str, int] = Field(description="suppressed messages by reason (sleeping, cap, ...)")
    deferred_by_reason: dict[str, int] = Field(description="messages deferred at least once, by reason")
    claims_verified: Count = Field(description="claim tokens verified (claimed) by a landing page")
    claims_refused: Count = Field(description="replays of claimed tokens refused")


class CampaignGroup(CampaignTotals):
    """One group; it names a value of each `group_by` dimension (null: the message has none)."""

    variant: str | None = None
    channel: str | None = None
    provider: str | None = None
    sender: str | None = None
    recipient_state: Literal["sleeping", "awake"] | None = Field(
        None, description="sleeping: suppressed as sleeping, or asleep now by [limits.sleeping]; null: no user_id"
    )
    metadata: dict[str, str | None] | None = Field(None, description="the value of each metadata.<key> grouped by")
    delivery_rate: Rate = Field(description="delivered / sent")
    click_rate: Rate = Field(description="unique_clicks / delivered")
    conversion_rate: Rate = Field(description="conversions / unique_clicks")
    median_seconds_to_click: Rate = Field(description="from sending to a person's first click")


class CampaignLinkGroup(Reply):
    """Clicks and conversions through per_campaign links (one link per variant and destination), so
    people are counted as unique_visitors by hashed IP; included in the totals."""

    variant: str | None
    clicks: Count
    human_clicks: Count
    unique_visitors: Count
    conversions: Count
    value: float


class Arm(Reply):
    variant: str = Field(description="the arm, or holdout")
    weight: float = Field(description="its declared share, percent")
    assigned: Count = Field(description="jobs assigned to it")
    share: float = Field(description="assigned / all assigned, percent")
    converted: Count = Field(description="of those, the ones with a conversion")
    conversion_rate: Rate = Field(description="converted / assigned")
    cost: Money
    lift: float | None = Field(None, description="conversion_rate - the holdout's, in points")
    lift_low: float | None = Field(None, description="the lift's 95% interval, lower end, in points")
    lift_high: float | None = Field(None, description="the lift's 95% interval, upper end, in points")
    p_value: float | None = Field(None, description="two-sided p-value of the two-proportion z-test")
    significant: bool | None = Field(None, description="p < 0.05")
    verdict: str | None = Field(None, description="the comparison in a plain sentence")


class ExperimentResult(Reply):
    method: str = Field(description=METHOD)
    arms: list[Arm] = Field(description="every arm, then the holdout (whose lift fields are null)")


class CampaignReport(Reply):
    campaign: str
    group_by: list[str]
    totals: CampaignTotals
    groups: list[CampaignGroup]
    campaign_links: list[CampaignLinkGroup]
    experiment: ExperimentResult | None = Field(description="present when the campaign declares an experiment")


class CampaignSummary(CampaignTotals):
    campaign: str


class CampaignList(Reply):
    data: list[CampaignSummary]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


ARM_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
ArmName = Annotated[
    str, StringConstraints(pattern=explain_pattern(ARM_PATTERN, "must be 1-64 letters, digits, _ . or -"))
]
Weight = Annotated[float, Field(gt=0, le=100)]


class ExperimentRequest(Body):
    """Arms with their weights (percent) and the holdout share; weights and holdout sum to 100."""

    variants: Annotated[dict[ArmName, Weight], Field(min_length=1, max_length=20)] = Field(
        description="arm -> percent of the audience; not auto or holdout (reserved); with holdout, sum to 100",
        json_schema_extra={"propertyNames": {"pattern": ARM_PATTERN, "not": {"enum": [*sorted(RESERVED_ARMS)]}}},
    )
    holdout: Annotated[float, Field(ge=0, le=MAX_HOLDOUT)] = Field(
        0.0, description="percent held out: recorded as held_out, never sent (0-50)"
    )

    def experiment(self) -> Experiment:
        return Experiment(dict(self.variants), self.holdout)


def judge_experiment(body: Any) -> tuple[Experiment | None, list[FieldError]]:
    """The declaration, or every problem with it: the schema's, then the sum of the weights (which
    JSON Schema cannot state) and the reserved arm names."""
    asked, errors = judge(ExperimentRequest, body)
    if asked is None:
        return None, errors
    experiment = asked.experiment()
    problems = [FieldError(field, message) for field, message in experiment.problems()]
    return (None, problems) if problems else (experiment, [])


class ExperimentReply(Reply):
    campaign: str
    variants: dict[str, float]
    holdout: float
    created_at: str
    updated_at: str


CAMPAIGN: dict[str, Any] = {
    "type": "string",
    "pattern": NO_NUL,
    "description": "the campaign given at send time",
    "examples": ["spring-sale"],
}
# A campaign as a job names it (1-128 characters, no control characters), in the path.
CAMPAIGN_NAME_PATTERN = explain_pattern(r"^[^\x00-\x1f\x7f]{1,128}$", "must be 1-128 characters, no control characters")
EXPERIMENT_CAMPAIGN: dict[str, Any] = {"type": "string", "pattern": CAMPAIGN_NAME_PATTERN, "examples": ["spring-sale"]}
CSV_ANSWER = {CSV: {"type": "string"}}

OPERATIONS = (
    Operation(
        "get",
        "/v1/reports/campaigns/{campaign}",
        "campaignReport",
        "Sent, delivered, failed, clicks, conversions, cost, suppressions and deferrals by reason, and the experiment",
        description=CSV_NOTE,
        path_params={"campaign": CAMPAIGN},
        query=CampaignQuery,
        answers={200: Answer("the report", CampaignReport, also=CSV_ANSWER), 400: INVALID_QUERY, **auth_answers()},
    ),
    Operation(
        "get",
        "/v1/reports/campaigns",
        "campaignList",
        "The tenant's campaigns by name, each with its totals; cursor-paginated",
        description=CSV_NOTE,
        query=CampaignListQuery,
        answers={
            200: Answer("a page of campaigns", CampaignList, also=CSV_ANSWER),
            400: INVALID_QUERY,
            **auth_answers(),
        },
    ),
    Operation(
        "put",
        "/v1/campaigns/{campaign}",
        "putExperiment",
        "Declare the campaign's experiment: arms with weights and a holdout share (jobs with variant auto)",
        path_params={"campaign": EXPERIMENT_CAMPAIGN},
        body=ExperimentRequest,
        body_examples={
            "two_arms_and_a_holdout": {"variants": {"A": 45, "B": 45}, "holdout": 10},
            "one_arm": {"variants": {"reminder": 80}, "holdout": 20},
        },
        answers={
            200: Answer("replaced", ExperimentReply),
            201: Answer("declared", ExperimentReply),
            **body_answers(),
            **auth_answers(),
            404: problem("not a campaign name (1-128 characters, no control characters)"),
            422: problem("weights that do not sum to 100 with the holdout, a holdout over 50, a reserved arm name"),
        },
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign}",
        "getExperiment",
        "The campaign's experiment",
        path_params={"campaign": EXPERIMENT_CAMPAIGN},
        answers={
            200: Answer("the experiment", ExperimentReply),
            **auth_answers(),
            404: problem("none declared, or not a campaign name"),
        },
    ),
)
