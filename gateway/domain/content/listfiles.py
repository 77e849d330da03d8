"""Reading blocklist files (gateway/blocklists). The only module of the content policy that reads files.

Layout: `<dir>/*.txt` are global lists ("global" for global.txt, "global:<stem>" for others),
`<dir>/carrier/<name>.txt` are carrier lists ("carrier:<name>"). One word or phrase per line;
`#` starts a comment line; a line `# severity: warn` before the first word sets the list's severity
(default block). See gateway/blocklists/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.domain.content.words import CARRIER_SCOPE, GLOBAL_SCOPE, SEVERITIES, Severity


class BlocklistError(ValueError):
    """A blocklist directory or file cannot be used; the message is one line naming it."""


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
                    raise BlocklistError(f"{source}:{line_number}: the severity line must come before the first word")
                if value == "block":
                    severity = "block"
                elif value == "warn":
                    severity = "warn"
                else:
                    raise BlocklistError(f"{source}:{line_number}: severity must be one of {SEVERITIES}, not {value!r}")
            continue
        words.append(line)
    return words, severity


def load_blocklist_dir(path: str | Path) -> dict[str, tuple[list[str], Severity]]:
    """Every list in the directory; a missing directory or an unreadable or malformed file is a
    BlocklistError, never an empty list: running without the lists an operator meant would let
    filtered words through in silence."""
    directory = Path(path)
    if not directory.is_dir():
        raise BlocklistError(f"blocklist directory {directory} does not exist")
    files = [
        (GLOBAL_SCOPE if file.stem == GLOBAL_SCOPE else f"{GLOBAL_SCOPE}:{file.stem}", file)
        for file in sorted(directory.glob("*.txt"))
    ]
    carrier_directory = directory / CARRIER_SCOPE
    if carrier_directory.is_dir():
        files.extend((f"{CARRIER_SCOPE}:{file.stem}", file) for file in sorted(carrier_directory.glob("*.txt")))
    return {key: _read_list(file) for key, file in files}


def _read_list(file: Path) -> tuple[list[str], Severity]:
    try:
        return parse_blocklist(file.read_text(encoding="utf-8"), source=str(file))
    except UnicodeDecodeError:
        raise BlocklistError(f"blocklist {file} is not UTF-8 text") from None
    except OSError as exc:
        raise BlocklistError(f"blocklist {file} cannot be read: {exc.strerror or type(exc).__name__}") from None
