"""mypy --strict narrows persidict's flags: ``x is ITEM_NOT_AVAILABLE`` rules the sentinel out."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mypy.api")

from .mypy_verdicts import TYPING_CASES, assert_mypy_verdicts

GOOD = TYPING_CASES / "flag_narrowing.py"

HEADER = """\
from persidict import (
    ALWAYS_RETRIEVE, ANY_ETAG, ITEM_NOT_AVAILABLE, VALUE_NOT_RETRIEVED, ETagIfExists, ETagValue,
    FileDirDict, Joker,
)
"""

# Each program must fail, with the error given: the flags are types mypy sees (not Any), and
# an ``is`` check removes exactly the flag it tests.
BAD = {
    "no_check": (
        """
        def f(d: FileDirDict[int]) -> int:
            r = d.get_item_if("count", ITEM_NOT_AVAILABLE, ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE)
            return r.new_value + 1
        """,
        'Unsupported operand types for + ("ItemNotAvailableFlag" and "int")',
    ),
    "one_check_of_two": (
        """
        def f(d: FileDirDict[int]) -> int:
            r = d.get_item_if("count", ITEM_NOT_AVAILABLE, ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE)
            if r.new_value is ITEM_NOT_AVAILABLE:
                return 0
            return r.new_value + 1
        """,
        'Left operand is of type "int | Literal[ValueNotRetrievedFlag.VALUE_NOT_RETRIEVED]"',
    ),
    "wrong_sentinel": (
        """
        def f(d: FileDirDict[int]) -> int:
            r = d.transform_item("count", lambda v: 1)
            if r.new_value is VALUE_NOT_RETRIEVED:
                return 0
            return r.new_value + 1
        """,
        'Left operand is of type "int | Literal[ItemNotAvailableFlag.ITEM_NOT_AVAILABLE]"',
    ),
    "etag_unchecked": (
        """
        def f(e: ETagIfExists) -> ETagValue:
            return e
        """,
        'got "ETagValue | ItemNotAvailableFlag", expected "ETagValue"',
    ),
    "joker_unchecked": (
        """
        def f(v: int | Joker) -> int:
            return v + 1
        """,
        'Unsupported operand types for + ("Joker" and "int")',
    ),
}


def test_flags_narrow_under_mypy_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_mypy_verdicts(tmp_path, monkeypatch, GOOD, HEADER, BAD)
