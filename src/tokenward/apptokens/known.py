"""The filter of known token ids: which ids the store may hold, in ~10 bytes an id.

A check whose id is not in it is refused with no SQL (:mod:`.service`). It only has to say "maybe" for every
id in the store and "no" for (nearly) every other id, so it keeps the ids' 64-bit hashes, not the ids: a
sorted ``array`` of the ids loaded at start (8 bytes each, searched by bisection) and a set of those added
since (a create here or on another instance), folded into the array once that set grows. A set of the
12-character strings took ~104 bytes an id (10 MB per 100,000 tokens).

In front of both, a bitmap of at least 16 bits an id (2 bytes), indexed by the low bits of the hash, answers most
unknown ids with one bit: 1 in 16 or fewer of them has its bit set and goes on to the exact search. That search is a
bisection of 17 steps at 100,000 ids, each boxing an array element into an int: about a microsecond, and on the wire
more (the array's cache lines are cold under a flood), for every refused request of a flood of unknown ids.

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
#: Bits of the bitmap per id (at least; a power of two in all) and its least size in bits.
_BITS_PER_ID = 16
_MIN_BITS = 1 << 16


def _bitmap(keys: Iterable[int], count: int) -> tuple[bytearray, int]:
    """A bitmap of at least ``_BITS_PER_ID`` bits for each of ``count`` keys, each key's low bits set; and its mask."""
    size = _MIN_BITS
    while size < count * _BITS_PER_ID:
        size <<= 1
    mask = size - 1
    bits = bytearray(size >> 3)
    for key in keys:
        at = key & mask
        bits[at >> 3] |= 1 << (at & 7)
    return bits, mask


class KnownIds:
    """``token_id in known``, ``known.add(token_id)``, ``len(known)`` (see the module docstring)."""

    __slots__ = ("_added", "_bits", "_mask", "_sorted")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._sorted = array("q", sorted({hash(token_id) for token_id in ids}))
        self._added: set[int] = set()
        self._bits, self._mask = _bitmap(self._sorted, len(self._sorted))

    def add(self, token_id: str) -> None:
        key = hash(token_id)
        if self._has(key):
            return
        self._added.add(key)
        if len(self._added) >= max(_FOLD_AT, len(self._sorted) // 8):
            self._sorted = array("q", sorted((*self._sorted, *self._added)))
            self._added = set()
        if len(self) * _BITS_PER_ID > self._mask + 1:  # grown past its bits per id: a bitmap twice as large
            self._bits, self._mask = _bitmap((*self._sorted, *self._added), len(self))
        else:
            at = key & self._mask
            self._bits[at >> 3] |= 1 << (at & 7)

    def __contains__(self, token_id: object) -> bool:
        return isinstance(token_id, str) and self._has(hash(token_id))

    def _has(self, key: int) -> bool:
        at = key & self._mask
        if not self._bits[at >> 3] & (1 << (at & 7)):  # most unknown ids: their bit is not set
            return False
        if key in self._added:
            return True
        keys = self._sorted
        at = bisect_left(keys, key)
        return at < len(keys) and keys[at] == key

    def __len__(self) -> int:
        return len(self._sorted) + len(self._added)
