"""The content policy: one pure function from a message text to a report of what is wrong with it.

Called for preflight (POST /v1/content/check), at accept (a `block` violation refuses the job) and
at dispatch (the lists may have changed since accept). Violation rule names become the reason codes
`content.<rule>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from gateway.domain.content.controls import describe, find_hidden_controls, remove_hidden_controls
from gateway.domain.content.encoding import SmsLength, measure_sms
from gateway.domain.content.links import (
    GluedLink,
    Link,
    find_links,
    glued_links,
    host_allowed,
    insert_link_spacing,
    with_ascii_schemes,
)
from gateway.domain.content.signature import (
    COMMON_UNSUBSCRIBE_SUFFIXES,
    SIGNATURE_CLOSE,
    SIGNATURE_OPEN,
    SignatureRule,
    ends_with_unsubscribe,
    signature_end,
)
from gateway.domain.content.words import CARRIER_SCOPE, TENANT_SCOPE, Severity, WordLists, WordMatch

ContentEncoding = Literal["GSM-7", "UCS-2", "UTF-8"]
CHANNELS = ("sms", "voice", "push", "email", "webhook")
CATEGORIES = ("marketing", "transactional")

RULE_BLOCKED_WORD = "blocked_word"
RULE_LINK_SPACING = "link_spacing"
RULE_TOO_MANY_LINKS = "too_many_links"
RULE_LINK_DOMAIN = "link_domain"
RULE_TOO_LONG = "too_long"
RULE_EMPTY = "empty"
RULE_HARD_MAX = "hard_max"
RULE_SIGNATURE_MISSING = "signature_missing"
RULE_SIGNATURE_LENGTH = "signature_length"
RULE_UNSUBSCRIBE_MISSING = "unsubscribe_missing"
RULE_HIDDEN_CONTROL = "hidden_control"
RULE_LINK_FULLWIDTH = "link_fullwidth"
RULE_LINK_NON_ASCII = "link_non_ascii"
RULES = (
    RULE_BLOCKED_WORD,
    RULE_LINK_SPACING,
    RULE_TOO_MANY_LINKS,
    RULE_LINK_DOMAIN,
    RULE_TOO_LONG,
    RULE_EMPTY,
    RULE_HARD_MAX,
    RULE_SIGNATURE_MISSING,
    RULE_SIGNATURE_LENGTH,
    RULE_UNSUBSCRIBE_MISSING,
    RULE_HIDDEN_CONTROL,
    RULE_LINK_FULLWIDTH,
    RULE_LINK_NON_ASCII,
)


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    severity: Severity
    start: int  # text[start:end] == match, always, so a UI can underline it
    end: int
    match: str
    message: str
    field: str = ""  # the content field the span points into ("subject"); "" for the one text checked


@dataclass(frozen=True, slots=True)
class ContentReport:
    ok: bool  # no `block` violation
    encoding: ContentEncoding
    segments: int
    violations: tuple[Violation, ...]
    # The text with what can be fixed mechanically fixed: ASCII spaces around glued links, link
    # schemes in ASCII, hidden control characters removed; nothing else changed.
    fixed_text: str
    # Per content field ({"subject": ..., "text": ...}) when a message was checked field by field
    # (check_fields); fixed_text is then that of the main field.
    fixed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContentRules:
    """The policy of one provider/route; the caller picks the rules that apply to a message."""

    max_segments: int = 6
    max_links: int = 2
    link_domain_allowlist: tuple[str, ...] = ()
    hard_max_chars: int = 1600
    signature: SignatureRule | None = None
    unsubscribe_suffixes: tuple[str, ...] = ()  # required at the end of marketing SMS when not empty
    # A glued link is not filtered by carriers, but it makes the message useless, so refuse it by
    # default; a route may downgrade it.
    link_spacing_severity: Severity = "block"
    too_many_links_severity: Severity = "block"
    link_domain_severity: Severity = "block"
    too_long_severity: Severity = "block"
    link_domain_allowlist_lower: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_segments < 1 or self.max_links < 0 or self.hard_max_chars < 1:
            raise ValueError("max_segments and hard_max_chars must be positive, max_links not negative")
        allowlist = tuple(domain.strip().lower().lstrip(".") for domain in self.link_domain_allowlist)
        object.__setattr__(self, "link_domain_allowlist_lower", allowlist)


def china_marketing_rules(
    base: ContentRules | None = None,
    *,
    unsubscribe_suffixes: tuple[str, ...] = COMMON_UNSUBSCRIBE_SUFFIXES,
    signature: SignatureRule | None = None,
) -> ContentRules:
    """Rules for a Chinese SMS route: a 【signature】 and the provider's unsubscribe suffix."""
    return replace(
        base or ContentRules(),
        signature=signature or SignatureRule(),
        unsubscribe_suffixes=unsubscribe_suffixes,
    )


