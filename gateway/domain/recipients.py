"""Recipients as people: which channels a person may be reached on for a job, and why.

A profile holds a person's addresses per channel; preferences say, per category and channel, whether
they want messages there; the tenant's defaults fill what the person never said. Pure: the caller
reads the profile, preferences and suppressions, this module decides.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from gateway.domain.models import Category, Channel

# Push platforms a token may be for; a provider serves some of them (FCM: android, ios, web).
PLATFORMS = ("android", "ios", "web", "huawei")
# Which address of a profile each channel uses (sms and voice share the phone number).
ADDRESS_OF_CHANNEL: Mapping[str, str] = {
    Channel.SMS: "phone",
    Channel.VOICE: "phone",
    Channel.EMAIL: "email",
    Channel.PUSH: "push",
    Channel.WEBHOOK: "webhook",
}
CATEGORIES = tuple(c.value for c in Category)
CHANNELS = tuple(c.value for c in Channel)

# Preferences: category -> channel -> wanted.
Preferences = Mapping[str, Mapping[str, bool]]


class Verdict(enum.StrEnum):
    """Why a channel is allowed or not for one job (written on the job's choice event)."""

    ALLOWED = "allowed"
    NO_ADDRESS = "no_address"
    PREFERENCE_OFF = "preference_off"  # the person turned this channel off for the category
    DEFAULT_OFF = "default_off"  # the tenant's default for the category, the person said nothing
    OPTED_OUT = "opted_out"  # on the suppression list for this category
    NO_PROVIDER = "no_provider"


@dataclass(frozen=True, slots=True)
class PushToken:
    token: str
    platform: str
    last_seen_at: float | None = None


@dataclass(frozen=True)
class RecipientProfile:
    user_id: str
    phone: str | None = None
    email: str | None = None
    email_name: str | None = None
    push_tokens: tuple[PushToken, ...] = ()
    webhook_url: str | None = None
    tz: str | None = None
    locale: str | None = None
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    def addresses(self, channel: str) -> tuple[str, ...]:
        """The addresses `channel` can use, best first (push: the most recently seen token first)."""
        kind = ADDRESS_OF_CHANNEL.get(channel)
        if kind == "push":
            ordered = sorted(self.push_tokens, key=lambda t: -(t.last_seen_at or 0.0))
            return tuple(t.token for t in ordered)
        single = {"phone": self.phone, "email": self.email, "webhook": self.webhook_url}.get(kind or "")
        return (single,) if single else ()


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    channel: str
    verdict: Verdict
    address: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


def wanted(preferences: Preferences, defaults: Preferences, category: str, channel: str) -> Verdict:
    """The person's own word for (category, channel), else the tenant's default, else on."""
    own = preferences.get(category, {}).get(channel)
    if own is not None:
        return Verdict.ALLOWED if own else Verdict.PREFERENCE_OFF
    default = defaults.get(category, {}).get(channel)
    return Verdict.DEFAULT_OFF if default is False else Verdict.ALLOWED


def allowed_channels(
    profile: RecipientProfile,
    preferences: Preferences,
    defaults: Preferences,
    category: str,
    candidates: Sequence[str],
    *,
    opted_out: Collection[str] = (),
    served: Collection[str] | None = None,
) -> list[ChannelChoice]:
    """Each candidate channel, in the given order, with whether this job may use it and why.

    `opted_out`: channels whose address (or the person) is on a suppression list covering `category`
    (a marketing opt-out never reaches transactional jobs: the caller passes only the suppressions
    whose scope covers the category). `served`: channels some configured provider serves (None: all).
    Only the job's own category's preferences count, so turning marketing off keeps transactional on."""
    choices = []
    for channel in candidates:
        addresses = profile.addresses(channel)
        verdict = wanted(preferences, defaults, category, channel)
        if served is not None and channel not in served:
            verdict = Verdict.NO_PROVIDER
        elif not addresses:
            verdict = Verdict.NO_ADDRESS
        elif verdict is Verdict.ALLOWED and channel in opted_out:
            verdict = Verdict.OPTED_OUT
        choices.append(ChannelChoice(channel, verdict, addresses[0] if addresses else None))
    return choices


# The event written with a recipient's job when it is accepted (its detail: choice_detail).
CHANNEL_CHOSEN = "channel.chosen"
# What a refusal at accept says of a channel the job can never use, by verdict.
REFUSALS: Mapping[Verdict, str] = {
    Verdict.NO_ADDRESS: "the recipient has no address for {channel}",
    Verdict.PREFERENCE_OFF: "the recipient turned {channel} off for {category} messages",
    Verdict.DEFAULT_OFF: "{channel} is off for {category} messages by the tenant's default preferences",
    Verdict.OPTED_OUT: "the recipient opted out of {category} messages on {channel}",
    Verdict.NO_PROVIDER: "no configured provider sends {channel}",
}


def refusal_text(choice: ChannelChoice, category: str) -> str:
    return REFUSALS[choice.verdict].format(channel=choice.channel, category=category)


def choice_detail(choices: Sequence[ChannelChoice], order: Sequence[str], order_by: str) -> dict[str, object]:
    """What a recipient's job's `channel.chosen` event says: the channels it will try, in order, and
    each listed channel's verdict (never an address: events outlive erasure's reach less than rows)."""
    return {
        "channel": order[0],
        "order": list(order),
        "order_by": order_by,
        "verdicts": {choice.channel: choice.verdict.value for choice in choices},
    }


def unserved_platforms(platforms: Iterable[str], served: Collection[str]) -> list[str]:
    """The push platforms named that no configured provider delivers to."""
    return [p for p in platforms if p not in served]


def erased_form(address: str) -> str:
    """What an erased person's address becomes in the record: enough to count and tell rows apart in a
    report (the country code, an e-mail's domain), nothing to reach anyone with."""
    if address.startswith("+"):
        return address[:3] + "*" * max(0, len(address) - 3) + "#erased"
    if "@" in address and "://" not in address:
        return "***@" + address.rpartition("@")[2] + "#erased"
    return "***#erased"


def patched(profile: RecipientProfile, changes: Mapping[str, object]) -> RecipientProfile:
    """`profile` with a PATCH applied: given fields replace (None clears), attributes merge key by key
    (a None value removes the key)."""
    fields: dict[str, object] = {}
    for name, value in changes.items():
        if name == "attributes":
            merged = dict(profile.attributes)
            for key, item in (value or {}).items():  # type: ignore[attr-defined]
                if item is None:
                    merged.pop(key, None)
                else:
                    merged[key] = item
            fields["attributes"] = merged
        elif name == "push_tokens":
            fields["push_tokens"] = tuple(value or ())  # type: ignore[arg-type]
        else:
            fields[name] = value
            if name == "email" and value is None:
                fields["email_name"] = None
    return replace(profile, **fields)  # type: ignore[arg-type]


def attribute_text(value: str | int | float | bool) -> str:
    """How an attribute is matched by a filter: a string as given, anything else as JSON writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


# The kind of suppression an erased person's address becomes: its keyed digest, so the opt-out still
# holds if the address comes back (a job to it is matched through the same digest), yet the record no
# longer holds the address (a digest keyed with the store's secret cannot be reversed by trying numbers).
ERASED_ADDRESS = "address_digest"


def address_digest(secret: str, address: str) -> str:
    return hmac.new(secret.encode(), address.encode(), hashlib.sha256).hexdigest()
