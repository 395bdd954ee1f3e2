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
