"""What the checks after the JSON parse cost on the accept path (duplicate keys, long integers).

    .venv/bin/python bench/body_checks.py [--repeat 7] [--gateway-root DIR]

Times, in a tight loop, orjson's parse of a body (the reference) and the checks `read_json` runs
on the parsed body, for the ~300 B job of bench/accept.py, the same job as Python's `json.dumps`
writes it by default (every CJK character a \\uXXXX escape) and a batch of 1000 keyed jobs.
`--gateway-root` runs an older source tree for an A/B comparison in the same launch. Prints a
Markdown table (best of --repeat runs, CPU µs per body); figures go to docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accept import JOB
from common import markdown_table

ESCAPED_JOB = json.dumps(
    {
        "channel": "sms",
        "to": "+8613812345678",
        "content": {"text": "【商城】李先生，您的优惠券将于周日到期，请尽快使用。回T退订"},
        "category": "marketing",
        "campaign": "recall-2024-06",
        "user_id": "u-1",
        "metadata": {"segment": "dormant-30d"},
    }
).encode()


def bodies() -> dict[str, bytes]:
    single = JOB.replace("{d8}", "12345678").replace("{n}", "1").encode()
    items = [
        JOB.replace("{d8}", f"{i:08d}").replace("{n}", str(i))[:-1] + f',"idempotency_key":"b-{i}"}}'
        for i in range(1000)
    ]
    return {
        "single job (bench/accept.py)": single,
        "single job, ensure_ascii escapes": ESCAPED_JOB,
        "batch of 1000": ('{"messages":[' + ",".join(items) + "]}").encode(),
    }


def checks_of(root: Path | None) -> Callable[[bytes, Any], Any]:
    if root is not None:
        sys.path.insert(0, str(root))
    from gateway.api import bodies as module

    if hasattr(module, "check_parsed"):
        return module.check_parsed  # type: ignore[no-any-return]
    if hasattr(module, "duplicate_key"):
        return module.duplicate_key  # type: ignore[no-any-return]
    return lambda raw, parsed: module._may_have_duplicate_keys(raw, parsed) and module._first_duplicate_key(raw)


def best_us(fn: Callable[[], Any], repeat: int) -> float:
    number = 1
    while timeit.timeit(fn, number=number) < 0.05:
        number *= 4
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--gateway-root", type=Path, default=None)
    args = parser.parse_args()
    check = checks_of(args.gateway_root)
    rows = []
    for name, raw in bodies().items():
        parsed = orjson.loads(raw)
        parse = best_us(lambda raw=raw: orjson.loads(raw), args.repeat)
        checks = best_us(lambda raw=raw, parsed=parsed: check(raw, parsed), args.repeat)
        rows.append([name, f"{len(raw):,}", f"{parse:.2f}", f"{checks:.2f}", f"{checks / parse:.2f}"])
    print(markdown_table(["body", "bytes", "orjson.loads µs", "checks µs", "checks / parse"], rows))


if __name__ == "__main__":
    main()
