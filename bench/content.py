"""Content-policy throughput: texts/s with all rules on vs a baseline that only NFKC-normalises.

    .venv/bin/python bench/content.py [--texts 1000000] [--words 10000] [--runs 3] [--seed 7]

The texts look like Chinese marketing SMS of about 70 characters: a 【signature】, random CJK
characters from a 3,500-character alphabet (the size of the common-use set), a listed word in about
2% of texts, a link in about 20% (half of them glued to the text), and the unsubscribe suffix.
Both measurements run in the same process over the same texts; each figure is the median of --runs.
The running gateway's ContentService is measured on the same texts every one new, and on one
campaign copy sent to all; `--gateway-root DIR` measures another tree's gateway package (e.g. a
`git archive` of main) for an A/B in back-to-back launches.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if "--gateway-root" in sys.argv:  # another tree's gateway (e.g. a `git archive` of main) measured instead
    sys.path.insert(0, sys.argv[sys.argv.index("--gateway-root") + 1])

from gateway.content_service import ContentService
from gateway.domain.content import (
    ContentRules,
    SignatureRule,
    WordLists,
    check_content,
)
from gateway.settings import ContentSettings

CJK_FIRST, CJK_LAST = 0x4E00, 0x9FA5
SIGNATURES = ("【京东商城】", "【招商银行】", "【美团】", "【拼多多】", "【中国移动】")
LINKS = ("https://t.cn/A6x9Kq", "t.cn/RxY2", "https://m.example.com/p?id=42", "dwz.cn/a1B2c3")
SUFFIXES = ("回T退订", "拒收请回复R")


def make_words(rng: random.Random, alphabet: list[str], count: int) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choices(alphabet, k=rng.randint(2, 4))))
    return sorted(words)


def make_texts(rng: random.Random, alphabet: list[str], words: list[str], count: int) -> list[str]:
    texts = []
    for _ in range(count):
        signature = rng.choice(SIGNATURES)
        suffix = rng.choice(SUFFIXES)
        body_chars = 70 - len(signature) - len(suffix)
        body = rng.choices(alphabet, k=body_chars)
        if rng.random() < 0.02:
            word = rng.choice(words)
            at = rng.randrange(0, body_chars - len(word))
            body[at : at + len(word)] = word
        if rng.random() < 0.2:
            link = rng.choice(LINKS)
            at = rng.randrange(0, body_chars - len(link))
            body[at : at + len(link)] = link if rng.random() < 0.5 else f" {link} "
        body[rng.randrange(5, body_chars)] = "，"
        texts.append(signature + "".join(body)[:body_chars] + suffix)
    return texts


def time_per_text(function: Callable[[str], object], texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        function(text)
    return (time.perf_counter() - started) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1_000_000)
    parser.add_argument("--words", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gateway-root", default=None, help="measure the gateway package of this tree")
    arguments = parser.parse_args()

    rng = random.Random(arguments.seed)
    alphabet = [chr(code) for code in rng.sample(range(CJK_FIRST, CJK_LAST + 1), 3500)]
    words = make_words(rng, alphabet, arguments.words)
    texts = make_texts(rng, alphabet, words, arguments.texts)

    build_started = time.perf_counter()
    word_lists = WordLists.build({"global": (words, "block")})
    build_seconds = time.perf_counter() - build_started
    rules = ContentRules(
        max_segments=2,
        max_links=1,
        link_domain_allowlist=("t.cn", "dwz.cn", "example.com"),
        signature=SignatureRule(),
        unsubscribe_suffixes=SUFFIXES,
    )

    def nfkc_only(text: str) -> object:
        return unicodedata.normalize("NFKC", text)

    def all_rules(text: str) -> object:
        return check_content(text, channel="sms", rules=rules, words=word_lists, carrier="china_mobile")

    # The running gateway's ContentService keeps verdicts: every text new (nothing kept helps) against
    # a campaign's copy, one text for everyone (the kept verdict answers).
    service = ContentService(ContentSettings(blocklist_dir=""), store=None)  # the lists below only
    service.words = word_lists

    def service_check(text: str) -> object:
        return service.check_message(channel="sms", content={"text": text}, tenant_id="acme", to="+8613800138000")

    campaign_copy = [texts[0]] * len(texts)

    blocked = sum(not all_rules(text).ok for text in texts[:10_000])
    results: dict[str, list[float]] = {
        "baseline: NFKC only": [],
        "check_content, all rules": [],
        "service, every text new": [],
        "service, one campaign copy": [],
    }
    for _ in range(arguments.runs):
        results["baseline: NFKC only"].append(time_per_text(nfkc_only, texts))
        results["check_content, all rules"].append(time_per_text(all_rules, texts))
        results["service, every text new"].append(time_per_text(service_check, texts))
        results["service, one campaign copy"].append(time_per_text(service_check, campaign_copy))

    mean_chars = sum(map(len, texts)) / len(texts)
    print(
        f"python {platform.python_version()} on {platform.machine()}, one core; {len(texts):,} texts "
        f"of {mean_chars:.1f} chars, {len(words):,}-word list built in {build_seconds:.2f} s; "
        f"median of {arguments.runs} runs; {blocked / 100:.1f}% of texts have a block violation"
    )
    print(f"{'measurement':<28} {'texts/s':>12} {'µs/text':>9} {'vs baseline':>12}")
    baseline = statistics.median(results["baseline: NFKC only"])
    for name, seconds in results.items():
        median = statistics.median(seconds)
        print(f"{name:<28} {1 / median:>12,.0f} {median * 1e6:>9.2f} {median / baseline:>11.1f}x")


if __name__ == "__main__":
    main()
