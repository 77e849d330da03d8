"""Reading blocklist files (config/blocklists). The only module of the content policy that reads files.

Layout: `<dir>/*.txt` are global lists ("global" for global.txt, "global:<stem>" for others),
`<dir>/carrier/<name>.txt` are carrier lists ("carrier:<name>"). One word or phrase per line;
`#` starts a comment line; a line `# severity: warn` before the first word sets the list's severity
(default block). See config/blocklists/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.domain.content.words import CARRIER_SCOPE, GLOBAL_SCOPE, SEVERITIES, Severity

_SEVERITY_DIRECTIVE = re.compile(r"#\s*severity\s*:\s*(\S+)\s*$", re.IGNORECASE)


def parse_blocklist(text: str, *, source: str = "<text>") -> tuple[list[str], Severity]:
    severity: Severity = "block"
    words: list[str] = []
    for line_number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("#"):
            directive = _SEVERITY_DIRECTIVE.match(line)
            if directive:
                value = directive.group(1).lower()
                if words:
                    raise ValueError(f"{source}:{line_number}: the severity line must come before the first word")
                if value == "block":
                    severity = "block"
                elif value == "warn":
                    severity = "warn"
                else:
                    raise ValueError(f"{source}:{line_number}: severity must be one of {SEVERITIES}, not {value!r}")
            continue
        words.append(line)
    return words, severity


def load_blocklist_dir(path: str | Path) -> dict[str, tuple[list[str], Severity]]:
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"blocklist directory {directory} does not exist")
    lists: dict[str, tuple[list[str], Severity]] = {}
    for file in sorted(directory.glob("*.txt")):
        key = GLOBAL_SCOPE if file.stem == GLOBAL_SCOPE else f"{GLOBAL_SCOPE}:{file.stem}"
        lists[key] = parse_blocklist(file.read_text(encoding="utf-8"), source=str(file))
    carrier_directory = directory / CARRIER_SCOPE
    if carrier_directory.is_dir():
        for file in sorted(carrier_directory.glob("*.txt")):
            lists[f"{CARRIER_SCOPE}:{file.stem}"] = parse_blocklist(file.read_text(encoding="utf-8"), source=str(file))
    return lists
