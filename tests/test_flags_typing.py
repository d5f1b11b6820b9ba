"""mypy --strict narrows persidict's flags: ``x is ITEM_NOT_AVAILABLE`` rules the sentinel out."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "typing_cases" / "flag_narrowing.py"

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
    for name, (body, _) in BAD.items():
        (tmp_path / f"bad_{name}.py").write_text(HEADER + textwrap.dedent(body))
    monkeypatch.chdir(ROOT)  # mypy.ini's mypy_path is relative to the working directory
    out, err, _ = api.run(
        [
            "--config-file", str(ROOT / "mypy.ini"),
            "--strict",
            "--cache-dir", str(tmp_path / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(GOOD),
            *(str(tmp_path / f"bad_{name}.py") for name in BAD),
        ]
    )
    assert err == ""
    lines = out.splitlines()
    assert not [line for line in lines if GOOD.name in line], out
    for name, (_, expected) in BAD.items():
        mine = [line for line in lines if f"bad_{name}.py:" in line]
        assert any(expected in line for line in mine), f"bad_{name}.py: want {expected!r}, got:\n{out}"
