"""The example configuration (config/gateway.example.toml), rendered from the settings models so it
lists every key with its default and what it does. `gateway config-example` prints it; a test
keeps the committed file equal to it.

Typed sections come from the pydantic models in gateway.settings; provider sections from each
adapter's settings class (its `setting(doc=...)` fields); `[routing]` and `[limits]`, whose keys
the domain parsers own, from the examples below, which a test parses with those parsers and checks
against the keys they accept.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

HEADER = """\
# delivery-gateway settings: every key, its default and what it does. Generated from the settings
# models by `gateway config-example`; do not edit by hand.
#
# Point GATEWAY_CONFIG at a copy of this file to use it. Every key can be overridden by an
# environment variable: top-level keys as GATEWAY_<KEY> (GATEWAY_PORT), nested ones with a double
# underscore (GATEWAY_WORKER__BATCH_SIZE). A commented key shows an example of a key that is unset
# by default; `##` lines describe commented sections.
"""

# `[routing]`: provider preference per channel, region rules, breakers, costs, receipt deadlines.
ROUTING_EXAMPLE = """\
## Which provider carries a job; docs/providers.md.
[routing]
## Consecutive provider failures that open its circuit breaker, and how long it stays open.
circuit_failures = 5
circuit_cooldown_seconds = 30.0
## Region rules: a channel that must not be used for some recipients, and the channel to use
## instead. deny keys: country, province, city, carrier (what the number's prefix tells).
## The seed fact behind this one:
## calls to Xinjiang numbers often do not connect: voice to Xinjiang falls back to SMS.
## The province comes from the number's 7-digit block; a number whose province is still
## unknown (a block newer than the data) gets unknown_region: "deny" (the default: not called, it
## falls back like a Xinjiang number), "fallback" (falls back when the job has somewhere to go,
## else is called) or "allow" (called).
rules = [
  { channel = "voice", deny = { country = "CN", province = "Xinjiang" }, fallback = "sms", unknown_region = "deny" },
]

## Providers in order of preference per channel; unset: every provider that serves the channel.
## A list of {name, weight} tables spreads messages by weight instead (each message its own order).
[routing.channels]
sms = ["twilio", "aliyun"]
voice = [{ name = "twilio", weight = 3 }, { name = "twilio-backup", weight = 1 }]

## What one message costs per channel, for jobs with channel_order = "cost" (unset: each channel's
## first priced provider's default price from [routing.prices]).
[routing.costs]
sms = 0.05
voice = 0.12
email = 0.001

## What each provider route charges for an attempt it takes, recorded on the attempt and summed in
## campaign reports (docs/campaigns.md): per message or per SMS segment, in an ISO 4217 currency;
## a carrier's price wins over its country's, which wins over the default.
[routing.prices.aliyun]
currency = "CNY"
per = "segment"
default = 0.045
countries = { CN = 0.045 }
carriers = { "China Mobile" = 0.04 }

## Seconds a sent message waits for its delivery receipt before a job moves to its fallback.
[routing.receipt_timeout]
sms = 600
"""

# `[limits]`: caps, quiet hours, hit policies, throughput, opt-out keywords, sleeping users
# (docs/limits.md).
LIMITS_EXAMPLE = """\
## Caps, quiet hours, throughput, opt-outs; docs/limits.md.
[limits]

## Per recipient (user_id when the job has one, else the address): <count>/<hour|day|week|month>,
## per channel, or "all" for every channel of the category together.
[limits.caps.marketing]
sms = ["1/day", "3/week"]
voice = ["1/week"]
all = ["5/week"]

## A campaign may narrow the caps, never widen them.
[limits.campaigns.spring-sale.marketing]
sms = ["1/week"]

## What a job that hits a cap or a quiet window becomes: defer (rescheduled) or drop (suppressed).
[limits.on_hit]
marketing = "defer"
transactional = "defer"

## The hours sending is ALLOWED, in the recipient's local time; the most specific window wins.
[limits.quiet_hours.marketing]
allowed = "08:00-20:00"
countries = { US = "08:00-21:00" }
channels = { voice = { allowed = "09:00-20:00" }, push = "08:00-21:00" }

## Smooth throughput (GCRA) per provider section, provider account and sender number ("*": default).
[limits.throughput.provider]
twilio = { rate = 50, burst = 1, per = "segment" }
[limits.throughput.number]
"*" = { rate = 1, burst = 1 }

## Reply keywords: `keywords` replaces the default opt-out list, `extra_keywords` adds to it.
[limits.opt_out]
extra_keywords = ["UNSUB"]
opt_in = ["START", "UNSTOP"]
contains = ["退订"]

