"""FileDirDict's store: one file per location under a base folder.

Writes go to a temporary file in the item's folder (named by host, pid and a
random token, and never ending in an item extension), which is fsynced when
``durable`` and renamed over the item with ``os.replace``; then the folder is
fsynced. A reader therefore sees a complete old or new value, never a torn
one.

Every mutation takes ``flock(LOCK_EX)`` on a descriptor of the item's
folder and holds it only for the check of the precondition and the rename or
unlink. ``flock`` locks belong to an open file description, so every opener
of the folder — a dict, its subdicts, another process — agrees on the lock
(non-durable writes with locks use a descriptor that folder_locks.py keeps
open between writes, one per folder and process, and rename relative to it;
see ``_store_in_held_folder`` for why that is the folder at the path).
With ``use_locks=False`` (folders synced by Dropbox and the like, which do
not carry locks) conditional operations fall back to check-then-act;
create-if-absent stays atomic on the local disk through ``link()``.

ETags are ``"<mtime_ns>:<size>:<inode>"``. Every write stamps its file with
``time.time_ns()`` before the rename, so ETags differ even when the kernel's
file clock is coarse and an inode number is reused.

Folders are created on demand and removed when a delete leaves them empty, so
a write creating folders races with deletes pruning them: folder creation
retries (boundedly) until the temporary file stands in its folder, which from
then on keeps the folder alive. With ``durable``, the parent of every folder a
write creates is fsynced too.

A location is refused on write (FileNameTooLongError, a ValueError, before
anything is written) when one of its names is longer than the folder's
NAME_MAX or its path longer than PATH_MAX; reads and deletes find nothing
there. A directory is never an item: reads find nothing at a location held by
a folder, and a write into it, or under a file, raises PathCollisionError.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import math
import os
import secrets
import socket
import stat as stat_module
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import BackendError
from ..keys import replace_unsafe_chars
from . import folder_locks
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
from .folder_locks import O_DIR

_PATH_CACHE_LIMIT = 100_000
_NAME_MAX = 255  # when the filesystem does not say (os.pathconf)
_PATH_MAX = 4096
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_O_TMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
# Ends in a character no extension can contain, so a temporary file never
# looks like an item, whatever the serialization format (even "tmp").
_TMP_SUFFIX = ".tmp#"
# The longest temporary file name: "." host (<= 40) "." pid (<= 10) "."
# token (8), a hex counter (<= 16), the suffix. Short, whatever the item's
# name: a short name is cheaper to create and rename than a long one.
_TMP_NAME_MAX = 1 + 40 + 1 + 10 + 1 + 8 + 16 + len(_TMP_SUFFIX)
# Errors of a lookup that mean "nothing is stored there": no such file, a
# file where a folder of the path should be, a name or path too long to exist.
_ABSENT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})
# A write creating folders retries this often while concurrent deletes prune them.
_FOLDER_ATTEMPTS = 100
# walk() hands out a folder's file entries in lists of at most this many.
_WALK_CHUNK = 256
_S_ISDIR = stat_module.S_ISDIR
_DIGEST_ADVICE = (
    "With digest_len=0 a key's folder can take the name of another key's file "
    "(key 'a' is the file 'a.pkl', key ('a.pkl', 'x') needs a folder 'a.pkl'); "
    "open the dict with digest_len > 0 to keep them apart"
)


class FileNameTooLongError(ValueError):
    """A location with a name longer than the filesystem's NAME_MAX, or a path over PATH_MAX.

    ``index`` is the position of the offending name in the location (None when
    it is a part of the backend's base folder, or when the whole path is too
    long); ``name`` that name (or the path), ``size`` its length in bytes and
    ``limit`` the filesystem's limit.
    """

    def __init__(self, message: str, *, name: str, size: int, limit: int, index: int | None) -> None:
        super().__init__(message)
        self.name = name
        self.size = size
        self.limit = limit
        self.index = index

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_rebuild_too_long, (type(self), str(self), self.name, self.size, self.limit, self.index))


def _rebuild_too_long(
    cls: type[FileNameTooLongError], message: str, name: str, size: int, limit: int, index: int | None
) -> FileNameTooLongError:
    """Unpickle a FileNameTooLongError (its constructor takes keyword arguments)."""
    return cls(message, name=name, size=size, limit=limit, index=index)


class PathCollisionError(BackendError):
    """A write whose file path is held by a folder, or whose folder path by a file; nothing changed."""


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
        self.stem = f".{self.host}.{self.pid}.{self.token}"
        """What every temporary name of this process carries, before its counter."""


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

    ``durable``: fsync every written file and its folder (and the parents of
    the folders a write creates). ``use_locks``: make preconditions atomic
    across threads and processes with ``flock`` on the item's folder (turn
    off for synced folders that do not carry locks).
    """

    def __init__(self, base_dir: str, *, durable: bool = True, use_locks: bool = True) -> None:
        self.base_dir = os.path.abspath(os.fspath(base_dir))
        self.durable = durable
        self.use_locks = use_locks
        self.capabilities = Capabilities(atomic_preconditions=use_locks)
        self._paths: dict[Location, str] = {}
        self._splits: dict[Location, tuple[str, str, str]] = {}
        # Folder parts whose names were checked -> (folder, folder + separator).
        self._folders: dict[Location, tuple[str, str]] = {}
        self._limits: tuple[int, int] | None = None
        self._base_dir_fits = False

    def __repr__(self) -> str:
        return f"FileBackend({self.base_dir!r}, durable={self.durable}, use_locks={self.use_locks})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_paths"] = {}
        state["_splits"] = {}
        state["_folders"] = {}
        state["_limits"] = None
        return state

    def describe(self) -> str:
        """The base folder."""
        return self.base_dir

    def where(self, loc: Location) -> str:
        """The file's path."""
        return self.path(loc)

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

    def limits(self) -> tuple[int, int]:
        """(NAME_MAX, PATH_MAX) of the filesystem of base_dir (255 and 4096 when it does not say)."""
        if self._limits is None:
            self._limits = _fs_limits(self.base_dir)
        return self._limits

    def _split(self, loc: Location) -> tuple[str, str, str]:
        """(path, folder, temporary-file prefix) of ``loc``, cached for writes.

        Raises FileNameTooLongError when ``loc`` cannot be stored here.
        """
        sp = self._splits.get(loc)
        if sp is None:
            sp = self._split_new(loc)
            if len(self._splits) >= _PATH_CACHE_LIMIT:
                self._splits.clear()
            self._splits[loc] = sp
        return sp

    def _split_new(self, loc: Location) -> tuple[str, str, str]:
        """``_split`` uncached: short ASCII names in a folder already checked skip the full check."""
        name_max, path_max = self._limits or self.limits()
        name = loc[-1]
        parts = loc[:-1]
        known = self._folders.get(parts)
        if known is not None and name.isascii() and len(name) <= name_max:
            folder, head = known  # its temporary names fit: checked once
            path = head + name
            if path.isascii() and len(path) < path_max:
                return path, folder, head
        path = self.path(loc)
        folder = os.path.dirname(path)
        head = os.path.join(folder, "")
        self._check_lengths(loc, path, head, name_max, path_max)
        if len(self._folders) >= _PATH_CACHE_LIMIT:
            self._folders.clear()
        self._folders[parts] = (folder, head)
        return path, folder, head

    def _check_lengths(self, loc: Location, path: str, tmp_prefix: str, name_max: int, path_max: int) -> None:
        """Raise FileNameTooLongError unless every name and the path fit the filesystem's limits."""
        last = len(loc) - 1
        for i, part in enumerate(loc):
            size = _byte_len(part)
            if size > name_max:
                what = "file" if i == last else "folder"
                raise FileNameTooLongError(
                    f"the {what} name {part!r} is {size} bytes long, over the limit of {name_max} bytes "
                    f"per name (NAME_MAX) of the filesystem of {self.base_dir!r}",
                    name=part,
                    size=size,
                    limit=name_max,
                    index=i,
                )
        for part in () if self._base_dir_fits else self.base_dir.split(os.sep):
            size = _byte_len(part)
            if size > name_max:
                raise FileNameTooLongError(
                    f"the folder name {part!r} in {self.base_dir!r} is {size} bytes long, over the limit "
                    f"of {name_max} bytes per name (NAME_MAX) of its filesystem",
                    name=part,
                    size=size,
                    limit=name_max,
                    index=None,
                )
        self._base_dir_fits = True  # checked once: the base folder's own names fit
        size = max(_byte_len(path), _byte_len(tmp_prefix) + _TMP_NAME_MAX)
        if size >= path_max:
            raise FileNameTooLongError(
                f"the path {path!r} would be up to {size} bytes long (with its temporary file), over the "
                f"limit of {path_max - 1} bytes per path (PATH_MAX {path_max}, with the final NUL)",
                name=path,
                size=size,
                limit=path_max,
                index=None,
            )

    # ------------------------------------------------------------ reads
    # A folder is never an item, and a lookup that cannot find anything (no
    # such file, a file where a folder should be, a name too long to exist)
    # answers "absent".

    def stat(self, loc: Location) -> Stat | None:
        """Metadata at ``loc``, or None when no file is there."""
        try:
            st = os.stat(self.path(loc))
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return None
            raise
        if _S_ISDIR(st.st_mode):
            return None
        return stat_of(st)

    def exists(self, loc: Location) -> bool:
        """Whether a file is at ``loc`` (``stat`` without building a Stat)."""
        try:
            return not _S_ISDIR(os.stat(self.path(loc)).st_mode)
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return False
            raise

    def read_bytes(self, loc: Location) -> bytes | None:
        """The bytes at ``loc`` (None when absent), without their stat: ``d[key]``'s fast path."""
        try:
            fd = os.open(self.path(loc), _O_READ)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return None
            raise
        try:
            # Sized by fstat: one exact allocation (guessing a buffer size and
            # growing it costs far more than the fstat on big values).
            data = _read_exactly(fd, os.fstat(fd).st_size)
            if not data and _S_ISDIR(os.fstat(fd).st_mode):
                return None
        except IsADirectoryError:
            return None
        finally:
            os.close(fd)
        return data

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """Bytes and their stat (of the same open file); None when absent."""
        path = self.path(loc)
        if if_none_match is not None:
            found = _lookup(path)
            if found is None or _S_ISDIR(found.st_mode):
                return None
            if _etag(found) == if_none_match:
                return NotModified(stat_of(found))
        try:
            fd = os.open(path, _O_READ)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return None
            raise
        try:
            st = os.fstat(fd)
            if _S_ISDIR(st.st_mode):
                return None
            data = _read_exactly(fd, st.st_size)
        finally:
            os.close(fd)
        return data, stat_of(st)

    # ------------------------------------------------------------ writes

    def _make_temp(
        self, folder: str, tmp_prefix: str, data: bytes, with_stat: bool
    ) -> tuple[str, os.stat_result | None]:
        """Write ``data`` to a new temporary file in ``folder``; return its path and (``with_stat``) stat.

        Concurrent deletes remove empty folders (``_prune``) at any moment, so
        the folder may vanish before the temporary file is in it: then it is
        made again, a bounded number of times. Once the temporary file stands
        in it, the folder is pinned: a non-empty folder is never removed.
        """
        namer = _NAMER
        for _ in range(_FOLDER_ATTEMPTS):
            tmp = f"{tmp_prefix}{namer.stem}{next(namer.counter):x}{_TMP_SUFFIX}"  # unique: host, pid, token
            try:
                fd = os.open(tmp, _O_TMP, 0o666)
            except FileNotFoundError:
                self._make_folders(folder)
                continue
            except FileExistsError:
                continue
            except NotADirectoryError:
                self._raise_if_blocked(folder)
                continue
            break
        else:
            raise _kept_vanishing(folder)
        try:
            n = os.write(fd, data)
            if n < len(data):  # a short write (huge values): write on
                view = memoryview(data)[n:]
                while view:
                    view = view[os.write(fd, view) :]
            t = time.time_ns()
            os.utime(fd, ns=(t, t))  # the stamp that keeps ETags unique
            if self.durable:
                os.fsync(fd)  # data, size and the stamped mtime
            st = os.fstat(fd) if with_stat else None
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        return tmp, st

    def _make_folders(self, folder: str) -> None:
        """Create ``folder`` and its missing parents (PathCollisionError if a file is in the way)."""
        blocker = make_folders(folder, durable=self.durable)
        if blocker is not None:
            raise self._file_in_the_way(blocker, folder)

    def _raise_if_blocked(self, folder: str) -> None:
        """Raise PathCollisionError if a file stands where ``folder`` or one of its parents should."""
        blocker = _non_folder_on(folder)
        if blocker is not None:
            raise self._file_in_the_way(blocker, folder)

    def _file_in_the_way(self, blocker: str, folder: str) -> PathCollisionError:
        return PathCollisionError(
            f"Cannot store an item in the folder {folder!r}: {blocker!r} is a file (another key's item, "
            f"or a foreign file), not a folder; nothing was changed. {_DIGEST_ADVICE}",
            backend=self.describe(),
            operation="write",
        )

    def _folder_in_the_way(self, path: str) -> PathCollisionError:
        return PathCollisionError(
            f"Cannot store an item as the file {path!r}: a folder stands there (the folder of other keys, "
            f"or a foreign one); nothing was changed. {_DIGEST_ADVICE}",
            backend=self.describe(),
            operation="write",
        )

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat:
        """Store ``data`` at ``loc`` atomically; PreconditionFailed changes nothing."""
        st = self._store(loc, data, precondition, True)
        assert st is not None
        return stat_of(st)

    def put(self, loc: Location, data: bytes) -> None:
        """``write`` without a precondition and without gathering the new Stat (one fstat fewer)."""
        if self.use_locks and not self.durable:  # ``_store``'s dispatch, one call fewer
            path, folder, tmp_prefix = self._splits.get(loc) or self._split(loc)
            self._store_in_held_folder(loc, path, folder, tmp_prefix, data, None, False)
        else:
            self._store(loc, data, None, False)

    def _store(
        self, loc: Location, data: bytes, precondition: Precondition, with_stat: bool
    ) -> os.stat_result | None:
        """Write a temporary file, then rename it over ``loc`` (under the folder lock); return its stat."""
        path, folder, tmp_prefix = self._splits.get(loc) or self._split(loc)
        if self.use_locks and not self.durable:
            return self._store_in_held_folder(loc, path, folder, tmp_prefix, data, precondition, with_stat)
        tmp, st = self._make_temp(folder, tmp_prefix, data, with_stat)
        try:
            if self.use_locks:
                # The temporary file keeps the folder from being removed, so
                # the folder we lock is the one the rename lands in.
                lock = folder_locks.acquire(folder)
                replaced = False
                try:
                    if precondition is not None:
                        self._check(loc, path, precondition)
                    os.replace(tmp, path)
                    replaced = True
                finally:
                    folder_locks.release(lock, fsync=replaced and self.durable)
                return st
            if isinstance(precondition, IfAbsent):
                self._link_if_absent(loc, tmp, path)
            else:
                if precondition is not None:
                    self._check(loc, path, precondition)
                os.replace(tmp, path)
        except BaseException as e:
            raise self._abandon(tmp, path, e) from None
        if self.durable:
            _fsync_dir(folder, missing_ok=True)  # gone only if a delete already removed the item
        return st

    def _store_in_held_folder(
        self,
        loc: Location,
        path: str,
        folder: str,
        tmp_prefix: str,
        data: bytes,
        precondition: Precondition,
        with_stat: bool,
    ) -> os.stat_result | None:
        """``_store`` with locks, not durable: lock and rename through this process's kept
        descriptor of the folder (no open, close or path walk of the folder per write).

        The temporary file is made by path, so it stands in the folder now at
        that path. Renaming it relative to the kept descriptor succeeds only
        if the descriptor is that very folder; a stale one (its folder removed
        or renamed away since) fails with FileNotFoundError, and is dropped
        for a fresh one. The lock taken is thus the lock of the folder the
        rename lands in.
        """
        tmp, st = self._make_temp(folder, tmp_prefix, data, with_stat)
        cut = len(folder) + 1
        name, tmp_name = path[cut:], tmp[cut:]
        try:
            for attempt in range(2):
                held = folder_locks.hold_locked(folder)
                try:
                    if precondition is not None:
                        self._check(loc, path, precondition)
                    os.replace(tmp_name, name, src_dir_fd=held.fd, dst_dir_fd=held.fd)
                except FileNotFoundError:
                    folder_locks.drop(folder, held)  # stale: another folder stands at the path
                    if attempt:
                        raise
                    continue
                except BaseException:
                    folder_locks.release(held)
                    raise
                folder_locks.release(held)
                return st
        except BaseException as e:
            raise self._abandon(tmp, path, e) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _abandon(self, tmp: str, path: str, e: BaseException) -> BaseException:
        """Remove the temporary file of a write that failed with ``e``; return what to raise.

        A rename refused because a folder stands at ``path`` is a PathCollisionError.
        """
        _unlink_quietly(tmp)
        if isinstance(e, IsADirectoryError) or (
            isinstance(e, OSError)
            and e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EPERM)
            and os.path.isdir(path)
        ):
            return self._folder_in_the_way(path)
        return e

    def _link_if_absent(self, loc: Location, tmp: str, path: str) -> None:
        """Create ``path`` from ``tmp`` only if absent (atomic where link() works)."""
        try:
            os.link(tmp, path)
        except FileExistsError:
            if os.path.isdir(path):
                raise self._folder_in_the_way(path) from None
            raise PreconditionFailed(loc, IfAbsent()) from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            self._check(loc, path, IfAbsent())  # no hard links here: check-then-act
            os.replace(tmp, path)
            return
        os.unlink(tmp)

    def _check(self, loc: Location, path: str, precondition: Precondition) -> None:
        """Raise PreconditionFailed unless ``precondition`` holds for the file at ``path``.

        A folder at ``path`` is no item: an IfMatch fails on it, and an IfAbsent
        write raises PathCollisionError (it could never succeed).
        """
        st = _lookup(path)
        if st is not None and _S_ISDIR(st.st_mode):
            if isinstance(precondition, IfAbsent):
                raise self._folder_in_the_way(path)
            st = None
        if isinstance(precondition, IfAbsent):
            ok = st is None
        else:
            assert isinstance(precondition, IfMatch)
            ok = st is not None and _etag(st) == precondition.etag
        if not ok:
            raise PreconditionFailed(loc, precondition)

    # ------------------------------------------------------------ deletes

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Remove ``loc``; then remove the folders this left empty (below base_dir).

        Nothing to delete (no file, a folder, a name too long to exist) is False,
        or PreconditionFailed for an IfMatch.
        """
        path = self.path(loc)
        folder = os.path.dirname(path)
        lock = None
        if self.use_locks:
            try:
                lock = folder_locks.acquire(folder)
            except OSError as e:
                if e.errno not in _ABSENT_ERRNOS:
                    raise
                if isinstance(precondition, IfMatch):
                    raise PreconditionFailed(loc, precondition) from None
                return False
        unlinked = False
        try:
            if precondition is not None:
                self._check(loc, path, precondition)
            try:
                os.unlink(path)
            except OSError as e:
                if not _nothing_to_unlink(e, path):
                    raise
                if isinstance(precondition, IfMatch):  # only without locks
                    raise PreconditionFailed(loc, precondition) from None
                return False
            unlinked = True
        finally:
            if lock is not None:
                folder_locks.release(lock, fsync=unlinked and self.durable)
        if self.durable and lock is None:
            _fsync_dir(folder, missing_ok=True)  # gone only if pruned by another delete
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

    # ------------------------------------------------------------ maintenance

    def remove_stale_temps(self, older_than: float) -> int:
        """Delete temporary files last modified over ``older_than`` seconds ago; return how many.

        Only files named like this backend's temporary files (a leading "."
        and the ".tmp#" suffix) under base_dir are touched; folders left
        empty are removed. A live writer's temporary file is younger than the
        time its write takes: do not pass 0 while other writers may run.
        """
        if math.isinf(older_than):
            return 0
        cutoff = time.time_ns() - int(older_than * 1e9)
        removed = 0
        emptied: set[str] = set()
        for parts, entries in self.walk(()):
            for entry in entries:
                name = entry.name
                if not (name.endswith(_TMP_SUFFIX) and name.startswith(".")):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime_ns > cutoff:
                        continue
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue  # renamed into place or removed meanwhile
                removed += 1
                if parts:
                    emptied.add(os.path.dirname(entry.path))
        for folder in sorted(emptied, key=len, reverse=True):
            self._prune(folder)
        return removed

    # ------------------------------------------------------------ listing

    def walk(self, prefix: Location) -> Iterator[tuple[Location, list[os.DirEntry[str]]]]:
        """Stream ``(folder parts, file entries)`` for every file under ``prefix``, in chunks.

        The folder parts are relative to ``prefix`` and the same tuple object
        for all chunks of one folder; a chunk holds at most ``_WALK_CHUNK``
        entries, so memory stays constant but for one open directory per
        level. Folders that vanish meanwhile are skipped, and symbolic links
        to folders are neither walked nor listed.
        """
        top = os.path.join(self.base_dir, *prefix)
        try:
            it = os.scandir(top)
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return
            raise
        stack: list[tuple[Location, os._ScandirIterator[str]]] = [((), it)]
        try:
            while stack:
                parts, entries = stack[-1]
                files: list[os.DirEntry[str]] = []
                for entry in entries:
                    try:
                        # Follows links (a stat only for links): a linked
                        # folder is no item.
                        is_dir = entry.is_dir()
                        if is_dir and entry.is_symlink():
                            continue
                    except OSError:
                        continue
                    if not is_dir:
                        files.append(entry)
                        if len(files) >= _WALK_CHUNK:
                            yield parts, files
                            files = []
                        continue
                    try:
                        sub = os.scandir(entry.path)
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    if files:
                        yield parts, files
                    stack.append(((*parts, entry.name), sub))
                    break
                else:
                    stack.pop()
                    entries.close()
                    if files:
                        yield parts, files
        finally:
            for _, entries in stack:
                entries.close()

    def list(self, prefix: Location) -> Iterator[Location]:
        """Every file location under ``prefix``, relative to it, streamed."""
        for parts, entries in self.walk(prefix):
            for entry in entries:
                yield (*parts, entry.name)

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Every file location under ``prefix`` with its stat, streamed (vanished files skipped)."""
        for parts, entries in self.walk(prefix):
            for entry in entries:
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                yield (*parts, entry.name), stat_of(st)


