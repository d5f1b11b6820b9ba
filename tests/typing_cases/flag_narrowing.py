"""A user program: ``is`` checks against persidict's flags narrow types under ``mypy --strict``.

Only type-checked (by the project's mypy run and by tests/test_flags_typing.py), never run.
"""

from __future__ import annotations

from typing import assert_type

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    VALUE_NOT_RETRIEVED,
    DeleteCurrentFlag,
    ETagIfExists,
    ETagValue,
    FileDirDict,
    ItemNotAvailableFlag,
    Joker,
    KeepCurrentFlag,
)


def next_count(d: FileDirDict[int]) -> int:
    """The brief's example: both sentinels ruled out, ``r.new_value`` is an int."""
    r = d.get_item_if("count", ITEM_NOT_AVAILABLE, ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE)
    if r.new_value is ITEM_NOT_AVAILABLE or r.new_value is VALUE_NOT_RETRIEVED:  # noqa: SIM108
        n = 0
    else:
        n = r.new_value + 1
    return n


def count_after_transform(d: FileDirDict[int]) -> int:
    """``transform_item`` can only give ITEM_NOT_AVAILABLE besides a value."""
    r = d.transform_item("count", lambda v: 1 if v is ITEM_NOT_AVAILABLE else v + 1)
    if r.new_value is ITEM_NOT_AVAILABLE:
        return 0
    assert_type(r.new_value, int)
    return r.new_value


def etag_or_none(e: ETagIfExists) -> ETagValue | None:
    """``ETagIfExists`` narrows to ``ETagValue`` with ``is (not) ITEM_NOT_AVAILABLE``."""
    if e is not ITEM_NOT_AVAILABLE:
        assert_type(e, ETagValue)
        return e
    absent: ItemNotAvailableFlag = e
    del absent
    return None


def stored(v: int | KeepCurrentFlag | DeleteCurrentFlag, current: int) -> int | None:
    """Jokers narrow by identity, and by ``isinstance(v, Joker)``."""
    if v is KEEP_CURRENT:
        return current
    if v is DELETE_CURRENT:
        return None
    assert_type(v, int)
    return v


def stored_by_family(v: int | Joker) -> int:
    """The family class narrows too."""
    if isinstance(v, Joker):
        return 0
    return v + 1


def flags_are_typed() -> None:
    """Constants have their class's type; calling a flag class gives its flag."""
    assert_type(KeepCurrentFlag(), KeepCurrentFlag)
    k: KeepCurrentFlag = KEEP_CURRENT
    j: Joker = k
    del j