## Marketing to users who left this many messages unanswered in the window is suppressed.
[limits.sleeping]
after = 5
window_days = 30
"""


def toml_value(value: Any) -> str:
    """A value in TOML: JSON's string escapes are TOML's, and lists and tables are inline."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_defaults=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() and name.isascii() else json.dumps(name)


def _model_class(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _dict_of_models(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is dict:
        return _model_class(get_args(annotation)[1])
    return None


def _line(name: str, info: FieldInfo, commented: bool) -> str:
    if info.is_required() or info.default is None:
        if not info.examples:
            raise ValueError(f"{name}: a key without a default needs an example (Field(examples=[...]))")
        return f"# {name} = {toml_value(info.examples[0])}"
    default = info.get_default(call_default_factory=True)
    if isinstance(default, tuple) and default and all(isinstance(item, BaseModel) for item in default):
        # A list of tables reads best one table a line.
        items = [f"  {toml_value(item.model_dump())}," for item in default]
        return "\n".join([f"{name} = [", *items, "]"])
    return f"{'# ' if commented else ''}{name} = {toml_value(default)}"


def _section(path: str, model: type[BaseModel], commented: bool = False) -> Iterator[str]:
    scalars = []
    subsections: list[tuple[str, type[BaseModel], bool]] = []
    for name, info in model.model_fields.items():
        nested, keyed = _model_class(info.annotation), _dict_of_models(info.annotation)
        if nested is not None:
            subsections.append((f"{path}.{name}" if path else name, nested, commented))
        elif keyed is not None:
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            example_name = str(extra.get("section_name", "example"))
            subsections.append((f"{path}.{name}.{example_name}" if path else f"{name}.{example_name}", keyed, True))
        elif name not in _OWN_SECTIONS or path:
            scalars.append((name, info))
    if path:
        yield ""
        yield f"{'# ' if commented else ''}[{path}]"
    for name, info in scalars:
        yield f"{'## ' if commented else '# '}{info.description}"
        yield _line(name, info, commented)
    for sub_path, sub_model, sub_commented in subsections:
        description = _description_of(model, sub_path.removeprefix(f"{path}.").split(".")[0])
        yield ""
        yield f"{'## ' if sub_commented else '# '}{description}" if description else ""
        yield from list(_section(sub_path, sub_model, sub_commented))[1:]


def _description_of(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    return info.description if info is not None else None


# Top-level keys rendered by their own code below (providers, routing, limits), or not at all:
# `config` is set by the loader, and a key belongs in the environment or a secret file.
_OWN_SECTIONS = frozenset({"providers", "routing", "limits", "config", "api_key"})


def _provider_sections() -> Iterator[str]:
    from providers.catalog import provider_types

    yield ""
    yield "# One section per provider account; `type` defaults to the section's name, so several accounts of"
    yield '# one type are [providers.<any name>] with type = "<type>". A credential may come from a file'
    yield "# (a mounted secret) as <key>_file. docs/providers.md has each provider's details."
    for kind in provider_types().values():
        yield ""
        yield f"# [providers.{kind.name}]"
        for extra in kind.extra_keys:
            yield _provider_line(extra.name, extra.example, extra.doc)
        for f in dataclasses.fields(kind.settings):
            doc, example = str(f.metadata.get("doc", "")), f.metadata.get("example")
            if not doc:
                raise ValueError(f"providers.{kind.name}.{f.name}: no doc; declare it with providers.base.setting()")
            if f.metadata.get("from_key_file"):
                continue
            if f.default is dataclasses.MISSING or f.default is None:
                if example is None:
                    raise ValueError(f"providers.{kind.name}.{f.name}: a key without a default needs an example")
                value = example
            else:
                value = f.default
            yield _provider_line(f"{f.name}_file" if not f.repr else f.name, value, doc)


def _provider_line(name: str, value: Any, doc: str) -> str:
    return f"## {doc}\n# {name} = {toml_value(value)}"


def _commented(block: str) -> Iterator[str]:
    yield ""
    for line in block.splitlines():
        yield line if line.startswith("##") else f"# {line}" if line else ""


def render() -> str:
    from gateway.settings import Settings

    lines = [HEADER]
    lines.extend(_section("", Settings))
    lines.extend(_provider_sections())
    lines.extend(_commented(ROUTING_EXAMPLE))
    lines.extend(_commented(LIMITS_EXAMPLE))
    text = "\n".join(lines) + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text
