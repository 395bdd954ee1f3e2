"""The filter of known token ids: which ids the store may hold, in ~10 bytes an id.

A check whose id is not in it is refused with no SQL (:mod:`.service`). It only has to say "maybe" for every
id in the store and "no" for (nearly) every other id, so it keeps the ids' 64-bit hashes, not the ids: a
sorted ``array`` of the ids loaded at start (8 bytes each, searched by bisection) and a set of those added
since (a create here or on another instance), folded into the array once that set grows. A set of the
12-character strings took ~104 bytes an id (10 MB per 100,000 tokens).

A hash shared by an unknown id and a known one only lets that unknown id be looked up once, as any id of
the store is: the answer (no such token) is the same. ``hash`` of a ``str`` is keyed per process
(``PYTHONHASHSEED``), so an outsider cannot aim at a collision; at 100,000 ids the chance that a random id
collides is about 5 in 10^15.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable

__all__ = ["KnownIds"]

#: Ids added one by one before they are folded into the sorted array (at least this many, or an eighth of it).
_FOLD_AT = 1024


class KnownIds:
    """``token_id in known``, ``known.add(token_id)``, ``len(known)`` (see the module docstring)."""

    __slots__ = ("_added", "_sorted")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._sorted = array("q", sorted({hash(token_id) for token_id in ids}))
        self._added: set[int] = set()

    def add(self, token_id: str) -> None:
        key = hash(token_id)
        if self._has(key):
            return
        self._added.add(key)
        if len(self._added) >= max(_FOLD_AT, len(self._sorted) // 8):
            self._sorted = array("q", sorted((*self._sorted, *self._added)))
            self._added = set()

    def __contains__(self, token_id: object) -> bool:
        return isinstance(token_id, str) and self._has(hash(token_id))

    def _has(self, key: int) -> bool:
        if key in self._added:
            return True
        keys = self._sorted
        at = bisect_left(keys, key)
        return at < len(keys) and keys[at] == key

    def __len__(self) -> int:
        return len(self._sorted) + len(self._added)
