"""Message templates: declared variables, per-channel bodies with `{{ name }}` placeholders, the
safety check every body passes at save, typed parameters and rendering. Pure.

A body may hold only what cannot reach Python's internals or run away:
- `{{ name }}` placeholders of declared variables (and literal constants);
- `{% if name %}…{% elif other %}…{% else %}…{% endif %}` on a variable's truth (`not name` too): a
  greeting that leaves out an absent name is ordinary copy, and a branch runs at most once;
- the filters upper, lower, trim and default("…") (a constant text for an empty or absent value).
Anything else — attribute or item access (`{{ ''.__class__ }}`), calls, loops, assignments,
macros, includes, arithmetic — is refused at save with the reason, and rendering runs in jinja2's
ImmutableSandboxedEnvironment with StrictUndefined all the same.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

VARIABLE_TYPES = ("string", "integer", "number", "boolean", "url", "date")
LENGTH_TYPES = ("string", "url")
# Fields copied as written (a TTS voice's name is no copy); every other field is a template.
LITERAL_FIELDS = frozenset({("voice", "language"), ("voice", "voice")})
ALLOWED_FILTERS = ("upper", "lower", "trim", "default")
ALLOWED_SUMMARY = (
    "only {{ name }} placeholders of declared variables, {% if name %}…{% endif %} and the filters "
    + ", ".join(ALLOWED_FILTERS[:-1])
    + ' and default("…") are allowed'
)
URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f]+$", re.ASCII)
# A JSON pointer token.
_ESCAPES = str.maketrans({"~": "~0", "/": "~1"})


@dataclass(frozen=True, slots=True)
class Variable:
    type: str = "string"
    required: bool = False
    max_length: int | None = None
    example: str | int | float | bool | None = None


@dataclass(frozen=True)
class TemplateContent:
    """What a draft holds and a version freezes."""

    variables: Mapping[str, Variable]  # in declared order
    channels: Mapping[str, Mapping[str, Any]]
    locales: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    # Per provider name, that provider's ids of the approved template ({"template_code": ...}).
    providers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    description: str = ""
    category: str = "marketing"

    def bodies(self, locale: str | None = None) -> dict[str, dict[str, Any]]:
        """Each channel's body; a locale variant's fields override the base's, field by field (and
        a channel the base lacks is the variant's own)."""
        bodies = {channel: dict(body) for channel, body in self.channels.items()}
        for channel, body in (self.locales.get(locale or "", {}) or {}).items():
            bodies[channel] = {**bodies.get(channel, {}), **body}
        return bodies


def content_from_json(value: Mapping[str, Any]) -> TemplateContent:
    """A stored draft or version back as a TemplateContent."""
    variables = {name: Variable(**spec) for name, spec in value.get("variables", {}).items()}
    return TemplateContent(
        variables=variables,
        channels=value.get("channels", {}),
        locales=value.get("locales", {}),
        providers=value.get("providers", {}),
        description=value.get("description", ""),
        category=value.get("category", "marketing"),
    )


def pointer_token(key: str) -> str:
    return "/" + key.translate(_ESCAPES)


# -- the safety check at save -------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    # A boolean reads as JSON writes it, not as Python's True.
    return ("true" if value else "false") if isinstance(value, bool) else value


def _default(value: Any, fallback: str = "") -> Any:
    """default("…"): for an optional variable left out (given to the body as "")."""
    return fallback if value == "" else value


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=autoescape, undefined=StrictUndefined, finalize=_finalize, keep_trailing_newline=True
    )
    env.filters = {name: env.filters[name] for name in ("upper", "lower", "trim")}
    env.filters["default"] = _default
    env.tests = {}
    env.globals = {}
    return env


PLAIN = _environment(autoescape=False)
HTML = _environment(autoescape=True)


