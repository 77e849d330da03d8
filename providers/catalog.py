"""The provider types on offer, found in the modules of this package, and the sections of the
configuration turned into adapters.

A module of providers/ that declares `PROVIDER_TYPE` is a provider type; adding one is that file,
its fake and its contract test. Settings errors name the key as the operator wrote it
(`providers.twilio.auth_token_file: ...`). Nothing here imports the gateway.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

import providers
from providers.base import Provider, ProviderType


@functools.cache
def provider_types() -> Mapping[str, ProviderType]:
    """Every provider type, by its `type` name, in module order."""
    found: dict[str, ProviderType] = {}
    for module in sorted(pkgutil.iter_modules(providers.__path__), key=lambda m: m.name):
        declared = getattr(importlib.import_module(f"providers.{module.name}"), "PROVIDER_TYPE", None)
        if isinstance(declared, ProviderType):
            if declared.name in found:
                raise RuntimeError(f"two provider modules declare the type {declared.name!r}")
            found[declared.name] = declared
    return found


def read_secret_file(path: Any, key: str) -> str:
    """A credential from a file (a mounted secret): its text without the trailing newline."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"{key}: must be the path of a file holding the secret")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"{key}: cannot read {path}: {reason}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{key}: {path} is empty")
    return secret


def type_of(name: str, section: Mapping[str, Any]) -> ProviderType:
    kind = str(section.get("type", name))
    found = provider_types().get(kind)
    if found is None:
        raise ValueError(f"providers.{name}.type: {kind!r} is not one of {', '.join(provider_types())}")
    return found


def secret_files(kind: ProviderType) -> dict[str, str]:
    """The credentials of a provider type, by the key of the file that may hold each one: the
    adapter keeps them out of its repr, and the settings hold them as SecretStr."""
    files = {f"{f.name}_file": f.name for f in dataclasses.fields(kind.settings) if not f.repr}
    return {**files, **kind.secret_extras}


def resolve_secrets(sections: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each provider section with `<secret>_file` read into `<secret>`, and every credential held as a
    SecretStr so no repr, log line or dump of the settings shows it. Errors name the key."""
    resolved: dict[str, dict[str, Any]] = {}
    for name, raw in sections.items():
        if not isinstance(raw, Mapping):
            raise ValueError(f"providers.{name}: expected a table of settings")
        section = dict(raw)
        files = secret_files(type_of(name, section))
        for file_key, secret in sorted(files.items()):
            if file_key not in section:
                continue
            if section.get(secret) is not None:
                raise ValueError(f"providers.{name}.{file_key}: give {secret} or {file_key}, not both")
            section[secret] = read_secret_file(section.pop(file_key), f"providers.{name}.{file_key}")
        for secret in files.values():
            value = section.get(secret)
            if isinstance(value, str):
                section[secret] = SecretStr(value)
        resolved[name] = section
    return resolved


def _revealed(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in section.items()}


def settings_of(kind: ProviderType, name: str, section: Mapping[str, Any]) -> Any:
    """The adapter's settings dataclass, with errors that name the key as the operator wrote it."""
    fields = {f.name: f for f in dataclasses.fields(kind.settings)}
    for key in section:
        if key not in fields:
            raise ValueError(f"providers.{name}.{key}: unknown setting (known: {', '.join(sorted(fields))})")
    for field in fields.values():
        missing = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if missing and field.name not in section:
            raise ValueError(f"providers.{name}.{field.name}: is required")
    try:
        return kind.settings(**section)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"providers.{name}: {exc}") from None


def build_sections(sections: Mapping[str, Mapping[str, Any]], public_url: str) -> list[Provider]:
    """Adapters from `[providers.<name>]` sections; constructing one opens nothing."""
    built = []
    for name, raw in sections.items():
        section = _revealed(raw)
        kind = type_of(name, section)
        section.pop("type", None)
        if kind.prepare is not None:
            try:
                section = kind.prepare(section, public_url)
            except ValueError as exc:
                raise ValueError(f"providers.{name}.{exc}") from None
        built.append(kind.build(settings_of(kind, name, section), name))
    return built


def accounts_of(sections: Mapping[str, Mapping[str, Any]], built: list[Provider]) -> dict[str, str]:
    """Provider name -> its account's throughput name, e.g. twilio-us -> "twilio:AC123"."""
    by_name = {p.name: p for p in built}
    accounts: dict[str, str] = {}
    for name, raw in sections.items():
        kind = type_of(name, raw)
        adapter_settings = getattr(by_name.get(name), "settings", None)
        value = getattr(adapter_settings, kind.account_key, None) if kind.account_key else None
        if value:
            accounts[name] = f"{kind.name}:{value}"
    return accounts
