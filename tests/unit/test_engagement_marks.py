"""Clicks mark their people engaged once per message per minute (store/sql/tracking.EngagementMarks)."""

from __future__ import annotations

from typing import Any

from gateway.store.sql.tracking import ENGAGEMENT_RESOLUTION_SECONDS, EngagementMarks


def click(message_id: str, at: float, automated: bool = False) -> dict[str, Any]:
    return {"message_id": message_id, "at": at, "automated": automated}


def test_a_message_marked_lately_is_not_marked_again_until_the_interval_has_passed() -> None:
    marks = EngagementMarks()
    first = [click("msg_b", 100.0), click("msg_a", 100.5), click("msg_b", 101.0)]
    assert marks.due(first) == ["msg_a", "msg_b"]  # each message once, in a fixed order
    marks.committed(["msg_a", "msg_b"], first)
    assert marks.due([click("msg_a", 130.0), click("msg_c", 130.0)]) == ["msg_c"]
    later = 101.0 + ENGAGEMENT_RESOLUTION_SECONDS
    assert marks.due([click("msg_a", later), click("msg_b", later)]) == ["msg_a", "msg_b"]


def test_a_mark_whose_commit_failed_is_due_again_and_a_link_preview_is_never_due() -> None:
    marks = EngagementMarks()
    rows = [click("msg_a", 100.0), click("msg_p", 100.0, automated=True)]
    assert marks.due(rows) == ["msg_a"]
    assert marks.due(rows) == ["msg_a"]  # nothing committed in between: still due
