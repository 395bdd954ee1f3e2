"""The filter of known ids: every id added says "maybe", other ids say "no", across the fold into the array."""

from __future__ import annotations

from tokenward.apptokens import format as token_format
from tokenward.apptokens.known import _FOLD_AT, KnownIds


def _ids(count: int) -> list[str]:
    return [token_format.generate()[1].id for _ in range(count)]


def test_loaded_and_added_ids_are_known_and_others_are_not() -> None:
    loaded, added, others = _ids(500), _ids(50), _ids(500)
    known = KnownIds(loaded)
    assert all(i in known for i in loaded) and not any(i in known for i in added + others)
    for token_id in added + loaded[:10]:  # adding a known id again changes nothing
        known.add(token_id)
    assert all(i in known for i in loaded + added) and not any(i in known for i in others)
    assert len(known) == 550
    assert 0 not in known and None not in known and b"x" not in known


def test_ids_added_beyond_the_fold_move_into_the_array_and_stay_known() -> None:
    known = KnownIds()
    assert len(known) == 0 and "abcdefghijkl" not in known
    added = _ids(_FOLD_AT * 2 + 7)
    for token_id in added:
        known.add(token_id)
    assert len(known._added) < _FOLD_AT and len(known._sorted) >= 2 * _FOLD_AT  # folded twice
    assert list(known._sorted) == sorted(known._sorted)
    assert all(i in known for i in added) and len(known) == len(added)
    assert not any(i in known for i in _ids(1000))


def _bit_set(known: KnownIds, token_id: str) -> bool:
    at = hash(token_id) & known._mask
    return bool(known._bits[at >> 3] & (1 << (at & 7)))


def test_the_bitmap_grows_with_the_ids_and_never_hides_one() -> None:
    known = KnownIds(_ids(100))
    first = known._mask + 1
    added = _ids(first // 16 + 500)  # past 16 bits an id: the bitmap doubles (at least once)
    for token_id in added:
        known.add(token_id)
    assert known._mask + 1 >= 16 * len(known) > first
    assert all(_bit_set(known, i) and i in known for i in added)


def test_most_unknown_ids_are_answered_by_their_bit_alone() -> None:
    known = KnownIds(_ids(20_000))
    others = _ids(10_000)
    passing = sum(_bit_set(known, i) for i in others)
    assert passing < len(others) // 8  # about 1 in 16 or fewer goes on to the exact search
    assert not any(i in known for i in others)
