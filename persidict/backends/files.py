"""FileDirDict's store: one file per location under a base folder.

Writes go to a temporary file in the item's folder (named by host, pid and a
random token, and never ending in an item extension), which is fsynced when
``durable`` and renamed over the item with ``os.replace``; then the folder is
fsynced. A reader therefore sees a complete old or new value, never a torn
one.

Every mutation takes ``flock(LOCK_EX)`` on a descriptor of the item's
folder, opened for the operation, and holds it only for the check of the
precondition and the rename or unlink. ``flock`` locks belong to an open file
description, so threads of one process exclude each other too, and every
opener of the folder — a dict, its subdicts, another process — agrees on the
lock. With ``use_locks=False`` (folders synced by Dropbox and the like, which
do not carry locks) conditional operations fall back to check-then-act;
create-if-absent stays atomic on the local disk through ``link()``.

ETags are ``"<mtime_ns>:<size>:<inode>"``. Every write stamps its file with
``time.time_ns()`` before the rename, so ETags differ even when the kernel's
file clock is coarse and an inode number is reused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..keys import replace_unsafe_chars
from .base import (
    Capabilities,
    IfAbsent,
    IfMatch,
    Location,
    NotModified,
    Precondition,
    PreconditionFailed,
    ReadAnswer,
    Stat,
)

_PATH_CACHE_LIMIT = 100_000
_NAME_MAX = 255
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_O_TMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
# Ends in a character no extension can contain, so a temporary file never
# looks like an item, whatever the serialization format (even "tmp").
_TMP_SUFFIX = ".tmp#"
# Room left for the item's name in a temporary name: "." + name + tail <= 255
# (the tail: host <= 40, pid <= 10, token 8, counter <= 16, dots and suffix).
_TMP_NAME_ROOM = _NAME_MAX - 1 - (1 + 40 + 1 + 10 + 1 + 8 + 16 + len(_TMP_SUFFIX))
_LOCK_UNSUPPORTED = frozenset({errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


class _TempNamer:
    """Unique temporary-file name parts: host, pid and a per-process random token."""

    def __init__(self) -> None:
        host = replace_unsafe_chars(socket.gethostname() or "host", "_")[:40]
        self.host = host
        self.reset()

    def reset(self) -> None:
        """Start a fresh token and counter (at import and in each forked child)."""
        self.pid = os.getpid()
        self.token = secrets.token_hex(4)
        self.counter = itertools.count()

    @staticmethod
    def prefix(final_name: str) -> str:
        """The start of the names of temporary files for ``final_name`` (hidden, bounded)."""
        return "." + final_name[:_TMP_NAME_ROOM]

    def tail(self) -> str:
        """The unique end of a temporary file name."""
        return f".{self.host}.{self.pid}.{self.token}{next(self.counter):x}{_TMP_SUFFIX}"


_NAMER = _TempNamer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_NAMER.reset)


def stat_of(st: os.stat_result) -> Stat:
    """The backend Stat of an ``os.stat_result``."""
    ns = st.st_mtime_ns
    return Stat(f"{ns}:{st.st_size}:{st.st_ino}", ns / 1e9, st.st_size)


def _etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


class FileBackend:
    """Bytes in files under ``base_dir``; locations are relative path parts.

    ``durable``: fsync every written file and its folder. ``use_locks``: make
    preconditions atomic across threads and processes with ``flock`` on the
    item's folder (turn off for synced folders that do not carry locks).
    """

    def __init__(self, base_dir: str, *, durable: bool = True, use_locks: bool = True) -> None:
        self.base_dir = os.path.abspath(os.fspath(base_dir))
        self.durable = durable
        self.use_locks = use_locks
        self.capabilities = Capabilities(atomic_preconditions=use_locks)
        self._paths: dict[Location, str] = {}
        self._splits: dict[Location, tuple[str, str, str]] = {}

    def __repr__(self) -> str:
        return f"FileBackend({self.base_dir!r}, durable={self.durable}, use_locks={self.use_locks})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_paths"] = {}
        state["_splits"] = {}
        return state

    def describe(self) -> str:
        """The base folder."""
        return self.base_dir

    # ------------------------------------------------------------ paths

    def path(self, loc: Location) -> str:
        """The absolute path of ``loc`` (cached)."""
        p = self._paths.get(loc)
        if p is None:
            p = os.path.join(self.base_dir, *loc)
            if len(self._paths) >= _PATH_CACHE_LIMIT:
                self._paths.clear()
            self._paths[loc] = p
        return p

    def _split(self, loc: Location) -> tuple[str, str, str]:
        """(path, folder, temporary-file prefix) of ``loc``, cached for writes."""
        sp = self._splits.get(loc)
        if sp is None:
            path = self.path(loc)
            folder, name = os.path.split(path)
            sp = (path, folder, os.path.join(folder, _NAMER.prefix(name)))
            if len(self._splits) >= _PATH_CACHE_LIMIT:
                self._splits.clear()
            self._splits[loc] = sp
        return sp

    # ------------------------------------------------------------ reads

    def stat(self, loc: Location) -> Stat | None:
        """Metadata at ``loc``, or None when no file is there."""
        try:
            st = os.stat(self.path(loc))
        except FileNotFoundError:
            return None
        return stat_of(st)

    def exists(self, loc: Location) -> bool:
        """Whether a file is at ``loc`` (``stat`` without building a Stat)."""
        try:
            os.stat(self.path(loc))
        except FileNotFoundError:
            return False
        return True

    def read_bytes(self, loc: Location) -> bytes | None:
        """The bytes at ``loc`` (None when absent), without their stat: ``d[key]``'s fast path."""
        try:
            fd = os.open(self.path(loc), _O_READ)
        except FileNotFoundError:
            return None
        try:
            # Sized by fstat: one exact allocation (guessing a buffer size and
            # growing it costs far more than the fstat on big values).
            return _read_exactly(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """Bytes and their stat (of the same open file); None when absent."""
        path = self.path(loc)
        if if_none_match is not None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
            if _etag(st) == if_none_match:
                return NotModified(stat_of(st))
        try:
            fd = os.open(path, _O_READ)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            data = _read_exactly(fd, st.st_size)
        finally:
            os.close(fd)
        return data, stat_of(st)

    # ------------------------------------------------------------ locks

    def _lock_dir(self, folder: str, pinned: bool = False) -> int:
        """Open ``folder`` and take an exclusive flock on it; return the fd.

        Raises FileNotFoundError when the folder does not exist. If the folder
        was removed while we waited for the lock, open it again (``pinned``:
        the caller holds a file in it, so it cannot have been removed).
        """
        while True:
            fd = os.open(folder, _O_DIR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if pinned or os.fstat(fd).st_nlink > 0:
                    return fd
            except OSError as e:
                os.close(fd)
                if e.errno in _LOCK_UNSUPPORTED:
                    raise OSError(
                        e.errno,
                        f"Cannot lock folder {folder!r} ({e.strerror}); on filesystems without "
                        "flock (some network or synced folders) open the dict with use_locks=False",
                    ) from e
                raise
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed meanwhile: a new folder may stand at that path

    # ------------------------------------------------------------ writes

    def _make_temp(self, folder: str, tmp_prefix: str, data: bytes) -> tuple[str, os.stat_result]:
        """Write ``data`` to a new temporary file in ``folder``; return its path and stat."""
        while True:
            tmp = tmp_prefix + _NAMER.tail()
            try:
                fd = os.open(tmp, _O_TMP, 0o666)
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                continue
            except FileExistsError:
                continue
            break
        try:
            n = os.write(fd, data)
            if n < len(data):  # a short write (huge values): write on
                view = memoryview(data)[n:]
                while view:
                    view = view[os.write(fd, view) :]
            t = time.time_ns()
            os.utime(fd, ns=(t, t))
            if self.durable:
                os.fsync(fd)  # data, size and the stamped mtime
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        return tmp, st

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat:
        """Store ``data`` at ``loc`` atomically; PreconditionFailed changes nothing."""
        path, folder, tmp_prefix = self._split(loc)
        tmp, st = self._make_temp(folder, tmp_prefix, data)
        try:
            if self.use_locks:
                # The temporary file keeps the folder from being removed, so
                # the folder we lock is the one the rename lands in.
                dfd = self._lock_dir(folder, pinned=True)
                try:
                    if precondition is not None:
                        _check(loc, path, precondition)
                    os.replace(tmp, path)
                    if self.durable:
                        fcntl.flock(dfd, fcntl.LOCK_UN)
                        os.fsync(dfd)
                finally:
                    os.close(dfd)
                return stat_of(st)
            if isinstance(precondition, IfAbsent):
                self._link_if_absent(loc, tmp, path)
            else:
                if precondition is not None:
                    _check(loc, path, precondition)
                os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        if self.durable:
            _fsync_dir(folder)
        return stat_of(st)

    def _link_if_absent(self, loc: Location, tmp: str, path: str) -> None:
        """Create ``path`` from ``tmp`` only if absent (atomic where link() works)."""
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise PreconditionFailed(loc, IfAbsent()) from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            _check(loc, path, IfAbsent())  # no hard links here: check-then-act
            os.replace(tmp, path)
            return
        os.unlink(tmp)

    # ------------------------------------------------------------ deletes

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Remove ``loc``; then remove the folders this left empty (below base_dir)."""
        path = self.path(loc)
        folder = os.path.dirname(path)
        dfd = -1
        if self.use_locks:
            try:
                dfd = self._lock_dir(folder)
            except (FileNotFoundError, NotADirectoryError):
                if isinstance(precondition, IfMatch):
                    raise PreconditionFailed(loc, precondition) from None
                return False
        try:
            if precondition is not None:
                _check(loc, path, precondition)
            try:
                os.unlink(path)
            except FileNotFoundError:
                if isinstance(precondition, IfMatch):  # only without locks
                    raise PreconditionFailed(loc, precondition) from None
                return False
            if self.durable:
                if dfd >= 0:
                    fcntl.flock(dfd, fcntl.LOCK_UN)
                    os.fsync(dfd)
                else:
                    _fsync_dir(folder)
        finally:
            if dfd >= 0:
                os.close(dfd)
        if len(loc) > 1:
            self._prune(folder)
        return True

    def _prune(self, folder: str) -> None:
        """Remove empty folders from ``folder`` up to, not including, base_dir."""
        base = self.base_dir
        while len(folder) > len(base) and folder.startswith(base):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Delete many locations unconditionally; return how many were deleted."""
        n = 0
        for loc in locs:
            n += self.delete(loc)
        return n

    # ------------------------------------------------------------ listing

    def walk(self, prefix: Location) -> Iterator[tuple[Location, os.DirEntry[str]]]:
        """Stream ``(folder parts, entry)`` for every file under ``prefix``.

        The folder parts are relative to ``prefix`` and the same tuple object
        for all files of one folder. Memory stays constant but for one open
        directory per level; folders that vanish meanwhile are skipped.
        """
        top = os.path.join(self.base_dir, *prefix)
        try:
            it = os.scandir(top)
        except (FileNotFoundError, NotADirectoryError):
            return
        stack: list[tuple[Location, os._ScandirIterator[str]]] = [((), it)]
        try:
            while stack:
                parts, entries = stack[-1]
                for entry in entries:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir:
                        try:
                            sub = os.scandir(entry.path)
                        except (FileNotFoundError, NotADirectoryError):
                            continue
                        stack.append(((*parts, entry.name), sub))
                        break
                    yield parts, entry
                else:
                    stack.pop()
                    entries.close()
        finally:
            for _, entries in stack:
                entries.close()

    def list(self, prefix: Location) -> Iterator[Location]:
        """Every file location under ``prefix``, relative to it, streamed."""
        for parts, entry in self.walk(prefix):
            yield (*parts, entry.name)

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Every file location under ``prefix`` with its stat, streamed (vanished files skipped)."""
        for parts, entry in self.walk(prefix):
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            yield (*parts, entry.name), stat_of(st)


def _check(loc: Location, path: str, precondition: Precondition) -> None:
    """Raise PreconditionFailed unless ``precondition`` holds for the file at ``path``."""
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    if isinstance(precondition, IfAbsent):
        ok = st is None
    else:
        assert isinstance(precondition, IfMatch)
        ok = st is not None and _etag(st) == precondition.etag
    if not ok:
        raise PreconditionFailed(loc, precondition)


def _read_exactly(fd: int, size: int) -> bytes:
    """Read ``size`` bytes, or up to the end of the file if it is shorter."""
    data = os.read(fd, size)
    if len(data) >= size or not data:
        return data
    chunks = [data]  # a short read (values over 2 GiB): read on
    got = len(data)
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, _O_DIR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