def check_content(
    text: str,
    *,
    channel: str,
    rules: ContentRules,
    words: WordLists,
    carrier: str | None = None,
    category: str = "marketing",
    tenant: str | None = None,
) -> ContentReport:
    """Check one message text.

    carrier and tenant choose which carrier and tenant lists apply besides the global ones; both
    accept the bare name ("china_mobile") or the list key ("carrier:china_mobile").
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, not {category!r}")
    if carrier is not None:
        carrier = _strip_scope(carrier, CARRIER_SCOPE)
    if tenant is not None:
        tenant = _strip_scope(tenant, TENANT_SCOPE)
    is_sms = channel == "sms"

    unscannable = _unscannable(text, is_sms, rules)
    if unscannable is not None:
        return unscannable

    violations: list[Violation] = []
    links = find_links(text)
    glued: list[GluedLink] = []
    wide_schemes: list[Violation] = []
    if links:
        glued = glued_links(text, links)
        violations.extend(_link_spacing_violations(glued, rules.link_spacing_severity))
        wide_schemes = _link_form_violations(links, rules.link_spacing_severity)
        violations.extend(wide_schemes)
        violations.extend(_link_count_violations(links, rules))
        if rules.link_domain_allowlist_lower:
            violations.extend(_link_domain_violations(links, rules))
    controls = _hidden_control_violations(text)
    violations.extend(controls)
    fixed_text = _fixed_text(
        text, glued, rewrite=bool(controls) or any(v.rule == RULE_LINK_FULLWIDTH for v in wide_schemes)
    )

    for found in words.find(text, carrier=carrier, tenant=tenant):
        violations.append(_blocked_word_violation(text, found))

    encoding: ContentEncoding = "UTF-8"
    segments = 1
    if is_sms:
        length = measure_sms(text)
        encoding, segments = length.encoding, length.segments
        violations.extend(_sms_violations(text, length, category, rules))

    if not violations:
        return ContentReport(True, encoding, segments, (), fixed_text)
    violations.sort(key=lambda violation: (violation.start, violation.end, violation.rule))
    ok = all(violation.severity != "block" for violation in violations)
    return ContentReport(ok, encoding, segments, tuple(violations), fixed_text)


def _unscannable(text: str, is_sms: bool, rules: ContentRules) -> ContentReport | None:
    """The report for a text not worth scanning (empty, or over the hard limit); None otherwise."""
    if not text or text.isspace():
        empty = Violation(RULE_EMPTY, "block", 0, len(text), text, "the message text is empty")
        return ContentReport(False, "GSM-7" if is_sms else "UTF-8", 0 if is_sms else 1, (empty,), text)
    # The hard maximum is an SMS one (a push body or an e-mail is bounded by its own field limit).
    if not is_sms or len(text) <= rules.hard_max_chars:
        return None
    # Refuse to scan arbitrarily large input; nothing else is worth reporting about it. The span
    # marks only the first character over the limit so the report stays small.
    limit = rules.hard_max_chars
    too_big = Violation(
        RULE_HARD_MAX,
        "block",
        limit,
        limit + 1,
        text[limit],
        f"the text has {len(text)} characters; at most {limit} are accepted — cut it from character {limit + 1} on",
    )
    length = measure_sms(text)
    return ContentReport(False, length.encoding, length.segments, (too_big,), text)


def _sms_violations(text: str, length: SmsLength, category: str, rules: ContentRules) -> list[Violation]:
    """What only an SMS is checked for: its length, the route's signature and unsubscribe suffix."""
    violations = []
    if length.segments > rules.max_segments:
        violations.append(_too_long_violation(text, length.encoding, length.units, length.segments, rules))
    signature_rule = rules.signature
    if signature_rule is not None and category in signature_rule.categories:
        violations.extend(_signature_violations(text, signature_rule))
    if (
        rules.unsubscribe_suffixes
        and category == "marketing"
        and not ends_with_unsubscribe(text, rules.unsubscribe_suffixes)
    ):
        violations.append(_unsubscribe_violation(text, rules.unsubscribe_suffixes))
    return violations


def _fixed_text(text: str, glued: list[GluedLink], *, rewrite: bool) -> str:
    if rewrite:
        # Spacing is decided on the text the recipient will get, once the controls are gone and
        # the schemes are ASCII (a link then starts at its scheme, not after it).
        text = remove_hidden_controls(text)
        text = with_ascii_schemes(text, find_links(text))
        glued = glued_links(text, find_links(text))
    return insert_link_spacing(text, glued) if glued else text


def _link_form_violations(links: list[Link], wide_scheme_severity: Severity) -> list[Violation]:
    violations = []
    for link in links:
        if link.has_wide_scheme:
            violations.append(
                Violation(
                    RULE_LINK_FULLWIDTH,
                    wide_scheme_severity,
                    link.start,
                    link.end,
                    link.url,
                    f"the link {link.url} starts with a scheme in full-width characters; handsets only "
                    f"recognise an ASCII scheme, so it shows as text or opens a wrong address — write {link.href}",
                )
            )
        if link.has_non_ascii_path:
            violations.append(
                Violation(
                    RULE_LINK_NON_ASCII,
                    "warn",
                    link.start,
                    link.end,
                    link.url,
                    f"the link {link.url} has non-ASCII characters in its path; handsets take every letter "
                    f"up to the next space into the link and open {link.href} — make sure the link ends "
                    "there, or send a percent-encoded or short link",
                )
            )
    return violations


