"""config/gateway.example.toml is the settings models rendered: complete, described and valid."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest

from gateway.config_example import LIMITS_EXAMPLE, ROUTING_EXAMPLE, render
from gateway.domain.limits import parse_limits
from gateway.domain.optout import parse_opt_out
from gateway.domain.quiet_hours import parse_quiet_hours
from gateway.domain.routing import parse_routing
from gateway.provider_registry import build_configured
from gateway.settings import Settings, load_settings
from providers.catalog import provider_types

EXAMPLE = Path(__file__).parents[2] / "config" / "gateway.example.toml"


_COMMENTED_KEY = re.compile(r'^# (?=[\w"*-]+ = |\[|  |\])')


def _uncommented(text: str) -> str:
    """The example with every commented key and section switched on (prose stays comments)."""
    return "\n".join(_COMMENTED_KEY.sub("", line) for line in text.splitlines())


def _known_keys(parse: Any, value: dict[str, Any], key: str) -> set[str]:
    """The keys a domain parser accepts, as its error for an unknown one lists them to the operator."""
    with pytest.raises(ValueError, match="unknown key") as caught:
        parse({**value, "no-such-key": 1})
    listed = re.search(r"\(known: ([^)]*)\)", str(caught.value))
    assert listed, f"{key}: the error names no known keys: {caught.value}"
    return {k.strip() for k in listed.group(1).split(",")}


def test_the_committed_example_is_the_rendered_one() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == render(), "run: gateway config-example > config/gateway.example.toml"


def test_the_example_as_written_loads_and_equals_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(render(), encoding="utf-8")
    loaded = load_settings({"GATEWAY_CONFIG": str(config)})
    defaults = load_settings({})
    assert loaded.model_dump(exclude={"config"}) == defaults.model_dump(exclude={"config"})


def test_every_typed_key_is_in_the_example_with_its_description() -> None:
    text = render()
    keys = set(re.findall(r"^(?:# )?([a-z_]+) = ", text, flags=re.M))
    missing = []

    def walk(model: Any, prefix: str) -> None:
        for name, info in model.model_fields.items():
            assert info.description, f"{prefix}{name} has no description"
            nested = info.annotation
            if isinstance(nested, type) and hasattr(nested, "model_fields"):
                walk(nested, f"{prefix}{name}.")
            elif get_origin(nested) is dict and hasattr(get_args(nested)[1], "model_fields"):
                if f"[{prefix}{name}." not in text:
                    missing.append(prefix + name)
                walk(get_args(nested)[1], f"{prefix}{name}.<name>.")
            elif name not in keys and name not in {"providers", "routing", "limits", "config", "api_key"}:
                missing.append(prefix + name)

    walk(Settings, "")
    assert not missing


def test_every_provider_type_has_a_section_whose_keys_build_it(tmp_path: Path) -> None:
    text = _uncommented(render())
    for secret in re.findall(r'"(/run/secrets/[^"]+)"', text):
        path = tmp_path / Path(secret).name
        if path.name.startswith("fcm"):
            path.write_text(_service_account(), encoding="utf-8")
        else:
            path.write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" if "webhook" in secret else "secret-value")
        text = text.replace(secret, str(path))
    providers = tomllib.loads(text)["providers"]
    assert set(providers) == set(provider_types())
    config = tmp_path / "providers.toml"
    config.write_text(_toml_tables("providers", providers), encoding="utf-8")
    settings = load_settings({"GATEWAY_CONFIG": str(config)})
    assert sorted(p.name for p in build_configured(settings)) == sorted(provider_types())


def _toml_tables(root: str, sections: dict[str, dict[str, Any]]) -> str:
    from gateway.config_example import toml_value

    out = []
    for name, section in sections.items():
        out.append(f"[{root}.{name}]")
        out.extend(f"{key} = {toml_value(value)}" for key, value in section.items())
    return "\n".join(out) + "\n"


def test_routing_and_limits_examples_parse_and_name_every_key() -> None:
    routing = tomllib.loads(_uncommented(ROUTING_EXAMPLE))["routing"]
    parse_routing(routing)
    assert _known_keys(parse_routing, {}, "routing") == set(routing)

    limits = tomllib.loads(_uncommented(LIMITS_EXAMPLE))["limits"]
    parse_limits(limits)
    parse_quiet_hours(limits["quiet_hours"])
    parse_opt_out(limits["opt_out"])
    assert _known_keys(parse_limits, {}, "limits") == set(limits)
    opt_out_known = _known_keys(parse_opt_out, {}, "limits.opt_out")
    assert opt_out_known - set(limits["opt_out"]) <= {"keywords"}, "every opt-out key but the replacing list is shown"


def test_the_example_blocks_are_in_the_rendered_file() -> None:
    text = render()
    assert "# [routing]" in text and "# [limits.sleeping]" in text
    assert 'deny = { country = "CN", province = "Xinjiang" }' in text


def _service_account() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    import json

    return json.dumps({"project_id": "demo", "client_email": "gw@demo.iam.gserviceaccount.com", "private_key": pem})
