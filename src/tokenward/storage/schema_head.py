"""The newest schema revision this tokenward ships, read from the migration files without Alembic.

Every start (``serve``, its workers, CLI commands on the database) asks whether the database is at
head. When it is — nearly always — Alembic, about a third of a second to import, is not needed:
:meth:`tokenward.storage.Database.upgrade` compares this head with the ``alembic_version`` row and
only hands over to Alembic when they differ. Anything this reader is unsure of (no files, a merge
revision, two heads) answers ``None``, and Alembic decides.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["VERSIONS_DIR", "packaged_head"]

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"

_REVISION = re.compile(r'^revision(?:\s*:\s*[^=]+)?\s*=\s*"([^"]+)"\s*$', re.M)
_DOWN = re.compile(r'^down_revision(?:\s*:\s*[^=]+)?\s*=\s*(?:"([^"]+)"|None)\s*$', re.M)


@functools.cache
def packaged_head(versions: Path = VERSIONS_DIR) -> str | None:
    """The one revision no other revision builds on, or ``None`` when that is not plain to see."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        if path.name.startswith("__"):
            continue
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(source), _DOWN.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        if down[0]:
            parents.add(down[0])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None
