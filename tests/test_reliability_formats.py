"""A structured format that never runs code from the store (issue 13, item 8), and misspelt format
names refused with a did-you-mean (COMPAT.md, departures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonpickle
import pytest

from persidict import CorruptValueError, FileDirDict, LmdbDict, LocalDict, PersiDict, SafeJsonCodec

PLANTED: list[str] = []
"""Set by Planted.__setstate__: proof that reading a value built an object."""


class Planted:
    """An object whose construction on read is observable."""

    def __getstate__(self) -> dict[str, Any]:
        return {"payload": 1}

    def __setstate__(self, state: dict[str, Any]) -> None:
        PLANTED.append("built")
        self.__dict__.update(state)


@pytest.fixture(params=["files", "lmdb"])
def d(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    if request.param == "files":
        return FileDirDict(base_dir=tmp_path / "f", serialization_format=SafeJsonCodec())
    return LmdbDict(base_dir=tmp_path / "l", serialization_format=SafeJsonCodec())


NATIVE: list[Any] = [
    0, -7, 2**70, 1.5, "text", "ünïcode", True, False, None, [], {}, [1, "a", None, [2.5]],
    {"a": {"b": [1, 2, {"c": None}]}, "n": 3},
]


@pytest.mark.parametrize("value", NATIVE)
def test_json_native_values_round_trip(d: PersiDict[Any], value: Any) -> None:
    d["k"] = value
    got = d["k"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ((1, 2), TypeError),  # would read back as a list
        ({1, 2}, TypeError),
        (b"bytes", TypeError),
        ({1: "int key"}, TypeError),
        ({"a": [Planted()]}, TypeError),
        ({"py/object": "x"}, ValueError),  # would read back refused
        ({"json://1": "x"}, ValueError),
        (float("nan"), ValueError),
        ([float("inf")], ValueError),
    ],
)
def test_anything_else_is_refused_on_write(d: PersiDict[Any], value: Any, error: type[Exception]) -> None:
    d["k"] = "before"
    with pytest.raises(error):
        d["k"] = value
    assert d["k"] == "before"


def test_a_cycle_is_refused(d: PersiDict[Any]) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        d["k"] = loop
    assert "k" not in d


def test_tagged_json_in_the_store_is_refused_and_builds_nothing(tmp_path: Path) -> None:
    PLANTED.clear()
    writer: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    writer["evil"] = Planted()  # what someone else may write: jsonpickle builds it on read
    writer["plain"] = {"a": [1, 2]}
    safe: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format=SafeJsonCodec())
    with pytest.raises(CorruptValueError, match="evil"):
        safe["evil"]
    assert PLANTED == []
    assert safe["plain"] == {"a": [1, 2]}
    # The danger the safe format avoids: the "json" format builds the object.
    assert isinstance(writer["evil"], Planted) and PLANTED == ["built"]


def test_nan_in_the_store_is_refused(tmp_path: Path) -> None:
    safe: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format=SafeJsonCodec())
    safe["k"] = 1
    path = next(tmp_path.glob("k_*.json"))
    path.write_text('{"x": NaN}')
    with pytest.raises(CorruptValueError):
        safe["k"]


def test_files_are_plain_json_that_the_json_format_reads(tmp_path: Path) -> None:
    safe: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format=SafeJsonCodec())
    value = {"name": "x", "sizes": [1, 2.5], "ok": True, "none": None}
    safe["k"] = value
    path = next(tmp_path.glob("k_*.json"))
    assert json.loads(path.read_text()) == value
    assert jsonpickle.decode(path.read_text(), keys=True) == value
    assert FileDirDict(base_dir=tmp_path, serialization_format="json")["k"] == value


def test_the_codec_is_kept_in_params_and_pickling(tmp_path: Path) -> None:
    safe: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format=SafeJsonCodec())
    assert safe.get_params()["serialization_format"] == SafeJsonCodec()
    again = FileDirDict(**safe.get_params())
    again["k"] = [1]
    with pytest.raises(TypeError):
        again["t"] = (1,)
    assert safe["k"] == [1]


@pytest.mark.parametrize(("fmt", "meant"), [
    ("JSON", "json"), ("Json", "json"), ("jsn", "json"),
    ("pickle", "pkl"), ("PKL", "pkl"), ("Pickle", "pkl"), ("pckl", "pkl"),
])
def test_misspelt_built_in_formats_are_refused(tmp_path: Path, fmt: str, meant: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{meant}'"):
        LocalDict(serialization_format=fmt)
    with pytest.raises(ValueError, match=f"did you mean '{meant}'"):
        FileDirDict(base_dir=tmp_path, serialization_format=fmt)


@pytest.mark.parametrize("fmt", ["txt", "md", "csv", "jsonl", "html", "pkl5"])
def test_other_names_are_text_formats(fmt: str) -> None:
    d: LocalDict[str] = LocalDict(serialization_format=fmt)
    d["k"] = "text"
    assert d["k"] == "text" and d.serialization_format == fmt