def body_problem(source: str, declared: Mapping[str, Variable]) -> str | None:
    """Why a body may not be saved, or None when it holds only what is allowed."""
    try:
        tree = PLAIN.parse(source)
    except TemplateSyntaxError as exc:
        return f"is not a valid template: {exc.message} (line {exc.lineno})"
    for node in _walk(tree):
        refusal = _node_refusal(node, declared)
        if refusal is not None:
            return refusal
    return None


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


_STRUCTURE = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.If, nodes.Not)
_REFUSALS: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Getattr, "reads an attribute ({{ x.y }})"),
    (nodes.Getitem, "reads an item ({{ x['y'] }})"),
    (nodes.Call, "calls a function"),
    (nodes.For, "has a loop ({% for %})"),
    (nodes.Macro, "defines a macro"),
    (nodes.Assign, "assigns a variable ({% set %})"),
    (nodes.AssignBlock, "assigns a variable ({% set %})"),
    (nodes.Include, "includes another template"),
    (nodes.Import, "imports another template"),
    (nodes.FromImport, "imports another template"),
    (nodes.Extends, "extends another template"),
)


def _node_refusal(node: nodes.Node, declared: Mapping[str, Variable]) -> str | None:
    if isinstance(node, nodes.Name):
        if node.name not in declared:
            names = ", ".join(declared) or "none"
            return f"uses {{{{ {node.name} }}}}, which is not a declared variable (declared: {names})"
        return None
    if isinstance(node, nodes.If):
        tests = [node.test, *(branch.test for branch in node.elif_)]
        if not all(_is_truth_test(test) for test in tests):
            return "tests something other than a variable in {% if %}: write {% if name %} or {% if not name %}"
        return None
    if isinstance(node, nodes.Filter):
        return _filter_refusal(node)
    if isinstance(node, _STRUCTURE):
        return None
    for kind, what in _REFUSALS:
        if isinstance(node, kind):
            return f"{what}: {ALLOWED_SUMMARY}"
    return f"uses {{{{ … }}}} or {{% … %}} beyond placeholders ({type(node).__name__}): {ALLOWED_SUMMARY}"


def _is_truth_test(test: nodes.Node) -> bool:
    while isinstance(test, nodes.Not):
        test = test.node
    return isinstance(test, nodes.Name)


def _filter_refusal(node: nodes.Filter) -> str | None:
    if node.name not in ALLOWED_FILTERS:
        return f"uses the filter {node.name!r}: {ALLOWED_SUMMARY}"
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        return f"gives the filter {node.name!r} named or spread arguments: {ALLOWED_SUMMARY}"
    wanted = 1 if node.name == "default" else 0
    constants = all(isinstance(arg, nodes.Const) and isinstance(arg.value, str) for arg in node.args)
    if len(node.args) != wanted or not constants:
        return 'takes one constant text in default("…") and no argument in the other filters'
    return None


def template_sources(content: TemplateContent) -> Iterator[tuple[str, str, str, str]]:
    """(pointer, channel, field, source) of every body text that is a template, base and locales."""
    yield from _channel_sources("/channels", content.channels)
    for locale, channels in content.locales.items():
        yield from _channel_sources(f"/locales{pointer_token(locale)}", channels)


def _channel_sources(base: str, channels: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, str, str, str]]:
    for channel, body in channels.items():
        for name, value in body.items():
            if (channel, name) in LITERAL_FIELDS:
                continue
            yield from _json_sources(f"{base}/{channel}/{name}", channel, name, value)


