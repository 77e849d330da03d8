"""Claim tokens (pure): genuine ones read back; altered, truncated, foreign or expired ones do not pass."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gateway.domain.claims import Claim, ClaimResult, judge, mint, read, with_claim

SECRET = b"s" * 32
CLAIM = Claim("msg_01JD5ZQ8W1X2Y3Z4A5B6C7D8E9", "spring", 2_000_000_000)


def test_a_genuine_token_reads_back_and_carries_no_personal_data() -> None:
    token = mint(SECRET, CLAIM)
    assert read(SECRET, token) == CLAIM
    assert judge(read(SECRET, token), 1_900_000_000) is None
    assert judge(read(SECRET, token), 2_000_000_000) == ClaimResult.EXPIRED
    assert mint(SECRET, CLAIM) == token  # the same message's token on every click
    assert read(SECRET, mint(SECRET, Claim(CLAIM.message_id, None, 5))) == Claim(CLAIM.message_id, None, 5)


def test_an_altered_truncated_or_foreign_token_is_forged() -> None:
    token = mint(SECRET, CLAIM)
    payload, mac = token.split(".")
    other = mint(SECRET, Claim("msg_01JD5ZQ8W1X2Y3Z4A5B6C7D8E0", "spring", 2_000_000_000))
    for forged in (
        token[:-1],
        token[:20],
        payload,
        f"{other.split('.')[0]}.{mac}",
        f"{payload}.{'A' * len(mac)}",
        mint(b"another secret", CLAIM),
        "",
        ".",
    ):
        assert read(SECRET, forged) is None, forged
        assert judge(read(SECRET, forged), 0) == ClaimResult.FORGED


def test_the_token_goes_into_the_query_beside_what_is_there() -> None:
    url = with_claim("https://shop.example.com/coupon?item=42", "abc.def")
    assert parse_qs(urlsplit(url).query) == {"item": ["42"], "claim": ["abc.def"]}
