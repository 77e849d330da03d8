"""Which clicks count as a person's: link previews, crawlers and mail scanners do not, whatever the
case they write their names in; a HEAD or a click without a User-Agent does not either."""

from __future__ import annotations

import pytest

from gateway.domain.tracking import looks_automated

PEOPLE = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; V2231A) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
    "Chrome/101.0 Mobile Safari/537.36 MicroMessenger/8.0.47",
]
MACHINES = [
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp/2.23.20.0 A",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Java/17.0.2",
    "Mimecast URL Protect",
]


@pytest.mark.parametrize("agent", PEOPLE)
def test_a_browser_is_a_person(agent: str) -> None:
    assert looks_automated(agent) is False
    assert looks_automated(agent, "get") is False


@pytest.mark.parametrize("agent", MACHINES)
def test_previews_crawlers_and_scanners_are_not_people_in_any_case(agent: str) -> None:
    assert looks_automated(agent) is True
    assert looks_automated(agent.upper()) is True


def test_a_head_or_no_agent_is_a_probe() -> None:
    assert looks_automated(PEOPLE[0], "HEAD") is True
    assert looks_automated("") is True
    assert looks_automated(None) is True
