"""The map of gateway/ holds: SQL stays in the store, and every module is one a reader can hold.

These read the source tree (no gateway runs); each names the files and lines that break the rule.
"""

from __future__ import annotations

import ast
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


# --- status words ---------------------------------------------------------------------------------

STATUS_WORDS = {
    "queued",
    "deferred",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "rejected",
    "suppressed",
    "expired",
    "unknown",
    "held_out",
}
# Where a status may be spelled out: the domain defines Status and every set of statuses once.
# SQL text (a status inside a longer string: a partial index, a raw query) is never a bare literal,
# so it needs no entry. A line that uses a status word for something else says so: "# not a status".
ALLOWED = (GATEWAY / "domain",)


class _StatusLiterals(ast.NodeVisitor):
    """Bare string constants that spell a status, except where the same word names something else:
    a field (a dict key, a subscript, a column label `.label("sent")`), or a member of a `Literal[...]`
    type of another vocabulary (e.g. the hand-off policy "unknown" | "resend")."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def visit_Dict(self, node: ast.Dict) -> None:
        for value in node.values:
            self.visit(value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.visit(node.value)  # the index is a field name (row["sent"]) or a Literal type's members

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "label":
            self.visit(node.func.value)
            return
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value in STATUS_WORDS:
            self.found.append((node.lineno, node.value))


def test_statuses_are_spelled_only_in_the_domain() -> None:
    found = []
    for path in _sources():
        if any(allowed in path.parents for allowed in ALLOWED):
            continue
        source = path.read_text()
        lines = source.splitlines()
        visitor = _StatusLiterals()
        visitor.visit(ast.parse(source))
        found += [
            f"{path.relative_to(GATEWAY.parent)}:{line}: {word!r}"
            for line, word in visitor.found
            if "# not a status" not in lines[line - 1]
        ]
    assert found == []


def test_the_status_check_sees_a_status_literal() -> None:
    """The check itself can fail: a status compared, passed or returned as a bare string is caught."""
    source = 'if row.status == "queued":\n    Outcome(i, t, "failed", now)\nx = {"sent": 1}["sent"]\n'
    visitor = _StatusLiterals()
    visitor.visit(ast.parse(source))
    assert visitor.found == [(1, "queued"), (2, "failed")]


# --- module size ----------------------------------------------------------------------------------

MAX_MODULE_LINES = 600
# Modules still over the limit, each on its way down; nothing else may join them.
OVERSIZED = {}


def test_no_module_is_longer_than_a_reader_holds() -> None:
    """Python modules only: the console's templates and static files are data, not modules."""
    too_long = {
        f"{path.relative_to(GATEWAY.parent)}: {lines} lines"
        for path in _sources()
        if path not in OVERSIZED and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == set()


def test_the_size_allow_list_names_only_modules_that_exist() -> None:
    assert all(path.is_file() for path in OVERSIZED)
