"""bench/RESULTS.md is shared by several benchmarks: each owns one marked section and replaces only that.

A section is the text between `<!-- begin:NAME -->` and `<!-- end:NAME -->` (each marker on a line of its own).
Writing a section that is not there yet appends it at the end; everything outside the markers stays as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["RESULTS", "write_section", "read_section"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _pattern(name: str) -> re.Pattern[str]:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"section names are letters, digits, '-' and '_': {name!r}")
    return re.compile(rf"^<!-- begin:{name} -->\n.*?^<!-- end:{name} -->\n?", re.DOTALL | re.MULTILINE)


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace the text of section `name` in `path` by `markdown` (appending the section if absent)."""
    block = f"<!-- begin:{name} -->\n{markdown.strip()}\n<!-- end:{name} -->\n"
    text = path.read_text() if path.exists() else ""
    pattern = _pattern(name)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = f"{text.rstrip()}\n\n{block}" if text.strip() else block
    path.write_text(text)


def read_section(name: str, path: Path = RESULTS) -> str | None:
    """The text of section `name`, without its markers, or None when the file or the section is absent."""
    if not path.exists():
        return None
    match = _pattern(name).search(path.read_text())
    if match is None:
        return None
    return match[0].split("\n", 1)[1].rsplit(f"<!-- end:{name} -->", 1)[0].strip()
