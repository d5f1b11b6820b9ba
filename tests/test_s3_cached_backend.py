"""CachedBackend (S3Dict's store) over two in-memory backends: what it asks the remote, what it keeps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from persidict.backends.base import IF_ABSENT, IfMatch, NotModified, PreconditionFailed
from persidict.backends.cached import CachedBackend, pack, unpack
from persidict.backends.memory import MemoryBackend


class CountingBackend(MemoryBackend):
    """A MemoryBackend that records each call and the If-None-Match it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []

    def read(self, loc: tuple[str, ...], *, if_none_match: str | None = None) -> Any:
        self.calls.append(("read", if_none_match))
        return super().read(loc, if_none_match=if_none_match)

    def delete_many(self, locs: Iterable[tuple[str, ...]]) -> int:
        batch = list(locs)
        self.calls.append(("delete_many", len(batch)))
        return super().delete_many(batch)


def _pair() -> tuple[CachedBackend, CountingBackend, MemoryBackend]:
    remote, local = CountingBackend(), MemoryBackend()
    return CachedBackend(remote, local, local_prefix=("bucket",)), remote, local


def test_read_revalidates_the_cached_copy() -> None:
    c, remote, local = _pair()
    stat = c.write(("k",), b"v1")
    assert stat is not None
    assert unpack(local.read(("bucket", "k"))[0]) is not None  # type: ignore[index]
    got = c.read(("k",))
    assert got is not None and not isinstance(got, NotModified)
    assert got[0] == b"v1" and got[1].etag == stat.etag
    assert remote.calls == [("read", stat.etag)]
    # The caller's own If-None-Match still yields NotModified.
    assert isinstance(c.read(("k",), if_none_match=stat.etag), NotModified)
    # A stale caller ETag with a fresh cache: the local bytes, no transfer.
    assert c.read(("k",), if_none_match="old") == (b"v1", got[1])


def test_remote_changes_and_deletions_win() -> None:
    c, remote, local = _pair()
    c.write(("k",), b"v1")
    remote.write(("k",), b"v2")
    got = c.read(("k",))
    assert got is not None and not isinstance(got, NotModified) and got[0] == b"v2"
    entry = unpack(local.read(("bucket", "k"))[0])  # type: ignore[index]
    assert entry is not None and entry.data == b"v2" and entry.etag == got[1].etag
    remote.delete(("k",))
    assert c.read(("k",)) is None and local.stat(("bucket", "k")) is None


def test_failed_preconditions_leave_the_cache_alone() -> None:
    c, _, local = _pair()
    c.write(("k",), b"v1")
    before = local.read(("bucket", "k"))
    with pytest.raises(PreconditionFailed):
        c.write(("k",), b"v2", precondition=IF_ABSENT)
    with pytest.raises(PreconditionFailed):
        c.delete(("k",), precondition=IfMatch("nope"))
    assert local.read(("bucket", "k")) == before


def test_delete_many_goes_in_batches_and_drops_entries() -> None:
    c, remote, local = _pair()
    for i in range(2_100):
        c.write((f"k{i}",), b"x")
    assert c.delete_many((f"k{i}",) for i in range(2_100)) == 2_100
    assert [n for op, n in remote.calls if op == "delete_many"] == [1000, 1000, 100]
    assert list(local.list(())) == []


def test_entries_frame_etag_and_bytes() -> None:
    assert unpack(pack('"abc"', b"\n\x00data")) is not None
    entry = unpack(pack('"abc"', b"\n\x00data"))
    assert entry is not None and entry.etag == '"abc"' and entry.data == b"\n\x00data"
    assert unpack(b"plain bytes") is None
    assert unpack(b"persidict-cache-1 \xff\xfe\n") is None
