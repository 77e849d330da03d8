"""The console's advice reads as sentences: after the verdict, the advice starts with a capital and
ends with a full stop, on the requeue preview, the failure group and the message page."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlencode

from gateway.domain.failures import advice_for
from tests.console import FAILING_SANDBOX, Console, requeueable_group, seeded_traffic
from tests.harness import running_gateway

ADVICE_BOX = re.compile(r'<p class="advice-box">(.*?)</p>', re.S)


def advice_shown(page: str) -> str:
    found = ADVICE_BOX.search(page)
    assert found, "the page shows no advice"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


async def test_requeue_advice_starts_its_sentence_with_a_capital(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, FAILING_SANDBOX) as gw:
        await seeded_traffic(gw, messages=20)
        group = await requeueable_group(gw)
        advice = advice_for(group["reason"])
        as_sentence = advice.action[0].upper() + advice.action[1:] + "."
        assert advice.action[0].islower(), "the advice is written as a fragment; this test needs such a reason"
        query = urlencode({"reason": group["reason"], "provider": group["provider"]})
        async with Console(gw) as console:
            await console.sign_in()
            _, preview = await console.get(f"/ui/failures/requeue?{query}")
            _, group_page = await console.get(f"/ui/failures/group?{query}")
            _, message_page = await console.get(f"/ui/messages/{group['sample_ids'][0]}")

    if advice.retry_helps:
        assert advice_shown(preview) == f"A retry helps. {as_sentence}"
        assert advice_shown(group_page) == f"A retry helps. {as_sentence}"
        assert advice_shown(message_page) == f"{group['reason']}: a retry helps. {as_sentence}"
    else:
        assert advice_shown(preview) == (
            f"A retry does not help for this reason; requeue only if its cause is fixed. {as_sentence}"
        )
        assert advice_shown(group_page) == f"A retry does not help. {as_sentence}"
        assert advice_shown(message_page) == f"{group['reason']}: a retry does not help. {as_sentence}"
