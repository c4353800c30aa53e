"""The code and docs state facts; they never point at documents a maintainer cannot open."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("cli", "local", "testing", "examples", "tests/local", "tests/testing", "docs")
POINTERS = re.compile(
    r"\bthe seed\b|\bseed's\b|\baws[- ]notes\b|\bissue \d+\b|\bsteps? \d+ and \d+\b", re.IGNORECASE
)
"""Names of private notes and tickets: say what they say instead."""


def test_no_pointers_to_unseen_documents() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in SCANNED
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in {".py", ".md"} and path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if POINTERS.search(line)
    ]
    assert found == []