def make_folders(folder: str, *, durable: bool) -> str | None:
    """Create ``folder`` and its missing parents; return the path of a file in the way, if any.

    Concurrent deletes remove empty folders at any moment, even one this call
    has just made: each step is retried, a bounded number of times. With
    ``durable``, the parent of every folder made is fsynced, so that the new
    folders (and what is then written in them) survive a power loss.
    """
    created: list[str] = []
    try:
        for _ in range(_FOLDER_ATTEMPTS):
            try:
                if _make_folders_once(folder, created):
                    return None
            except NotADirectoryError:
                blocker = _non_folder_on(folder)
                if blocker is not None:
                    return blocker
        raise _kept_vanishing(folder)
    finally:
        if durable and created:
            for parent in dict.fromkeys(os.path.dirname(c) for c in created):
                _fsync_dir(parent, missing_ok=True)


def _make_folders_once(folder: str, created: list[str]) -> bool:
    """One attempt of make_folders: False when a parent vanished meanwhile (then try again)."""
    missing: list[str] = []
    p = folder
    while True:
        try:
            os.mkdir(p)
        except FileNotFoundError:
            parent = os.path.dirname(p)
            if parent == p:
                raise
            missing.append(p)
            p = parent
            continue
        except FileExistsError:
            pass  # made by someone else (or a file: the caller's open says so)
        else:
            created.append(p)
        break
    for q in reversed(missing):
        try:
            os.mkdir(q)
        except FileExistsError:
            continue
        except FileNotFoundError:
            return False  # its parent was pruned by a concurrent delete
        created.append(q)
    return True


