"""The pure choice of channels for a person: addresses, preferences, tenant defaults, opt-outs."""

from __future__ import annotations

from gateway.domain.recipients import (
    PushToken,
    RecipientProfile,
    Verdict,
    allowed_channels,
    erased_form,
    patched,
)

PERSON = RecipientProfile(
    "u-1",
    phone="+8613812345678",
    email="li@example.com",
    push_tokens=(PushToken("old-token-0001", "android", 100.0), PushToken("new-token-0002", "ios", 200.0)),
)
ALL = ["push", "sms", "email", "voice", "webhook"]


def verdicts(**kwargs: object) -> list[tuple[str, Verdict, str | None]]:
    args: dict[str, object] = {"preferences": {}, "defaults": {}, "category": "marketing", "candidates": ALL}
    args.update(kwargs)
    return [(c.channel, c.verdict, c.address) for c in allowed_channels(PERSON, **args)]  # type: ignore[arg-type]


def test_every_candidate_is_answered_in_order_with_its_address_or_why_not() -> None:
    assert verdicts() == [
        ("push", Verdict.ALLOWED, "new-token-0002"),  # the most recently seen token first
        ("sms", Verdict.ALLOWED, "+8613812345678"),
        ("email", Verdict.ALLOWED, "li@example.com"),
        ("voice", Verdict.ALLOWED, "+8613812345678"),
        ("webhook", Verdict.NO_ADDRESS, None),
    ]


def test_the_persons_word_beats_the_tenant_default_and_only_for_its_own_category() -> None:
    prefs = {"marketing": {"sms": False, "voice": True}}
    defaults = {"marketing": {"voice": False, "email": False}}
    marketing = verdicts(preferences=prefs, defaults=defaults, candidates=["sms", "voice", "email"])
    assert [v for _, v, _ in marketing] == [Verdict.PREFERENCE_OFF, Verdict.ALLOWED, Verdict.DEFAULT_OFF]
    transactional = verdicts(preferences=prefs, defaults=defaults, category="transactional", candidates=["sms"])
    assert transactional == [("sms", Verdict.ALLOWED, "+8613812345678")]


def test_opted_out_and_unserved_channels_are_named() -> None:
    found = verdicts(candidates=["sms", "push"], opted_out={"sms"}, served={"sms"})
    assert [v for _, v, _ in found] == [Verdict.OPTED_OUT, Verdict.NO_PROVIDER]


def test_a_patch_replaces_given_fields_clears_nulls_and_merges_attributes() -> None:
    person = RecipientProfile("u-1", email="a@example.com", email_name="A", attributes={"tier": "gold", "n": 1})
    after = patched(person, {"email": None, "tz": "UTC", "attributes": {"tier": None, "city": "Xi'an"}})
    assert (after.email, after.email_name, after.tz, after.attributes) == (None, None, "UTC", {"n": 1, "city": "Xi'an"})


def test_an_erased_address_keeps_no_more_than_its_country_code_or_domain() -> None:
    assert erased_form("+8613812345678") == "+86***********#erased"
    assert erased_form("li@example.com") == "***@example.com#erased"
    assert erased_form("fcm-token-0001") == "***#erased"


def test_local_zones_come_from_the_job_the_profile_the_number_the_tenant_and_only_then_utc() -> None:
    from gateway.domain.quiet_hours import ZoneSource, local_zones

    def of(**kw: str | None) -> tuple[list[str], ZoneSource]:
        args: dict[str, str | None] = {"job_tz": None, "recipient_tz": None, "phone": None, "tenant_tz": None}
        zones, source = local_zones(**{**args, **kw})  # type: ignore[arg-type]
        return [z.key for z in zones], source

    assert of(job_tz="Europe/Berlin", recipient_tz="Asia/Shanghai") == (["Europe/Berlin"], ZoneSource.JOB)
    assert of(recipient_tz="Asia/Shanghai", phone="+14155552671") == (["Asia/Shanghai"], ZoneSource.RECIPIENT)
    assert of(phone="+8613812345678", tenant_tz="UTC") == (["Asia/Shanghai"], ZoneSource.PHONE)
    assert len(of(phone="+79123456789")[0]) > 1  # a Russian mobile spans zones: all kept, strictest wins
    assert of(phone="li@example.com", tenant_tz="Asia/Shanghai") == (["Asia/Shanghai"], ZoneSource.TENANT)
    assert of() == (["UTC"], ZoneSource.UNCONFIGURED)


def test_a_reply_speaks_to_the_answered_tenant_else_to_those_that_configured_the_number() -> None:
    from gateway.domain.optout import answered_by, suppression_covers

    assert answered_by("a", [], ["c"]) == (["a"], "message")
    assert answered_by("a", ["b", "a", "b"], ["c"]) == (["a", "b"], "pool")
    assert answered_by(None, [], ["c", "c"]) == (["c"], "inbound_number")
    assert answered_by(None, [], []) == ([], "unmatched")
    assert (suppression_covers("marketing", "transactional"), suppression_covers("all", "transactional")) == (
        False,
        True,
    )


def test_an_address_digest_is_keyed_and_stable() -> None:
    from gateway.domain.recipients import address_digest

    one = address_digest("secret-a", "+8613812345678")
    assert one == address_digest("secret-a", "+8613812345678") != address_digest("secret-b", "+8613812345678")
    assert "13812345678" not in one and len(one) == 64


def test_each_refusal_and_choice_says_why_without_an_address() -> None:
    from gateway.domain.recipients import (
        RecipientProfile,
        allowed_channels,
        choice_detail,
        refusal_text,
    )

    profile = RecipientProfile("u-1", phone="+8613812345678")
    choices = allowed_channels(
        profile, {"marketing": {"sms": False}}, {}, "marketing", ["sms", "email", "push"], served=["sms", "email"]
    )
    assert [refusal_text(c, "marketing") for c in choices] == [
        "the recipient turned sms off for marketing messages",
        "the recipient has no address for email",
        "no configured provider sends push",
    ]
    detail = choice_detail(choices, ["sms"], "listed")
    assert detail == {
        "channel": "sms",
        "order": ["sms"],
        "order_by": "listed",
        "verdicts": {"sms": "preference_off", "email": "no_address", "push": "no_provider"},
    }
