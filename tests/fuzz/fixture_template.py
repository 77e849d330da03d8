"""The template the fuzz test publishes before its run, for generated jobs to name."""

from __future__ import annotations

# A published template with a body for every channel and no variables, created by the fuzz test before
# the run: a generated job that names a template names this one (any other name is unknown, a state
# JSON Schema cannot know), and the generator leaves it as it is (archived or edited, it would refuse
# later jobs for their state, not their shape).
FUZZ_TEMPLATE = "fuzz-fixture"
FUZZ_TEMPLATE_BODY = {
    "name": FUZZ_TEMPLATE,
    "channels": {
        "sms": {"text": "fuzz notice"},
        "push": {"title": "fuzz", "body": "notice"},
        "email": {"subject": "fuzz", "text": "notice"},
        "voice": {"text": "fuzz notice"},
        "webhook": {"json": {"fuzz": "notice"}},
    },
}
