"""FileDirDict errors: I/O problems are never KeyError; corrupt files are named; listing goes on."""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import os
import pathlib
import pickle
import threading
from typing import Any

import pytest

from persidict.backends.files import PathCollisionError
from persidict.errors import CorruptValueError
from persidict.file_dir_dict import FileDirDict


def suffixed(component: str, n: int = 4) -> str:
    digest = base64.b32encode(hashlib.md5(component.encode("utf-8")).digest()).decode("ascii").lower()
    return f"{component}_{digest[:n]}"


@pytest.fixture
def d(tmp_path: pathlib.Path) -> FileDirDict[Any]:
    return FileDirDict(base_dir=tmp_path, durable=False)


def test_a_folder_where_the_file_should_be_is_no_item_and_no_place_to_write(
    d: FileDirDict[Any], tmp_path: pathlib.Path
) -> None:
    (tmp_path / f"{suffixed('k')}.pkl").mkdir()
    assert "k" not in d and d.get("k") is None and list(d) == []
    with pytest.raises(KeyError):
        d["k"]
    with pytest.raises(PathCollisionError, match="a folder stands there") as info:
        d["k"] = 1
    assert not isinstance(info.value, KeyError | OSError)
    assert info.value.key == ("k",)
    assert (tmp_path / f"{suffixed('k')}.pkl").is_dir()


def test_permission_errors_surface_as_themselves(
    d: FileDirDict[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    d["k"] = 1
    real_open, real_stat = os.open, os.stat

    def denied_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith(".pkl"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def denied_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path).endswith(".pkl"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied_open)
    with pytest.raises(PermissionError):
        d["k"]
    with pytest.raises(PermissionError):
        d.get("k", "default")
    with pytest.raises(PermissionError):
        d.get_with_etag("k")
    monkeypatch.setattr(os, "stat", denied_stat)
    monkeypatch.setattr(os, "lstat", denied_stat)
    with pytest.raises(PermissionError):
        _ = "k" in d
    with pytest.raises(PermissionError):
        d.etag("k")
    with pytest.raises(PermissionError):
        d.setdefault("k", 5)


def test_permission_error_on_write_and_delete(d: FileDirDict[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    d["k"] = 1

    def denied(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError):
        d["k"] = 2
    monkeypatch.setattr(os, "unlink", denied)
    with pytest.raises(PermissionError):
        del d["k"]
    monkeypatch.undo()
    assert d["k"] == 1
    assert [p.name for p in pathlib.Path(d.base_dir).iterdir()] == [f"{suffixed('k')}.pkl"]


@pytest.mark.parametrize(
    "content", [b"\x80\x05garbage", b"", b"\x04\x22\x4d\x18\x00\x01", pickle.dumps(list(range(100)))[:50]]
)
def test_corrupt_or_truncated_file_is_named_and_listing_goes_on(
    d: FileDirDict[Any], tmp_path: pathlib.Path, content: bytes
) -> None:
    d["good"] = 1
    d["sub", "good"] = 2
    (tmp_path / suffixed("sub") / f"{suffixed('bad')}.pkl").write_bytes(content)
    with pytest.raises(CorruptValueError) as info:
        d["sub", "bad"]
    message = str(info.value)
    assert "'bad'" in message and f"{suffixed('bad')}.pkl" in message and str(tmp_path) in message
    assert not isinstance(info.value, KeyError)
    assert sorted(d.keys()) == [("good",), ("sub", "bad"), ("sub", "good")]
    assert len(d) == 3
    assert len(list(d.keys_and_timestamps())) == 3
    assert ("sub", "bad") in d
    assert d.random_key() is not None
    assert len(d.newest_keys(2)) == 2
    del d["sub", "bad"]  # and the damage can be removed
    assert dict(d.items()) == {("good",): 1, ("sub", "good"): 2}


def test_missing_key_is_key_error(d: FileDirDict[Any]) -> None:
    with pytest.raises(KeyError):
        d["nope"]
    with pytest.raises(KeyError):
        d["no", "such", "folder"]
    with pytest.raises(KeyError):
        del d["nope"]
    with pytest.raises(KeyError):
        d.timestamp("nope")
    assert d.get("nope") is None
    assert not d.discard(("no", "folder"))


def test_locking_unsupported_says_what_to_do(d: FileDirDict[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(OSError, match="use_locks=False") as info:
        d["k"] = 1
    assert info.value.errno == errno.ENOLCK
    monkeypatch.undo()
    assert "k" not in d
    assert os.listdir(d.base_dir) == []  # the temporary file is gone too


def test_iteration_survives_concurrent_deletes(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    for i in range(10):
        for j in range(20):
            d[f"f{i}", f"k{j}"] = j
    other: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    seen = []
    for n, k in enumerate(d.keys()):
        seen.append(k)
        if n == 5:
            other.clear()  # every file and folder vanishes mid-walk
    assert 6 <= len(seen) <= 200
    assert len(d) == 0
    for i in range(5):
        for j in range(20):
            d[f"f{i}", f"k{j}"] = j
    timestamps = []
    for n, (_, t) in enumerate(d.keys_and_timestamps()):
        timestamps.append(t)
        if n == 3:
            other.clear()
    assert len(timestamps) >= 4


def test_iteration_with_a_deleter_thread(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    for i in range(20):
        for j in range(10):
            d[f"f{i}", f"k{j}"] = j
    stop = threading.Event()

    def churn() -> None:
        other: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
        while not stop.is_set():
            for i in range(20):
                for j in range(10):
                    other.discard((f"f{i}", f"k{j}"))
                    other[f"f{i}", f"k{j}"] = j

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(20):
            assert all(len(k) == 2 for k in d)
            assert sum(1 for _ in d.keys_and_timestamps()) <= 200
            assert len(d.oldest_keys(3)) <= 3
    finally:
        stop.set()
        t.join()
