"""A job's provider template ids, as the adapters read them and the accept path checks them.

A job rendered from a template version that has provider template ids carries, in its stored
content, `template_params` (the rendered params as strings, in the template's declared variable
order) and `provider_templates`: {provider name: {id key: value}}, the provider name as routing
names it (the configured section, e.g. "aliyun" or "aliyun_marketing"). The id keys per provider
type: aliyun `template_code` (+ `sign_name`), twilio `content_sid` (+ `variables`), tencent
`template_id` (+ `sign_name`). Pure: no I/O, safe to call on the accept path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.base import Capabilities

PROVIDER_TEMPLATES = "provider_templates"
TEMPLATE_PARAMS = "template_params"


def template_ids(content: Mapping[str, Any], provider: str) -> dict[str, str]:
    """The template ids this job gives for the provider named `provider` ({} when none)."""
    by_provider = content.get(PROVIDER_TEMPLATES)
    if not isinstance(by_provider, Mapping):
        return {}
    ids = by_provider.get(provider)
    if not isinstance(ids, Mapping):
        return {}
    return {str(key): str(value) for key, value in ids.items() if value not in (None, "")}


def template_params(content: Mapping[str, Any]) -> dict[str, str]:
    """The job's rendered template params, as strings, in their declared order ({} when none).
    Providers take strings only (Aliyun refuses {"code": 123456})."""
    params = content.get(TEMPLATE_PARAMS)
    if not isinstance(params, Mapping):
        return {}
    return {str(key): "" if value is None else str(value) for key, value in params.items()}


def has_template_for(capabilities: Capabilities, content: Mapping[str, Any], provider: str) -> bool:
    """Whether the job names a template of this provider with every id it needs."""
    ids = template_ids(content, provider)
    return bool(ids) and capabilities.template_id_keys <= ids.keys()


def sendable_by(capabilities: Capabilities, content: Mapping[str, Any], provider: str) -> bool:
    """Whether the provider named `provider` can send this job's content: any content when it takes
    free text, else only content naming one of its registered templates. For the accept path: a
    route whose providers all say False is a 422 (the job's text cannot go out as it is)."""
    if not capabilities.requires_registered_template:
        return True
    return has_template_for(capabilities, content, provider)