def _non_folder_on(folder: str) -> str | None:
    """The nearest existing one of ``folder`` and its parents, if it is not a folder."""
    p = folder
    while True:
        found = _lookup(p)
        if found is not None:
            return None if _S_ISDIR(found.st_mode) else p
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent


def _kept_vanishing(folder: str) -> FileNotFoundError:
    return FileNotFoundError(
        errno.ENOENT,
        f"Cannot create a file in {folder!r}: the folder kept being removed (by concurrent deletes?) "
        f"{_FOLDER_ATTEMPTS} times in a row",
        folder,
    )


def _byte_len(s: str) -> int:
    """The length of ``s`` as a file name in bytes (key parts are ASCII: no encoding needed)."""
    return len(s) if s.isascii() else len(os.fsencode(s))


def _fs_limits(folder: str) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the filesystem of ``folder`` (or of its nearest existing parent)."""
    p = folder
    while True:
        try:
            name_max = os.pathconf(p, "PC_NAME_MAX")
            path_max = os.pathconf(p, "PC_PATH_MAX")
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(p)
            if parent == p:
                return _NAME_MAX, _PATH_MAX
            p = parent
            continue
        except (OSError, ValueError, AttributeError):
            return _NAME_MAX, _PATH_MAX
        return (name_max if name_max > 0 else _NAME_MAX, path_max if path_max > 0 else _PATH_MAX)


def _lookup(path: str) -> os.stat_result | None:
    """``os.stat(path)``, or None when nothing can be there (see _ABSENT_ERRNOS)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in _ABSENT_ERRNOS:
            return None
        raise


def _nothing_to_unlink(e: OSError, path: str) -> bool:
    """Whether ``unlink(path)`` failed because no file is there (nothing, or a folder)."""
    if e.errno in _ABSENT_ERRNOS or isinstance(e, IsADirectoryError):
        return True
    return e.errno == errno.EPERM and os.path.isdir(path)  # unlink of a folder on BSD/macOS


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


def _fsync_dir(folder: str, *, missing_ok: bool = False) -> None:
    try:
        fd = os.open(folder, O_DIR)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
