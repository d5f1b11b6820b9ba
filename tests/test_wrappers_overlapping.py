"""OverlappingMultiDict: one dict per format at one location, isolated; the container is no dict."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict, LocalDict
from persidict.backends.memory import MemoryBackend
from persidict.wrappers.overlapping import OverlappingMultiDict


def _has(d: Any, key: object) -> bool:
    """``key in d`` (typed loosely: a PersiDict accepts str and tuple keys)."""
    return key in d


def _files_multi(base: Path) -> OverlappingMultiDict:
    return OverlappingMultiDict(
        dict_type=FileDirDict,
        shared_subdicts_params={"base_dir": str(base), "durable": False},
        json={},
        pkl={},
        txt={},
    )


def test_formats_share_a_folder_and_stay_isolated(tmp_path: Path) -> None:
    multi = _files_multi(tmp_path)
    multi.json["config"] = {"host": "localhost"}
    multi.pkl["config"] = {"host": "pickled"}
    multi.txt["config"] = "plain text"
    assert multi.json["config"] == {"host": "localhost"}
    assert multi.pkl["config"] == {"host": "pickled"}
    assert multi.txt["config"] == "plain text"
    assert [len(multi.json), len(multi.pkl), len(multi.txt)] == [1, 1, 1]
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 3 and {f.rsplit(".", 1)[1] for f in files} == {"json", "pkl", "txt"}
    for name in ("json", "pkl", "txt"):
        member = getattr(multi, name)
        assert isinstance(member, FileDirDict) and member.serialization_format == name
        assert member.base_dir == str(tmp_path)


def test_clear_on_one_format_leaves_the_others(tmp_path: Path) -> None:
    multi = _files_multi(tmp_path)
    for i in range(3):
        multi.json["j", str(i)] = i
        multi.pkl["p", str(i)] = i
        multi.txt["t"] = "x"
    multi.pkl["shared"] = 1
    multi.json["shared"] = 2
    multi.json.clear()
    assert len(multi.json) == 0
    assert len(multi.pkl) == 4 and multi.pkl["shared"] == 1 and multi.txt["t"] == "x"
    del multi.pkl["shared"]
    assert not _has(multi.pkl, "shared") and len(multi.txt) == 1


def test_item_access_on_the_container_is_a_type_error(tmp_path: Path) -> None:
    multi: Any = _files_multi(tmp_path)
    with pytest.raises(TypeError, match=r"multi\.json"):
        multi["x"]
    with pytest.raises(TypeError, match="not a dict"):
        multi["x"] = 1
    with pytest.raises(TypeError, match="not a dict"):
        del multi["x"]
    with pytest.raises(AttributeError, match="yaml"):
        multi.yaml  # noqa: B018


def test_per_format_params_and_validation() -> None:
    backend = MemoryBackend()
    multi = OverlappingMultiDict(
        dict_type=LocalDict,
        shared_subdicts_params={"backend": backend},
        json={},
        pkl={"base_class_for_values": int},
    )
    multi.pkl["n"] = 1
    with pytest.raises(TypeError):
        multi.pkl["s"] = "no"
    multi.json["s"] = "yes"
    assert multi.json.base_class_for_values is None
    assert list(multi.formats) == ["json", "pkl"] and multi.dict_type is LocalDict
    with pytest.raises(ValueError, match="at least one format"):
        OverlappingMultiDict(dict_type=LocalDict)
    with pytest.raises(TypeError, match="dict_type"):
        OverlappingMultiDict(dict_type=dict, pkl={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="serialization_format"):
        OverlappingMultiDict(
            dict_type=LocalDict, shared_subdicts_params={"serialization_format": "pkl"}, json={}
        )
    with pytest.raises(ValueError, match="serialization_format"):
        OverlappingMultiDict(dict_type=LocalDict, json={"serialization_format": "pkl"})
    with pytest.raises(ValueError, match="format name"):
        OverlappingMultiDict(dict_type=LocalDict, formats={})
    with pytest.raises(TypeError, match="must be a dict"):
        OverlappingMultiDict(dict_type=LocalDict, json=5)  # type: ignore[arg-type]


def test_params_equality_repr_and_subdicts(tmp_path: Path) -> None:
    multi = _files_multi(tmp_path)
    params = multi.get_params()
    assert list(params) == sorted(params)
    assert (
        params["dict_type"] is FileDirDict
        and params["json"] == {}
        and "base_dir" in params["shared_subdicts_params"]
    )
    again = OverlappingMultiDict(**params)
    assert again == multi and again is not multi
    assert multi != _files_multi(tmp_path / "elsewhere")
    assert repr(multi).startswith("OverlappingMultiDict(dict_type=")
    multi.json["a", "b"] = 1
    multi.pkl["a", "c"] = 2
    multi.txt["z", "y"] = "t"
    sub = multi.get_subdict("a")
    assert isinstance(sub, OverlappingMultiDict)
    assert sub.json["b"] == 1 and sub.pkl["c"] == 2 and len(sub.txt) == 0
    sub.txt["d"] = "new"
    assert multi.txt["a", "d"] == "new"
    assert OverlappingMultiDict(**sub.get_params()) == sub
    assert sorted(multi.subdicts()) == ["a", "z"]
