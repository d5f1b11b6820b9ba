"""A remote backend with a local copy of what was read or written (S3Dict's store).

Each cached entry holds the remote ETag and the bytes together, in one local
object (``etag`` + newline + bytes), so that the pair can never be torn by a
crash or by another process sharing the cache: an entry is always bytes the
remote held under that ETag. A read with a cached entry asks the remote
``If-None-Match: <cached etag>``; a NotModified answer serves the local
bytes. Writes go to the remote and record the returned ETag locally, with no
extra request. ``stat`` and listings always ask the remote. Batch reads and
writes go through ``read`` and ``write`` (in a pool of threads), so they
validate and fill the cache exactly as single ones do; batch deletes use the
remote's own and drop the local entries.

With ``digest_len > 0`` every name of an entry's local path gets ``"_"`` and
that many characters of its digest (before the extension of the last name),
as FileDirDict names its files: names differing only in case then stay apart
on case-insensitive file systems.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import hashlib
from collections.abc import Iterable, Iterator

import attrs

from ..concurrency import map_outcomes
from ..errors import BackendError
from .base import Backend, Capabilities, Location, NotModified, Precondition, ReadAnswer, Stat

_MAGIC = b"persidict-cache-1 "
_BATCH = 1000
_NAMES_LIMIT = 100_000
_LOCAL_ERRORS = (OSError, ValueError, BackendError)


@attrs.frozen
class CacheEntry:
    """Bytes the remote held under ``etag``."""

    etag: str
    data: bytes


def pack(etag: str, data: bytes) -> bytes:
    """The local object holding a cache entry."""
    return _MAGIC + etag.encode("utf-8") + b"\n" + data


def unpack(raw: bytes) -> CacheEntry | None:
    """The cache entry in a local object, or None if it is not one."""
    if not raw.startswith(_MAGIC):
        return None
    end = raw.find(b"\n", len(_MAGIC))
    if end < 0:
        return None
    try:
        etag = raw[len(_MAGIC) : end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return CacheEntry(etag, raw[end + 1 :])


def suffixed(name: str, digest_len: int) -> str:
    """``name`` + ``"_"`` + the first ``digest_len`` characters of its base32 md5 (FileDirDict's scheme)."""
    digest = base64.b32encode(hashlib.md5(name.encode("utf-8")).digest()).decode("ascii").lower()
    return name + "_" + digest[:digest_len]


def cache_names(loc: Location, digest_len: int) -> Location:
    """The local names of the entry for ``loc``: each name suffixed, the last before its extension.

    Always suffixed (never "already suffixed, left alone"), so two
    locations never share an entry. ``digest_len == 0``: ``loc`` itself.
    """
    if not digest_len or not loc:
        return loc
    *folders, last = loc
    stem, dot, ext = last.rpartition(".")
    name = suffixed(stem, digest_len) + dot + ext if stem else suffixed(last, digest_len)
    return (*[suffixed(f, digest_len) for f in folders], name)


class CachedBackend:
    """``remote`` answers every question; ``local`` spares transferring unchanged bytes.

    ``local_prefix`` is prepended to locations in the local store, so that
    dicts opened at different remote prefixes share one cache layout;
    ``digest_len`` suffixes the local names (see ``cache_names``), and
    ``local_root`` (e.g. the bucket's folder) is prepended to them as is.
    The local store is trusted with its own safety: a FileBackend never
    follows a link below its base folder, so a link planted in the cache
    folder is neither read, written nor deleted through (the entry is then
    simply not cached).
    Failing to update the local store never fails an operation that
    succeeded remotely: the entry is dropped instead (entries are checked
    against the remote ETag on every read anyway).
    """

    def __init__(
        self,
        remote: Backend,
        local: Backend,
        *,
        local_prefix: Location = (),
        digest_len: int = 0,
        local_root: Location = (),
    ) -> None:
        self.remote = remote
        self.local = local
        self.local_prefix = local_prefix
        self.local_root = local_root
        self.digest_len = digest_len
        self.capabilities: Capabilities = remote.capabilities
        self._names: dict[Location, Location] = {}

    def describe(self) -> str:
        """The remote, and where it is cached."""
        return f"{self.remote.describe()} (cached in {self.local.describe()})"

    def where(self, loc: Location) -> str:
        """The remote object (the truth), and its cached copy."""
        return f"{self.remote.where(loc)} (cached in {self.local.where(self.local_location(loc))})"

    def __repr__(self) -> str:
        return f"CachedBackend({self.describe()!r})"

    # ------------------------------------------------------------ local entries

    def local_location(self, loc: Location) -> Location:
        """Where the entry of ``loc`` is in the local store (remembered, boundedly)."""
        if not self.digest_len:
            return self.local_root + self.local_prefix + loc
        names = self._names
        local = names.get(loc)
        if local is None:
            local = self.local_root + cache_names(self.local_prefix + loc, self.digest_len)
            if len(names) >= _NAMES_LIMIT:
                names.clear()
            names[loc] = local
        return local

    def _cached(self, loc: Location) -> CacheEntry | None:
        try:
            got = self.local.read(self.local_location(loc))
        except _LOCAL_ERRORS:
            return None
        if got is None or isinstance(got, NotModified):
            return None
        return unpack(got[0])

    def _remember(self, loc: Location, etag: str, data: bytes) -> None:
        try:
            self.local.write(self.local_location(loc), pack(etag, data))
        except _LOCAL_ERRORS:
            self._forget(loc)

    def _forget(self, loc: Location) -> None:
        # A stale entry that cannot be removed is harmless: its ETag no longer matches.
        with contextlib.suppress(*_LOCAL_ERRORS):
            self.local.delete(self.local_location(loc))

    # ------------------------------------------------------------ Backend

    def stat(self, loc: Location) -> Stat | None:
        """Ask the remote."""
        return self.remote.stat(loc)

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """One remote read, conditional on the cached ETag when there is a cached entry."""
        entry = self._cached(loc)
        got = self.remote.read(loc, if_none_match=if_none_match if entry is None else entry.etag)
        if got is None:
            if entry is not None:
                self._forget(loc)
            return None
        if isinstance(got, NotModified):
            if entry is None or got.stat.etag == if_none_match:
                return got
            stat = got.stat
            return entry.data, Stat(etag=stat.etag, mtime=stat.mtime, size=len(entry.data))
        data, stat = got
        self._remember(loc, stat.etag, data)
        return got

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat | None:
        """Write remotely, then record the bytes under the returned ETag."""
        stat = self.remote.write(loc, data, precondition=precondition)
        if stat is not None:
            self._remember(loc, stat.etag, data)
        return stat

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Delete remotely, then locally."""
        deleted = self.remote.delete(loc, precondition=precondition)
        self._forget(loc)
        return deleted

    def list(self, prefix: Location) -> Iterator[Location]:
        """Ask the remote."""
        return self.remote.list(prefix)

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Ask the remote."""
        return self.remote.list_stats(prefix)

    def discard_many(
        self, locs: Iterable[Location], *, max_workers: int
    ) -> builtins.list[bool | BaseException]:
        """Delete remotely (the remote's own batch delete when it has one), then every local entry.

        Per location: whether it existed remotely, or the exception for it.
        The local entries are dropped whatever the outcome (a dropped entry
        only costs a full read later).
        """
        locs = builtins.list(locs)
        remote_many = getattr(self.remote, "discard_many", None)
        outcomes: builtins.list[bool | BaseException]
        if remote_many is not None:
            outcomes = remote_many(locs, max_workers=max_workers)
        else:
            outcomes = map_outcomes(self.remote.delete, locs, max_workers)
        for loc in locs:
            self._forget(loc)
        return outcomes

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Delete remotely in batches, then the local entries."""
        n = 0
        batch: builtins.list[Location] = []
        for loc in locs:
            batch.append(loc)
            if len(batch) == _BATCH:
                n += self._delete_batch(batch)
                batch = []
        if batch:
            n += self._delete_batch(batch)
        return n

    def _delete_batch(self, batch: builtins.list[Location]) -> int:
        n = self.remote.delete_many(batch)
        for loc in batch:
            self._forget(loc)
        return n
