"""persidict.copy: any store to any store, streamed, resumable, in bounded memory (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from persidict import (
    BatchError,
    CopySummary,
    FileDirDict,
    LocalDict,
    MutationPolicyError,
    ProgressEvent,
    copy,
)
from persidict.backends.s3 import forget_clients
from tests.compat_stores import make_store

STORES = ["local", "files", "lmdb", "basic_s3"]


@pytest.fixture
def s3() -> Iterator[None]:
    with mock_aws():
        forget_clients()
        yield
        forget_clients()


def _items() -> dict[Any, Any]:
    items: dict[Any, Any] = {f"k{i}": {"n": i, "blob": bytes(i)} for i in range(40)}
    return items | {("sub", "x"): [1, 2], ("sub", "y"): "why"}


@pytest.mark.usefixtures("s3")
@pytest.mark.parametrize("dst_kind", STORES)
@pytest.mark.parametrize("src_kind", STORES)
def test_copy_between_every_pair_of_stores(src_kind: str, dst_kind: str, tmp_path: Path) -> None:
    src = make_store(src_kind, tmp_path / "src")
    dst = make_store(dst_kind, tmp_path / "dst")
    src.update(_items())
    summary = copy(src, dst)
    assert isinstance(summary, CopySummary)
    assert (summary.copied, summary.skipped, summary.failed) == (42, 0, 0)
    assert dict(dst.items()) == dict(src.items())
    if dst_kind != "local":
        assert summary.bytes > 40  # serialised bytes written
    again = copy(src, dst, skip_existing=True)
    assert (again.copied, again.skipped, again.bytes) == (0, 42, 0)


def test_subdicts_as_source_and_destination(tmp_path: Path) -> None:
    src: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "src")
    src.update(_items())
    dst: LocalDict[Any] = LocalDict()
    summary = copy(src.get_subdict("sub"), dst.get_subdict(("into", "here")))
    assert summary.copied == 2
    assert dict(dst.items()) == {("into", "here", "x"): [1, 2], ("into", "here", "y"): "why"}


class _Interrupted(Exception):
    pass


def test_an_interrupted_copy_resumes_with_skip_existing(tmp_path: Path) -> None:
    src: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "src", durable=False)
    src.update(_items())
    dst: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "dst", durable=False)

    def stop_after_ten(e: ProgressEvent) -> None:
        if e.done == 10:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        copy(src, dst, progress=stop_after_ten)
    copied_before = len(dst)
    assert 10 <= copied_before < 42
    summary = copy(src, dst, skip_existing=True)
    assert summary.skipped == copied_before and summary.copied == 42 - copied_before
    assert dict(dst.items()) == dict(src.items())


def test_progress_sees_every_item_with_its_size(tmp_path: Path) -> None:
    src: LocalDict[Any] = LocalDict()
    src.update(_items())
    events: list[ProgressEvent] = []
    copy(src, FileDirDict(base_dir=tmp_path), progress=events.append, max_workers=3)
    assert sorted(tuple(e.key) for e in events) == sorted(tuple(k) for k in src)
    assert [e.done for e in events] == list(range(1, 43))
    assert all(e.ok and e.nbytes is not None and e.nbytes > 0 for e in events)


def test_failures_are_counted_and_raised_at_the_end(tmp_path: Path) -> None:
    src: LocalDict[Any] = LocalDict()
    src.update({"a": 1, "b": "two", "c": 3, "d": "four"})
    dst: FileDirDict[int] = FileDirDict(base_dir=tmp_path, base_class_for_values=int)
    with pytest.raises(BatchError) as e:
        copy(src, dst)
    assert sorted(e.value.keys) == [("b",), ("d",)]  # type: ignore[type-var]
    summary = e.value.summary  # type: ignore[attr-defined]
    assert (summary.copied, summary.failed) == (2, 2)
    assert dict(dst.items()) == {("a",): 1, ("c",): 3}
    skipped = copy(src, FileDirDict(base_dir=tmp_path / "2", base_class_for_values=int), errors="skip")
    assert (skipped.copied, skipped.failed) == (2, 2) and set(skipped.failures) == {("b",), ("d",)}


def test_an_append_only_destination_refuses_existing_keys_unless_skipped(tmp_path: Path) -> None:
    src: LocalDict[Any] = LocalDict()
    src.update({"a": 1, "b": 2})
    dst = FileDirDict(base_dir=tmp_path, append_only=True)
    dst["a"] = 0
    with pytest.raises(MutationPolicyError):
        copy(src, dst)
    assert dst["a"] == 0 and dst["b"] == 2
    assert copy(src, dst, skip_existing=True).skipped == 2


def test_arguments_are_checked(tmp_path: Path) -> None:
    d: LocalDict[Any] = LocalDict()
    with pytest.raises(TypeError, match="src"):
        copy({"a": 1}, d)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dst"):
        copy(d, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="errors"):
        copy(d, d, errors="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers"):
        copy(d, d, max_workers=0)


def test_copy_streams_in_bounded_memory(tmp_path: Path) -> None:
    """200 values of 1 MiB: the copying process's peak memory grows by far less than the data."""
    script = textwrap.dedent(
        f"""
        import os, resource, sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from persidict import FileDirDict, copy
        src = FileDirDict(base_dir={str(tmp_path / "src")!r}, durable=False)
        for i in range(200):
            src[f"k{{i}}"] = os.urandom(1 << 20)
        del src
        src = FileDirDict(base_dir={str(tmp_path / "src")!r}, durable=False)
        dst = FileDirDict(base_dir={str(tmp_path / "dst")!r}, durable=False)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        summary = copy(src, dst, max_workers=4)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert summary.copied == 200, summary
        print((after - before) // 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=os.environ
    )
    grown_mib = int(out.stdout.strip())
    assert grown_mib < 32 + 4 * 3, f"peak memory grew by {grown_mib} MiB copying 200 MiB"
