"""Templates kept as files (docs/templates.md#templates-as-files): one TOML file per template,
`<name>.toml`, holding what `POST /v1/templates` takes (the file's name is the template's name).
A file is judged exactly as that request body is, and compared with the stored draft by a hash of
the draft as stored, so a push of unchanged files changes nothing."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import tomli_w

from gateway.contract.templates import NAME_PATTERN, NewTemplate, judge_template
from gateway.domain.jobs import FieldError
from gateway.domain.templates import content_from_json, template_problems

SUFFIX = ".toml"
# The draft's fields in the order a person reads them; `name` is the file's own name.
FIELD_ORDER = ("description", "category", "variables", "channels", "locales", "providers")


class TemplateFileError(ValueError):
    """A file that is not a valid template: its path, and each field with what is wrong."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("; ".join(f"{path}: {field}: {message}" for field, message in problems))


@dataclass(frozen=True)
class TemplateFile:
    path: Path
    name: str
    draft: dict[str, Any]

    @property
    def digest(self) -> str:
        return draft_digest(self.draft)


def draft_digest(draft: Mapping[str, Any]) -> str:
    """The same for the same draft however its keys were ordered (a file's, a stored row's)."""
    return hashlib.sha256(orjson.dumps(draft, option=orjson.OPT_SORT_KEYS)).hexdigest()


def read_template_file(path: Path) -> TemplateFile:
    name = path.name.removesuffix(SUFFIX)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TemplateFileError(path, [("/", f"is not TOML: {exc}")]) from None
    given = data.pop("name", name)
    if given != name:
        raise TemplateFileError(path, [("/name", f"is {given!r}, but the file is named for {name!r}")])
    judged, errors = judge_template(NewTemplate, {"name": name, **data})
    if judged is None:
        if any(e.field == "/name" for e in errors):
            errors = [e for e in errors if e.field != "/name"] + [_bad_name(name)]
        raise TemplateFileError(path, [(e.field, e.message) for e in errors])
    draft = judged.draft_json()
    problems = template_problems(content_from_json(draft))
    if problems:
        raise TemplateFileError(path, problems)
    return TemplateFile(path, name, draft)


def _bad_name(name: str) -> FieldError:
    return FieldError("/name", f"the file name {name!r} must be a template name ({NAME_PATTERN})")


def read_template_dir(directory: Path) -> list[TemplateFile]:
    """Every `*.toml` file of `directory`, judged; all the files' problems raised together, so a
    push with one bad file writes nothing."""
    if not directory.is_dir():
        raise TemplateFileError(directory, [("/", "is not a directory")])
    files, problems = [], []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            files.append(read_template_file(path))
        except TemplateFileError as exc:
            problems.append(exc)
    if problems:
        raise TemplateDirError(problems)
    return files


class TemplateDirError(ValueError):
    def __init__(self, errors: list[TemplateFileError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def template_toml(draft: Mapping[str, Any]) -> str:
    """The draft as a file `read_template_file` reads back to the same draft (empty fields left
    out: they read back as their defaults). TOML has no null: a
    webhook body holding one cannot be written (ValueError naming it)."""
    _refuse_null(draft, "")
    ordered = {key: draft[key] for key in FIELD_ORDER if draft.get(key) not in (None, "", {})}
    if "variables" in ordered:  # a variable's type first: it says what the other keys mean
        ordered["variables"] = {
            name: {"type": spec["type"], **{k: v for k, v in spec.items() if k != "type"}}
            for name, spec in ordered["variables"].items()
        }
    return tomli_w.dumps(ordered, multiline_strings=True)


def _refuse_null(value: Any, pointer: str) -> None:
    if value is None:
        raise ValueError(f"{pointer}: is null, which TOML cannot hold")
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _refuse_null(inner, f"{pointer}/{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _refuse_null(inner, f"{pointer}/{index}")


def write_template_files(directory: Path, texts: Mapping[str, str]) -> list[str]:
    """Each template's text to `<directory>/<name>.toml`, each file replaced whole (written beside it,
    then renamed) and only where it differs; a line per template saying what was done."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, text in texts.items():
        path = directory / f"{name}{SUFFIX}"
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            lines.append(f"{name}: unchanged ({path})")
            continue
        staged = path.with_name(f".{path.name}.tmp")
        staged.write_text(text, encoding="utf-8")
        staged.replace(path)
        lines.append(f"{name}: {'wrote' if old is None else 'updated'} {path}")
    return lines