def _json_sources(path: str, channel: str, name: str, value: Any) -> Iterator[tuple[str, str, str, str]]:
    if isinstance(value, str):
        yield path, channel, name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _json_sources(path + pointer_token(str(key)), channel, name, item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_sources(f"{path}/{index}", channel, name, item)


def template_problems(content: TemplateContent) -> list[tuple[str, str]]:
    """Every reason the template may not be saved, as (JSON pointer of the body, message)."""
    problems = [
        (f"/variables{pointer_token(name)}{field_path}", message)
        for name, variable in content.variables.items()
        for field_path, message in variable_problems(variable)
    ]
    for path, _, _, source in template_sources(content):
        refusal = body_problem(source, content.variables)
        if refusal is not None:
            problems.append((path, refusal))
    return problems


def variable_problems(variable: Variable) -> list[tuple[str, str]]:
    """(field under the variable, message) for a declaration that contradicts itself."""
    problems: list[tuple[str, str]] = []
    if variable.max_length is not None and variable.type not in LENGTH_TYPES:
        problems.append(("/max_length", f"applies to string and url variables, not to {variable.type}"))
    if variable.example is not None:
        _, refusal = judge_value(variable, variable.example)
        if refusal is not None:
            problems.append(("/example", refusal))
    return problems


# -- parameters ---------------------------------------------------------------------------------------


def judge_value(variable: Variable, value: Any) -> tuple[Any, str | None]:
    """The value as the variable's type holds it, or the reason it is not one."""
    kind = variable.type
    if kind == "boolean":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 3.0 is the integer 3
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else (None, "must be an integer")
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return (value, None) if ok else (None, "must be a number")
    if not isinstance(value, str):
        return None, "must be a string"
    if variable.max_length is not None and len(value) > variable.max_length:
        return None, f"must be at most {variable.max_length} characters (got {len(value)})"
    if kind == "url" and not URL.match(value):
        return None, "must be an http or https URL without white space"
    if kind == "date" and not _is_date(value):
        return None, "must be a date in the form YYYY-MM-DD"
    return value, None


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def judge_params(
    variables: Mapping[str, Variable], params: Mapping[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The params typed by their declarations, and (variable name, message) for each one wrong,
    missing or not declared."""
    problems = [(name, "is not a declared variable of this template") for name in params if name not in variables]
    judged: dict[str, Any] = {}
    for name, variable in variables.items():
        if name not in params:
            if variable.required:
                problems.append((name, "is required"))
            continue
        value, refusal = judge_value(variable, params[name])
        if refusal is not None:
            problems.append((name, refusal))
        else:
            judged[name] = value
    return judged, problems


def param_text(value: Any) -> str:
    """A parameter as a provider's template variable takes it: text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# -- rendering ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)  # bodies are up to 200 kB (an e-mail): bounded memory
def _compiled(source: str, html: bool) -> Any:
    return (HTML if html else PLAIN).from_string(source)


def render_text(source: str, params: Mapping[str, Any], *, html: bool = False) -> str:
    """One body text rendered; params as render_params gives them, for a checked template."""
    return str(_compiled(source, html).render(params))


def render_params(variables: Mapping[str, Variable], judged: Mapping[str, Any]) -> dict[str, Any]:
    """Judged params with every optional variable left out given as "" (so `{% if name %}` is false
    and default("…") applies): a checked template then names no value it is not given."""
    return {name: judged.get(name, "") for name in variables}


def _render_json(value: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render_text(value, params)
    if isinstance(value, Mapping):
        return {key: _render_json(item, params) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_json(item, params) for item in value]
    return value


def render_body(channel: str, body: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A channel's body rendered into the content a job on that channel carries (webhook: `payload`)."""
    content: dict[str, Any] = {}
    for name, value in body.items():
        if (channel, name) in LITERAL_FIELDS:
            content[name] = value
        elif channel == "webhook" and name == "json":
            content["payload"] = _render_json(value, params)
        elif name == "data" and isinstance(value, Mapping):
            content[name] = {key: render_text(item, params) for key, item in value.items()}
        else:
            content[name] = render_text(str(value), params, html=(channel, name) == ("email", "html"))
    return content


def render(content: TemplateContent, judged: Mapping[str, Any], locale: str | None = None) -> dict[str, dict[str, Any]]:
    """Every channel's body rendered with judged params (judge_params)."""
    params = render_params(content.variables, judged)
    return {channel: render_body(channel, body, params) for channel, body in content.bodies(locale).items()}
