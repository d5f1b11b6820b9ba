"""FileDirDict listings stream: memory does not grow with the number of keys.

Creating a million real files takes minutes, so the walk runs over a synthetic
tree served by a fake ``os.scandir``; everything above it (the backend's walk,
key decoding, the façade) is the real code.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from persidict.file_dir_dict import FileDirDict
from persidict.keys import Layout

SCALE = os.environ.get("PERSIDICT_STRESS_SCALE", "full")
_MB = 1 << 20


def suffixed(component: str, n: int = 4) -> str:
    digest = base64.b32encode(hashlib.md5(component.encode("utf-8")).digest()).decode("ascii").lower()
    return f"{component}_{digest[:n]}"


class _Stat:
    def __init__(self, i: int) -> None:
        self.st_mtime_ns = 1_700_000_000_000_000_000 + i * 1000
        self.st_size = 100
        self.st_ino = i


class _Entry:
    def __init__(self, name: str, is_dir: bool, i: int) -> None:
        self.name = name
        self.path = name  # (what os.scandir of a descriptor gives)
        self._is_dir = is_dir
        self._i = i

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._is_dir

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return not self._is_dir

    def is_symlink(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> _Stat:
        return _Stat(self._i)


class _Scan:
    """What os.scandir returns: an iterator with close() and a context manager."""

    def __init__(self, entries: Iterator[_Entry]) -> None:
        self._entries = entries

    def __iter__(self) -> _Scan:
        return self

    def __next__(self) -> _Entry:
        return next(self._entries)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Scan:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


_FAKE_FD = 1 << 30  # fake descriptors: far above any real one


def fake_tree(monkeypatch: pytest.MonkeyPatch, root: str, n_keys: int, per_folder: int) -> None:
    """Serve a tree of ``n_keys`` files, ``per_folder`` per folder, generated lazily, to the listings.

    The walk opens folders (os.open of the root's path, then of each folder
    relative to its parent's descriptor), lists descriptors (os.scandir) and
    closes them: those calls are faked for the tree, and passed on for
    anything else.
    """
    n_folders = -(-n_keys // per_folder)
    folders = {suffixed(f"p{i}"): i for i in range(n_folders)}
    opened: dict[int, str | None] = {}  # fake descriptor -> its folder's name (None: the root)
    real_open, real_scandir, real_close = os.open, os.scandir, os.close

    def files(i: int) -> Iterator[_Entry]:
        first = i * per_folder
        for j in range(first, min(first + per_folder, n_keys)):
            yield _Entry(f"{suffixed(f'k{j}')}.pkl", False, j)
        yield _Entry(f".{suffixed('x')}.pkl.host.1.ab0.tmp#", False, 0)  # a temporary file

    def open_(path: Any, flags: int, *args: Any, dir_fd: int | None = None, **kwargs: Any) -> int:
        name = os.fspath(path)
        if dir_fd is None and name != root:
            return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)
        if dir_fd is not None and (opened.get(dir_fd, "") is not None or name not in folders):
            raise FileNotFoundError(name)
        fd = _FAKE_FD + len(opened)
        opened[fd] = None if dir_fd is None else name
        return fd

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) or path not in opened:
            return real_scandir(path)
        name = opened[path]
        if name is None:
            return _Scan(_Entry(name, True, 0) for name in folders)
        return _Scan(files(folders[name]))

    def close(fd: int) -> None:
        if fd not in opened:
            real_close(fd)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "close", close)


def peak_mb(fn: Callable[[], object]) -> tuple[object, float]:
    """The result of ``fn`` and the peak of Python allocations while it ran, in MiB."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak / _MB


def _store(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, n: int, per_folder: int
) -> FileDirDict[Any]:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "tree", durable=False)
    fake_tree(monkeypatch, d.base_dir, n, per_folder)
    return d


def test_fake_tree_is_read_like_a_real_one(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _store(tmp_path, monkeypatch, 25, 10)
    assert len(d) == 25
    assert sorted(d.keys()) == sorted((f"p{j // 10}", f"k{j}") for j in range(25))
    assert d.oldest_keys(2) == [("p0", "k0"), ("p0", "k1")]
    assert d.newest_keys(1) == [("p2", "k24")]


def test_listing_memory_is_bounded(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With a small decoding cache, 4x more keys must not need more memory.
    monkeypatch.setattr(Layout, "_DECODED_LIMIT", 500)
    peaks = []
    for n in (5_000, 20_000):
        d = _store(tmp_path, monkeypatch, n, 1000)
        count, peak = peak_mb(lambda d=d: sum(1 for _ in d))  # type: ignore[misc]
        assert count == n
        peaks.append(peak)
    assert peaks[1] < peaks[0] + 0.25, peaks


@pytest.mark.slow
def test_million_keys_stream_under_50_mb(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tracemalloc slows allocation-heavy code ~10x: iteration runs at full size,
    # the other listings at a tenth of it.
    n = 100_000 if SCALE == "small" else 1_000_000
    d = _store(tmp_path, monkeypatch, n, 10_000)
    got, peak = peak_mb(lambda: sum(1 for _ in d))
    assert got == n
    assert peak < 50, f"iteration: {peak:.1f} MiB"
    m = n // 10
    d = _store(tmp_path, monkeypatch, m, 1_000)
    for name, fn, expect in [
        ("len", lambda: len(d), m),
        ("keys_and_timestamps", lambda: sum(1 for _ in d.keys_and_timestamps()), m),
        ("random_key", lambda: d.random_key() is not None, True),
        ("newest_keys", lambda: d.newest_keys(5)[0], (f"p{(m - 1) // 1_000}", f"k{m - 1}")),
    ]:
        got, peak = peak_mb(fn)
        assert got == expect, name
        assert peak < 50, f"{name}: {peak:.1f} MiB"
