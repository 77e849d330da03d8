"""The map of gateway/ holds: SQL stays in the store, and every module is one a reader can hold.

These read the source tree (no gateway runs); each names the files and lines that break the rule.
"""

from __future__ import annotations

import re
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
STORE = GATEWAY / "store"


def _sources() -> list[Path]:
    return sorted(GATEWAY.rglob("*.py"))


def test_nothing_outside_the_store_runs_sql_or_imports_it() -> None:
    """Handlers, CLI, console, worker, gate and number pool go through the Store's methods."""
    reaching_in = re.compile(r"\.db\.(read|write)\(|gateway\.store\.sql\b|gateway\.store\.schema\b|\bsqlalchemy\b")
    found = [
        f"{path.relative_to(GATEWAY.parent)}:{n}: {line.strip()}"
        for path in _sources()
        if STORE not in path.parents
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reaching_in.search(line)
    ]
    assert found == []

