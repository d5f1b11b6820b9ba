"""mypy --strict keeps the value type through persidict.aio, and rejects misuse."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "typing_cases" / "aio_usage.py"

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
