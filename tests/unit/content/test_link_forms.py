"""What a handset opens for a link written with a full-width scheme or a non-ASCII path, and where
tracking sends the click (docs/content.md)."""

from __future__ import annotations

from gateway.domain.content.links import find_links
from gateway.domain.tracking import rewrite_links


def test_a_full_width_scheme_link_opens_its_ascii_address() -> None:
    [link] = find_links("点击 ｈｔｔｐｓ：／／a.cn/x 领取")
    assert (link.url, link.href, link.host) == ("ｈｔｔｐｓ：／／a.cn/x", "https://a.cn/x", "a.cn")


def test_an_iri_path_is_one_link_opened_percent_encoded() -> None:
    [link] = find_links("https://a.cn/路径/中文领取")
    assert link.url == "https://a.cn/路径/中文领取"
    assert link.href == "https://a.cn/%E8%B7%AF%E5%BE%84/%E4%B8%AD%E6%96%87%E9%A2%86%E5%8F%96"


def test_tracking_replaces_the_whole_link_and_redirects_to_what_the_handset_would_open() -> None:
    written = "点击 ｈｔｔｐｓ：／／a.cn/x 和 https://b.cn/活动 领取"
    text, tracked = rewrite_links(written, "https://go.example", lambda _: "T")
    assert text == "点击 https://go.example/c/T 和 https://go.example/c/T 领取"
    assert [link.url for link in tracked] == ["https://a.cn/x", "https://b.cn/%E6%B4%BB%E5%8A%A8"]
