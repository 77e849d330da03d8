"""The template the fuzz test publishes before its run, for generated jobs to name."""

from __future__ import annotations

import json
import urllib.request

from tests.harness import API_KEY

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

# A person with an address on every channel, created before the run: a generated job for a `user_id`
# without `to` names this one (another user_id is unknown: a 422 for the state, not the shape), and the
# generator leaves the profile and its preferences as they are.
FUZZ_PERSON = "fuzz-person"
FUZZ_PERSON_BODY = {
    "phone": "+14155550199",
    "email": "fuzz@example.com",
    "push_tokens": [{"token": "fuzz-token-0001", "platform": "android"}],
    "webhook_url": "https://example.com/fuzz-hook",
}


def put_person(url: str, user_id: str) -> int:
    """PUT a person with FUZZ_PERSON_BODY on the gateway at `url`; returns the answer's status."""
    request = urllib.request.Request(
        f"{url}/v1/recipients/{user_id}",
        data=json.dumps(FUZZ_PERSON_BODY).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)