def _hidden_control_violations(text: str) -> list[Violation]:
    return [
        Violation(
            RULE_HIDDEN_CONTROL,
            "warn",
            run.start,
            run.end,
            text[run.start : run.end],
            f"the text holds invisible control characters ({describe(text[run.start : run.end])}); they "
            "can reorder what the recipient sees, disguising a link, or split a word — remove them",
        )
        for run in find_hidden_controls(text)
    ]


def _strip_scope(name: str, scope: str) -> str:
    prefix = scope + ":"
    return name[len(prefix) :] if name.startswith(prefix) else name


def _link_spacing_violations(glued: list[GluedLink], severity: Severity) -> list[Violation]:
    violations = []
    for item in glued:
        sides = []
        advice = []
        if item.before:
            sides.append(f"to {item.before!r} before it")
            advice.append("before")
        if item.after:
            sides.append(f"to {item.after!r} after it")
            advice.append("after")
        note = (
            " (not every handset ends a link at a Unicode space such as U+3000)"
            if item.before.isspace() or item.after.isspace()
            else ""
        )
        violations.append(
            Violation(
                RULE_LINK_SPACING,
                severity,
                item.link.start,
                item.link.end,
                item.link.url,
                f"the link {item.link.url} is glued {' and '.join(sides)}{note}; many handsets will not "
                f"recognise or open it — put an ASCII space {' and '.join(advice)} it",
            )
        )
    return violations


def _link_count_violations(links: list[Link], rules: ContentRules) -> list[Violation]:
    if len(links) <= rules.max_links:
        return []
    first_extra = links[rules.max_links]
    extra = ", ".join(link.url for link in links[rules.max_links :])
    return [
        Violation(
            RULE_TOO_MANY_LINKS,
            rules.too_many_links_severity,
            first_extra.start,
            first_extra.end,
            first_extra.url,
            f"the text has {len(links)} links; at most {rules.max_links} are allowed per message, "
            f"and carriers treat link-heavy messages as spam — remove {extra}",
        )
    ]


def _link_domain_violations(links: list[Link], rules: ContentRules) -> list[Violation]:
    allowlist = rules.link_domain_allowlist_lower
    return [
        Violation(
            RULE_LINK_DOMAIN,
            rules.link_domain_severity,
            link.start,
            link.end,
            link.url,
            f"the link {link.url} points to {link.host}, which is not an allowed link domain "
            f"({', '.join(allowlist)}); use a registered short link",
        )
        for link in links
        if not host_allowed(link.host, allowlist)
    ]


def _blocked_word_violation(text: str, found: WordMatch) -> Violation:
    matched = text[found.start : found.end]
    listed = found.entries[0].word
    as_written = "" if matched == listed else f" (written {matched!r})"
    lists = ", ".join(sorted({entry.list_key for entry in found.entries}))
    consequence = (
        "carriers and handsets silently filter such messages — remove or rephrase it"
        if found.severity == "block"
        else "some carriers or handsets may filter such messages — consider rephrasing it"
    )
    return Violation(
        RULE_BLOCKED_WORD,
        found.severity,
        found.start,
        found.end,
        matched,
        f"the text contains {listed!r}{as_written}, listed in {lists}; {consequence}",
    )


def _too_long_violation(text: str, encoding: str, units: int, segments: int, rules: ContentRules) -> Violation:
    unit_name = "septets" if encoding == "GSM-7" else "UTF-16 units"
    return Violation(
        RULE_TOO_LONG,
        rules.too_long_severity,
        0,
        len(text),
        text,
        f"the text needs {segments} SMS segments ({units} {unit_name}, {encoding}); "
        f"at most {rules.max_segments} are allowed — shorten it",
    )


def _signature_violations(text: str, rule: SignatureRule) -> list[Violation]:
    end = signature_end(text)
    if not end:
        return [
            Violation(
                RULE_SIGNATURE_MISSING,
                "block",
                0,
                0,
                "",
                f"the text must start with the sender's signature in {SIGNATURE_OPEN}{SIGNATURE_CLOSE}, "
                f"e.g. {SIGNATURE_OPEN}公司名{SIGNATURE_CLOSE}; carriers reject messages without it",
            )
        ]
    length = len(text[1 : end - 1].strip())
    if rule.min_chars <= length <= rule.max_chars:
        return []
    signature = text[:end]
    return [
        Violation(
            RULE_SIGNATURE_LENGTH,
            "block",
            0,
            end,
            signature,
            f"the signature {signature} is {length} character{'' if length == 1 else 's'} long; "
            f"it must have {rule.min_chars} to {rule.max_chars}",
        )
    ]


def _unsubscribe_violation(text: str, suffixes: tuple[str, ...]) -> Violation:
    choices = " or ".join(repr(suffix) for suffix in suffixes)
    return Violation(
        RULE_UNSUBSCRIBE_MISSING,
        "block",
        len(text),
        len(text),
        "",
        f"marketing SMS must end with the unsubscribe instruction {choices}; append it to the text",
    )
