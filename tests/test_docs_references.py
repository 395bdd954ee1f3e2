"""The docs name tests as evidence (docs/security.md's defence table): each named file and test exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def _references() -> list[tuple[str, str, str | None]]:
    found = []
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "SECURITY.md"]:
        for match in REFERENCE.finditer(doc.read_text()):
            found.append((doc.name, match.group(1), match.group(2)))
    return found


def test_the_docs_name_tests() -> None:
    assert any(doc == "security.md" for doc, _, _ in _references())


def test_every_test_the_docs_name_exists() -> None:
    missing = []
    for doc, path, name in _references():
        target = ROOT / path
        if not target.is_file():
            missing.append(f"{doc}: {path} does not exist")
        elif name and not re.search(rf"def {name}\b", target.read_text()):
            missing.append(f"{doc}: {path} has no test {name}")
    assert not missing, "\n".join(missing)
