"""mypy --strict keeps the value type through persidict.aio, and rejects misuse."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mypy.api")

from .mypy_verdicts import TYPING_CASES, assert_mypy_verdicts

GOOD = TYPING_CASES / "aio_usage.py"

HEADER = """\
from persidict import ITEM_NOT_AVAILABLE, FileDirDict
from persidict.aio import AsyncPersiDict
"""

BAD = {
    "not_awaited": (
        """
        async def f(d: FileDirDict[int]) -> int:
            return AsyncPersiDict(d).get_item("a") + 1
        """,
        'Unsupported operand types for + ("Coroutine[Any, Any, int]" and "int")',
    ),
    "wrong_value": (
        """
        async def f(d: FileDirDict[int]) -> None:
            await AsyncPersiDict(d).set("a", "text")
        """,
        'Argument 2 to "set" of "AsyncPersiDict" has incompatible type "str"',
    ),
    "sentinel_unchecked": (
        """
        async def f(d: FileDirDict[int]) -> int:
            r = await AsyncPersiDict(d).transform_item("a", lambda v: 1)
            return r.new_value + 1
        """,
        'Unsupported operand types for + ("ItemNotAvailableFlag" and "int")',
    ),
    "async_transformer_of_wrong_type": (
        """
        async def to_text(v: object) -> str:
            return "x"

        async def f(d: FileDirDict[int]) -> None:
            await AsyncPersiDict(d).transform_item("a", to_text)
        """,
        'Argument 2 to "transform_item" of "AsyncPersiDict" has incompatible type',
    ),
}


def test_types_survive_the_async_view_under_mypy_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_mypy_verdicts(tmp_path, monkeypatch, GOOD, HEADER, BAD)
