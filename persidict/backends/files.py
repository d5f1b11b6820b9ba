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
(writes use a descriptor that folder_locks.py keeps open between writes,
one per folder and process, and rename relative to it; see
``_commit_held`` for why that is the folder at the path).
With ``use_locks=False`` (folders synced by Dropbox and the like, which do
not carry locks) conditional operations fall back to check-then-act;
create-if-absent stays atomic on the local disk through ``link()``; plain
writes of keys in folders rename relative to the same kept descriptor,
without its flock.

Links. ``base_dir`` is trusted as given (FileDirDict resolves it once, when
the dict is opened); below it no symbolic link is ever followed. A location
of one name is opened by its path with ``O_NOFOLLOW`` (the only name below
base_dir is the last one, which the flag guards); a deeper one, on Linux
>= 5.6, by its path with one ``openat2`` call under ``RESOLVE_NO_SYMLINKS``
(made through ctypes, about 0.5 µs more than the plain open it replaces;
used only when base_dir's own path holds no link), else through
descriptors, each folder opened relative to its parent with ``O_DIRECTORY |
O_NOFOLLOW``, the item relative to its folder. So a link named like an
item is no item (reads find nothing, deletes leave it, a write replaces the
link itself, never its target), and a link standing where a folder should
be is never entered (reads find nothing, writes raise PathCollisionError).
Linux has no ``stat`` that refuses links on the way, so ``k in d`` for a
location in a folder opens it (``O_PATH``), fstats and closes it: three
calls where a plain ``stat`` was one (see benchmarks/RESULTS.md). Renames
happen relative to the descriptor of the folder the temporary file was made
in, or to the lock's descriptor after checking that the temporary file is
in that very folder; deletes relative to a descriptor of the folder opened
without following links (with locks, the lock's own). Listings
walk descriptors too, and skip links, hidden-by-rule folders and anything
that is not a regular file. Names that could leave the folder ("", ".",
"..", a "/" or NUL inside) are refused (UnsafeNameError on write, nothing
found on read), and so, with ``dot_names=False``, are names starting with
".".

ETags are ``"<mtime_ns>:<size>:<inode>"``. Every write stamps its file with
``time.time_ns()`` made never a whole millisecond (``stamp_time``) before the rename,
so ETags differ even when an inode number is reused. File systems that keep
timestamps to the second or coarser (ext3, ext4 with 128-byte inodes, HFS+,
FAT, many NFS exports) drop those nanoseconds, which alone would let two
same-size writes in one second share an ETag. A file whose mtime is a whole
millisecond therefore carries more: the writer, having found on its first
write that this store drops the nanoseconds, gives each file a random token
in the extended attribute ``user.persidict.etag``, and the ETag is
``"<mtime_ns>:<size>:<inode>:<token>"`` (one getxattr per ETag; on ext4
with 128-byte inodes the attribute takes a block of its own per file).
Where the file system has no extended attributes, the ETag ends in
``":#" + <digest of the content>`` instead, so an ETag there costs a read of
the value (and two writes of equal bytes within one second may share one).
On file systems with fine timestamps none of this is ever consulted.

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
import functools
import hashlib
import itertools
import math
import os
import platform
import secrets
import socket
import stat as stat_module
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
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

BATCH_WORKERS = 4
"""Threads a batch operation uses by default: enough to overlap the round trips of a network file
system, few enough to cost little on a local disk."""
_PATH_CACHE_LIMIT = 100_000
_NAME_MAX = 255  # when the filesystem does not say (os.pathconf)
_PATH_MAX = 4096
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Reads never follow a link, and never block on a FIFO planted in the store.
_O_READ = os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
_O_TMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW
# A folder to create in, list or fsync; and one only to look names up in (O_PATH where there is one).
_O_FOLDER = O_DIR | _O_NOFOLLOW
_O_HOP = (
    (os.O_PATH | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC | _O_NOFOLLOW)
    if hasattr(os, "O_PATH")
    else _O_FOLDER
)
# Ends in a character no extension can contain, so a temporary file never
# looks like an item, whatever the serialization format (even "tmp").
_TMP_SUFFIX = ".tmp#"
# The longest temporary file name: "." host (<= 40) "." pid (<= 10) "."
# token (8), a hex counter (<= 16), the suffix. Short, whatever the item's
# name: a short name is cheaper to create and rename than a long one.
_TMP_NAME_MAX = 1 + 40 + 1 + 10 + 1 + 8 + 16 + len(_TMP_SUFFIX)
# Errors of a lookup that mean "nothing is stored there": no such file, a
# file (or a link) where a folder of the path should be, a link where the
# item should be (ELOOP; EMLINK on FreeBSD), a name or path too long to exist.
_ABSENT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EMLINK})
# Those but ELOOP, which openat2 gives for a link anywhere on the path (the walk tells more).
_ABSENT_NOT_LOOP = _ABSENT_ERRNOS - {errno.ELOOP}
# Errors of a folder lookup that mean "something that is no folder stands there".
_NOT_A_FOLDER_ERRNOS = frozenset({errno.ENOTDIR, errno.ELOOP, errno.EMLINK})
# A write creating folders retries this often while concurrent deletes prune them.
_FOLDER_ATTEMPTS = 100
# walk() hands out a folder's file entries in lists of at most this many.
_WALK_CHUNK = 256
_S_ISDIR = stat_module.S_ISDIR
_S_ISREG = stat_module.S_ISREG
_DIGEST_ADVICE = (
    "With digest_len=0 a key's folder can take the name of another key's file "
    "(key 'a' is the file 'a.pkl', key ('a.pkl', 'x') needs a folder 'a.pkl'); "
    "open the dict with digest_len > 0 to keep them apart"
)
# ETags on file systems with coarse timestamps (see the module docstring).
_COARSE_NS = 1_000_000
_XATTR = "user.persidict.etag"
_NO_XATTR_ERRNOS = frozenset(
    {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM, errno.EACCES, errno.EINVAL}
)
_NO_SUCH_XATTR = frozenset({getattr(errno, "ENODATA", errno.ENOENT), getattr(errno, "ENOATTR", errno.ENOENT)})
_getxattr: Callable[..., bytes] | None = getattr(os, "getxattr", None)
_setxattr: Callable[..., None] | None = getattr(os, "setxattr", None)


def _load_openat2() -> tuple[Callable[..., int], Callable[[], int], Callable[[bytes, int], Any]] | None:
    """Linux's ``openat2``, if this system offers it: (``syscall``, ``get_errno``, ``create_string_buffer``).

    None where the kernel (before 5.6), a sandbox or the platform does not
    offer it (then deep paths are walked by descriptors).
    """
    if not sys.platform.startswith("linux") or platform.machine() == "alpha":
        return None
    try:
        import ctypes

        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError, ImportError):
        return None
    syscall.restype = ctypes.c_long
    how = ctypes.create_string_buffer(struct.pack("=QQQ", _O_HOP, 0, _RESOLVE_NO_SYMLINKS), _OPEN_HOW_SIZE)
    fd = syscall(_SYS_OPENAT2, _AT_FDCWD, b"/", how, _OPEN_HOW_SIZE)
    if fd < 0:
        return None  # ENOSYS (an older kernel), EPERM (a seccomp filter)...
    os.close(fd)
    return syscall, ctypes.get_errno, ctypes.create_string_buffer


_SYS_OPENAT2 = 437  # the same number on every Linux architecture but alpha (which is not supported)
_AT_FDCWD = -100
_RESOLVE_NO_SYMLINKS = 0x04
_OPEN_HOW_SIZE = 24
_O_PATH_ONLY = getattr(os, "O_PATH", 0) | _O_CLOEXEC | _O_NOFOLLOW
_OPENAT2 = _load_openat2()


def _no_links_open(flags: int, mode: int = 0) -> Callable[[bytes], int]:
    """``openat2`` under ``RESOLVE_NO_SYMLINKS`` with ``flags`` (its ``struct open_how`` built once).

    The function returned gives a descriptor of a path, or minus the errno:
    no exception, so a miss costs no more than the call. Only where
    ``_OPENAT2`` is not None.
    """
    assert _OPENAT2 is not None
    syscall, get_errno, buffer = _OPENAT2
    how = buffer(struct.pack("=QQQ", flags, mode, _RESOLVE_NO_SYMLINKS), _OPEN_HOW_SIZE)  # struct open_how

    def open_no_links(path: bytes) -> int:
        fd: int = syscall(_SYS_OPENAT2, _AT_FDCWD, path, how, _OPEN_HOW_SIZE)
        if fd >= 0:
            return fd
        err = get_errno()
        return open_no_links(path) if err == errno.EINTR else -err

    return open_no_links


# The two calls of reads (a lookup, an open to read), made once.
_lookup_no_links = _no_links_open(_O_PATH_ONLY) if _OPENAT2 is not None else None
_read_no_links = _no_links_open(_O_READ) if _OPENAT2 is not None else None
_NO_LINKS_OPENS: dict[tuple[int, int], Callable[[bytes], int]] = {}


def _open_no_links_raising(path: bytes, flags: int, mode: int = 0) -> int:
    """``os.open`` of ``path`` by openat2 under ``RESOLVE_NO_SYMLINKS``; OSError as ``os.open`` raises it."""
    call = _NO_LINKS_OPENS.get((flags, mode))
    if call is None:
        call = _NO_LINKS_OPENS[flags, mode] = _no_links_open(flags, mode)
    fd = call(path)
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd), os.fsdecode(path))
    return fd


# None where there is no openat2: deep paths are walked by descriptors (tests set it to None to try that).
_open_no_links: Callable[..., int] | None = _open_no_links_raising if _OPENAT2 is not None else None


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


class UnsafeNameError(ValueError):
    """A location with a name that cannot be an item here; nothing was written.

    ``""``, ``"."``, ``".."`` and names holding ``"/"`` or NUL would leave
    their folder; with ``dot_names=False`` a name starting with ``"."`` is
    hidden, which is never an item. ``index`` is its position in the location.
    """

    def __init__(self, message: str, *, name: str, index: int) -> None:
        super().__init__(message)
        self.name = name
        self.index = index

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_rebuild_unsafe, (type(self), str(self), self.name, self.index))


def _rebuild_unsafe(cls: type[UnsafeNameError], message: str, name: str, index: int) -> UnsafeNameError:
    """Unpickle an UnsafeNameError (its constructor takes keyword arguments)."""
    return cls(message, name=name, index=index)


class PathCollisionError(BackendError):
    """A write whose file path is held by a folder, or a folder path by a file or a link; nothing changed."""


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


# ---------------------------------------------------------------- ETags


def stamp_time(now_ns: int) -> int:
    """The mtime a write stamps on its file: ``now_ns`` with a fraction of a millisecond that survives.

    Odd nanoseconds, and a non-zero count of microseconds within the
    millisecond, so the stamp is not a whole millisecond even on a file
    system that keeps microseconds or tenths of them; one that keeps only
    milliseconds, seconds or coarser drops the fraction (``is_coarse``).
    """
    t = now_ns | 1
    if not t // 1_000 % 1_000:
        t += 1_000
    return t


def is_coarse(mtime_ns: int) -> bool:
    """Whether a file's mtime is a whole millisecond: what a write's stamp becomes on a coarse file system."""
    return mtime_ns % _COARSE_NS == 0


def stat_of(st: os.stat_result) -> Stat:
    """The backend Stat of an ``os.stat_result`` whose mtime is fine (not a whole millisecond)."""
    ns = st.st_mtime_ns
    return Stat(f"{ns}:{st.st_size}:{st.st_ino}", ns / 1e9, st.st_size)


def _stat_with(st: os.stat_result, etag: str) -> Stat:
    return Stat(etag, st.st_mtime_ns / 1e9, st.st_size)


def _etag_of_open(fd: int, st: os.stat_result, data: bytes | None) -> str:
    """The ETag of the open regular file ``fd`` (``st`` its fstat; ``data`` its bytes if already read).

    Fine timestamps: ``mtime_ns:size:inode``. A whole-millisecond mtime (a
    coarse file system) adds the file's token, or, where the file system has
    no extended attributes, a digest of the content (read here if ``data`` is
    None).
    """
    tag = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
    if st.st_mtime_ns % _COARSE_NS:
        return tag
    token = _token_of(fd)
    if token is None:
        if data is None:
            data = _pread_all(fd, st.st_size)
        return f"{tag}:#{hashlib.blake2b(data, digest_size=8).hexdigest()}"
    return f"{tag}:{token}" if token else tag


def _token_of(fd: int) -> str | None:
    """The file's ETag token ("" if it has none); None where the file system keeps no extended attributes."""
    if _getxattr is None:
        return None
    try:
        raw = _getxattr(fd, _XATTR)
    except OSError as e:
        if e.errno in _NO_SUCH_XATTR:
            return ""
        if e.errno in _NO_XATTR_ERRNOS:
            return None
        raise
    return raw.decode("ascii", "replace")


def _give_token(fd: int) -> None:
    """Give the open file a fresh random ETag token (nothing where extended attributes are not kept)."""
    if _setxattr is None:
        return
    try:
        _setxattr(fd, _XATTR, secrets.token_hex(8).encode("ascii"))
    except OSError as e:
        if e.errno not in _NO_XATTR_ERRNOS:
            raise


def _pread_all(fd: int, size: int) -> bytes:
    """The first ``size`` bytes of the open file (fewer if it is shorter), whatever its offset."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.pread(fd, size - got, got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- the backend

# Where a location is, for reads: its path (one name below base_dir), or the
# path of its first folder, the names of the folders below that, its name,
# and its whole path encoded for openat2 (None: walk the folders instead).
_Nested = tuple[str, tuple[str, ...], str, bytes | None]
# Where a location is, for writes: (path, folder, folder + separator, folder parts).
_Split = tuple[str, str, str, tuple[str, ...]]


class FileBackend:
    """Bytes in files under ``base_dir``; locations are relative path parts.

    ``durable``: fsync every written file and its folder (and the parents of
    the folders a write creates). ``use_locks``: make preconditions atomic
    across threads and processes with ``flock`` on the item's folder (turn
    off for synced folders that do not carry locks). ``dot_names=False``:
    names starting with "." are never items (refused on write, absent on
    read). ``base_dir`` is trusted as given; below it no link is followed.
    """

    def __init__(
        self, base_dir: str, *, durable: bool = True, use_locks: bool = True, dot_names: bool = True
    ) -> None:
        self.base_dir = os.path.abspath(os.fspath(base_dir))
        self._base_head = os.path.join(self.base_dir, "")  # base_dir and one separator
        self.durable = durable
        self.use_locks = use_locks
        self.dot_names = dot_names
        self.capabilities = Capabilities(atomic_preconditions=use_locks, batch_workers=BATCH_WORKERS)
        self._paths: dict[Location, str] = {}
        # Checked locations: of one name -> its path; deeper -> where (see _Nested).
        self._flat: dict[Location, str] = {}
        self._nested: dict[Location, _Nested] = {}
        self._splits: dict[Location, _Split] = {}
        # Folder parts whose names were checked -> (folder, folder + separator).
        self._folders: dict[Location, tuple[str, str]] = {}
        self._limits: tuple[int, int] | None = None
        self._base_dir_fits = False
        self._coarse: bool | None = None
        """Whether this store's file system drops sub-millisecond mtimes (None: no write yet)."""
        self._openat2_ok: bool | None = None

    def __repr__(self) -> str:
        return f"FileBackend({self.base_dir!r}, durable={self.durable}, use_locks={self.use_locks})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_paths", "_flat", "_nested", "_splits", "_folders"):
            state[name] = {}
        state["_limits"] = None
        state["_coarse"] = None
        state["_openat2_ok"] = None
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

    def _unsafe_name(self, loc: Location) -> UnsafeNameError | None:
        """Why ``loc`` can hold no item here (a name leaving its folder, or hidden), or None."""
        for i, name in enumerate(loc):
            if name in ("", ".", "..") or "/" in name or "\0" in name or (os.altsep and os.altsep in name):
                return UnsafeNameError(
                    f"the name {name!r} would not stay inside its folder of {self.base_dir!r}",
                    name=name,
                    index=i,
                )
            if name[0] == "." and not self.dot_names:
                return UnsafeNameError(
                    f"the name {name!r} starts with '.': hidden files and folders are never items here",
                    name=name,
                    index=i,
                )
        return None

    def _relative(self, loc: Location) -> str | None:
        """The path of ``loc`` relative to base_dir, or None when it cannot hold an item here.

        ``_unsafe_name`` in a few string scans (a read's first look at a location).
        """
        rel = "/".join(loc)
        if (
            not loc
            or "\0" in rel
            or rel.count("/") != len(loc) - 1
            or "" in loc
            or "." in loc
            or ".." in loc
            or (not self.dot_names and (rel[0] == "." or "/." in rel))
            or (os.altsep is not None and os.altsep in rel)
        ):
            return None
        return rel

    def _reach(self, loc: Location) -> str | _Nested | None:
        """Where ``loc`` is for a read: its path, or its folders and name (cached); None if nothing can be."""
        found: str | _Nested | None = self._flat.get(loc) or self._nested.get(loc)
        if found is not None:
            return found
        sp = self._splits.get(loc)  # written here: its names are checked, its path made
        if sp is not None:
            path = sp[0]
        else:
            rel = self._relative(loc)
            if rel is None:
                return None
            path = self._base_head + rel
        if len(loc) == 1:
            if len(self._flat) >= _PATH_CACHE_LIMIT:
                self._flat.clear()
            self._flat[loc] = path
            return path
        whole = os.fsencode(path) if self._one_call_opens() else None
        nested = (self._base_head + loc[0], loc[1:-1], loc[-1], whole)
        if len(self._nested) >= _PATH_CACHE_LIMIT:
            self._nested.clear()
        self._nested[loc] = nested
        return nested

    def _one_call_opens(self) -> bool:
        """Whether deep locations are opened with one openat2 call (the kernel has it, and base_dir's
        own path holds no link, which RESOLVE_NO_SYMLINKS would refuse); checked once."""
        ok = self._openat2_ok
        if ok is None:
            base = self.base_dir
            ok = self._openat2_ok = _open_no_links is not None and os.path.realpath(base) == base
        return ok

    def check_writable(self, loc: Location) -> None:
        """Raise FileNameTooLongError or UnsafeNameError if ``loc`` can never be written here (cached)."""
        if loc not in self._splits:
            self._split(loc)

    def _split(self, loc: Location) -> _Split:
        """(path, folder, folder + separator, folder parts) of ``loc``, cached for writes.

        Raises FileNameTooLongError or UnsafeNameError when ``loc`` cannot be stored here.
        """
        sp = self._splits.get(loc)
        if sp is None:
            sp = self._split_new(loc)
            if len(self._splits) >= _PATH_CACHE_LIMIT:
                self._splits.clear()
            self._splits[loc] = sp
        return sp

    def _split_new(self, loc: Location) -> _Split:
        """``_split`` uncached: short ASCII names in a folder already checked skip the length check."""
        unsafe = self._unsafe_name(loc)
        if unsafe is not None:
            raise unsafe
        name_max, path_max = self._limits or self.limits()
        name = loc[-1]
        parts = loc[:-1]
        known = self._folders.get(parts)
        if known is not None and name.isascii() and len(name) <= name_max:
            folder, head = known  # its temporary names fit: checked once
            path = head + name
            if path.isascii() and len(path) < path_max:
                return path, folder, head, parts
        path = self.path(loc)
        folder = os.path.dirname(path)
        head = os.path.join(folder, "")
        self._check_lengths(loc, path, head, name_max, path_max)
        if len(self._folders) >= _PATH_CACHE_LIMIT:
            self._folders.clear()
        self._folders[parts] = (folder, head)
        return path, folder, head, parts

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

    # ------------------------------------------------------------ descriptors

    def _folder(self, parts: Location, flags: int = _O_HOP) -> int:
        """A descriptor of the folder ``parts`` (non-empty) below base_dir, opened without following links.

        Raises OSError (see _ABSENT_ERRNOS) when it is missing or not a folder.
        """
        if len(parts) > 1 and self._one_call_opens():
            path = os.fsencode(os.path.join(self.base_dir, *parts))
            return _open_no_links(path, flags)  # type: ignore[misc]
        fd = os.open(os.path.join(self.base_dir, parts[0]), flags)
        for name in parts[1:]:
            try:
                below = os.open(name, flags, dir_fd=fd)
            finally:
                os.close(fd)
            fd = below
        return fd

    def _open_item(self, loc: Location) -> int:
        """A read descriptor of the file at ``loc``, or -1 when no item can be (or is) there.

        OSError when absent may also be raised (errnos in _ABSENT_ERRNOS).
        """
        where = self._reach(loc)
        if where is None:
            return -1
        if isinstance(where, str):
            return os.open(where, _O_READ)
        head, middle, name, whole = where
        if whole is not None:
            fd = _read_no_links(whole)  # type: ignore[misc]
            if fd >= 0:
                return fd
            if fd != -errno.ELOOP:
                if -fd in _ABSENT_ERRNOS:
                    return -1
                raise OSError(-fd, os.strerror(-fd), self.path(loc))
            # A link on the way: the walk below says whether it is inside the store.
        fd = os.open(head, _O_HOP)
        try:
            for folder in middle:
                below = os.open(folder, _O_HOP, dir_fd=fd)
                os.close(fd)
                fd = below
            return os.open(name, _O_READ, dir_fd=fd)
        finally:
            os.close(fd)

    def _lstat_item(self, loc: Location) -> os.stat_result | None:
        """``lstat`` of ``loc`` without following links on the way; None when nothing can be there."""
        where = self._reach(loc)
        if where is None:
            return None
        try:
            if isinstance(where, str):
                return os.lstat(where)
            head, middle, name, whole = where
            if whole is not None:
                fd = _lookup_no_links(whole)  # type: ignore[misc]
                if fd >= 0:
                    try:
                        return os.fstat(fd)
                    finally:
                        os.close(fd)
                if fd != -errno.ELOOP:
                    if -fd in _ABSENT_ERRNOS:
                        return None
                    raise OSError(-fd, os.strerror(-fd), self.path(loc))
                # A link on the way: the walk below says whether it is inside the store.
            fd = os.open(head, _O_HOP)
            try:
                for folder in middle:
                    below = os.open(folder, _O_HOP, dir_fd=fd)
                    os.close(fd)
                    fd = below
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
            finally:
                os.close(fd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return None
            raise

    # ------------------------------------------------------------ reads
    # Only a regular file is an item: reads find nothing at a location held
    # by a folder, a link or anything else, and a lookup that cannot find
    # anything (no such file, a file or link where a folder should be, a
    # name too long to exist) answers "absent".

    def stat(self, loc: Location) -> Stat | None:
        """Metadata at ``loc``, or None when no file is there."""
        st = self._lstat_item(loc)
        if st is None or not _S_ISREG(st.st_mode):
            return None
        if st.st_mtime_ns % _COARSE_NS:
            return stat_of(st)
        got = self.read(loc, data=False)  # a coarse file system: the ETag needs the open file
        return None if got is None or isinstance(got, NotModified) else got[1]

    def exists(self, loc: Location) -> bool:
        """Whether a file is at ``loc`` (``stat`` without building a Stat)."""
        path = self._flat.get(loc)
        try:
            if path is not None:
                return _S_ISREG(os.lstat(path).st_mode)
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return False
            raise
        nested = self._nested.get(loc)
        if nested is not None and nested[3] is not None:  # _lstat_item's openat2 lookup, inlined
            fd = _lookup_no_links(nested[3])  # type: ignore[misc]
            if fd >= 0:
                try:
                    return _S_ISREG(os.fstat(fd).st_mode)
                finally:
                    os.close(fd)
            if -fd in _ABSENT_NOT_LOOP:
                return False
        st = self._lstat_item(loc)
        return st is not None and _S_ISREG(st.st_mode)

    def read_bytes(self, loc: Location) -> bytes | None:
        """The bytes at ``loc`` (None when absent), without their stat: ``d[key]``'s fast path."""
        path = self._flat.get(loc)
        try:
            if path is not None:
                fd = os.open(path, _O_READ)
            else:
                nested = self._nested.get(loc)
                whole = nested[3] if nested is not None else None
                if whole is not None:  # _open_item's openat2, inlined
                    fd = _read_no_links(whole)  # type: ignore[misc]
                    if fd < 0:
                        if -fd in _ABSENT_NOT_LOOP:
                            return None
                        fd = self._open_item(loc)  # a link on the way, or an error to raise
                else:
                    fd = self._open_item(loc)
                if fd < 0:
                    return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return None
            raise
        try:
            # Sized by fstat: one exact allocation (guessing a buffer size and
            # growing it costs far more than the fstat on big values).
            st = os.fstat(fd)
            if not _S_ISREG(st.st_mode):
                return None
            data = _read_exactly(fd, st.st_size)
        finally:
            os.close(fd)
        return data

    def read(self, loc: Location, *, if_none_match: str | None = None, data: bool = True) -> ReadAnswer:
        """Bytes and their stat (of the same open file); None when absent.

        NotModified (without reading the bytes, but on a coarse file system
        without extended attributes) when the ETag is ``if_none_match``;
        ``data=False`` reads the stat only (the bytes returned are empty).
        """
        try:
            fd = self._open_item(loc)
            if fd < 0:
                return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return None
            raise
        try:
            st = os.fstat(fd)
            if not _S_ISREG(st.st_mode):
                return None
            got: bytes | None = None
            if st.st_mtime_ns % _COARSE_NS:
                etag = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
            else:
                if data:
                    got = _read_exactly(fd, st.st_size)  # read first: the ETag may be a digest of it
                etag = _etag_of_open(fd, st, got)
            stat = _stat_with(st, etag)
            if etag == if_none_match:
                return NotModified(stat)
            if got is None:
                got = _read_exactly(fd, st.st_size) if data else b""
        finally:
            os.close(fd)
        return got, stat

    # ------------------------------------------------------------ writes

    def _make_temp(
        self, dfd: int | None, head: str, data: bytes, with_stat: bool
    ) -> tuple[str, Stat | None] | None:
        """Write ``data`` to a new temporary file; return its name in its folder and (``with_stat``) its Stat.

        The folder is ``dfd`` (None: the folder whose path ends ``head``,
        made if missing). None when that folder vanished meanwhile
        (concurrent deletes remove empty folders, ``_prune``): try again.
        Once the temporary file stands in it, the folder is pinned: a
        non-empty folder is never removed.
        """
        namer = _NAMER
        for _ in range(_FOLDER_ATTEMPTS):
            name = f"{namer.stem}{next(namer.counter):x}{_TMP_SUFFIX}"  # unique: host, pid, token
            try:
                if dfd is None:
                    fd = os.open(head + name, _O_TMP, 0o666)
                else:
                    fd = os.open(name, _O_TMP, 0o666, dir_fd=dfd)
            except FileNotFoundError:
                if dfd is not None:
                    return None
                self._make_folders(head[:-1])
                continue
            except FileExistsError:
                continue
            except NotADirectoryError:
                if dfd is not None:
                    return None
                self._raise_if_blocked(head[:-1])
                continue
            break
        else:
            raise _kept_vanishing(head[:-1])
        return name, self._fill_temp(fd, name if dfd is not None else head + name, dfd, data, with_stat)

    def _make_temp_no_links(self, head: str, data: bytes, with_stat: bool) -> tuple[str, Stat | None] | None:
        """``_make_temp`` in the folder at ``head`` with one openat2 call (no link followed on the way).

        None when that folder cannot be reached so (missing, or a file or a
        link on the way): the caller walks to it instead, making it if need be.
        """
        namer = _NAMER
        name = f"{namer.stem}{next(namer.counter):x}{_TMP_SUFFIX}"
        try:
            fd = _open_no_links(os.fsencode(head + name), _O_TMP, 0o666)  # type: ignore[misc]
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS or e.errno == errno.EEXIST:
                return None
            raise
        return name, self._fill_temp(fd, head + name, None, data, with_stat)

    def _fill_temp(self, fd: int, at: str, dfd: int | None, data: bytes, with_stat: bool) -> Stat | None:
        """Write ``data`` to the new temporary file ``fd`` (``at`` in ``dfd``), stamp it, close it.

        Returns its Stat when ``with_stat``; on failure the file is removed.
        """
        try:
            n = os.write(fd, data)
            if n < len(data):  # a short write (huge values): write on
                view = memoryview(data)[n:]
                while view:
                    view = view[os.write(fd, view) :]
            self._stamp(fd)
            if self.durable:
                os.fsync(fd)  # data, size, the stamped mtime and the token
            st = None
            if with_stat:
                fst = os.fstat(fd)
                st = (
                    stat_of(fst)
                    if fst.st_mtime_ns % _COARSE_NS
                    else _stat_with(fst, _etag_of_open(fd, fst, data))
                )
        except BaseException:
            os.close(fd)
            _unlink_quietly(at, dir_fd=dfd)
            raise
        os.close(fd)
        return st

    def _stamp(self, fd: int) -> None:
        """Stamp the new file's mtime (see ``stamp_time``) and, on a coarse file system, give it a token.

        The first write of this backend finds out (one fstat) whether the
        file system keeps the stamp finer than a millisecond.
        """
        t = stamp_time(time.time_ns())
        os.utime(fd, ns=(t, t))  # the stamp that keeps ETags unique
        coarse = self._coarse
        if coarse is None:
            coarse = self._coarse = is_coarse(os.fstat(fd).st_mtime_ns)
        if coarse:
            _give_token(fd)

    @property
    def coarse_timestamps(self) -> bool | None:
        """Whether this store's file system keeps mtimes to the millisecond or coarser (None: no write yet).

        Found out by this backend's first write: its stamp (never a whole
        millisecond, see ``stamp_time``) comes back a whole millisecond only
        where the file system drops the fraction.
        """
        return self._coarse

    def _make_folders(self, folder: str) -> None:
        """Create ``folder`` and its missing parents by path (PathCollisionError if a file is in the way)."""
        blocker = make_folders(folder, durable=self.durable)
        if blocker is not None:
            raise self._file_in_the_way(blocker, folder)

    def _raise_if_blocked(self, folder: str) -> None:
        """Raise PathCollisionError if a file stands where ``folder`` or one of its parents should."""
        blocker = _non_folder_on(folder)
        if blocker is not None:
            raise self._file_in_the_way(blocker, folder)

    def _file_in_the_way(self, blocker: str, folder: str) -> PathCollisionError:
        found = _lstat_at(blocker, None)
        if found is not None and stat_module.S_ISLNK(found.st_mode):
            return PathCollisionError(
                f"Cannot store an item in the folder {folder!r}: {blocker!r} is a symbolic link, not a "
                "folder, and links inside a store are never followed; nothing was changed",
                backend=self.describe(),
                operation="write",
            )
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

    def _folder_for_write(self, parts: Location) -> int | None:
        """A descriptor of the folder ``parts`` (non-empty), made with missing parents, links never followed.

        None when a folder on the way vanished meanwhile (pruned by a
        concurrent delete): try again. PathCollisionError when a file or a
        link stands where one of the folders should be.
        """
        base = self.base_dir
        fd: int | None = None  # the folder reached so far (None: base_dir, by its path)
        i = 0
        try:
            for _ in range(4 * len(parts) + 4):  # an open, a mkdir and an open again per level, at most
                if i == len(parts):
                    got, fd = fd, None
                    return got
                name = parts[i]
                where = os.path.join(base, name) if fd is None else name
                try:
                    below = os.open(where, _O_FOLDER, dir_fd=fd)
                except FileNotFoundError:
                    if not self._made(where, fd):
                        return None  # the parent vanished (or base_dir is missing)
                    continue
                except OSError as e:
                    if e.errno in _NOT_A_FOLDER_ERRNOS:
                        blocker = os.path.join(base, *parts[: i + 1])
                        if fd is None:  # base_dir itself, or a folder above it, may be the file in the way
                            blocker = _non_folder_on(blocker) or blocker
                        raise self._file_in_the_way(blocker, self.path(parts)) from None
                    raise
                if fd is not None:
                    os.close(fd)
                fd = below
                i += 1
            return None
        finally:
            if fd is not None:
                os.close(fd)

    def _made(self, where: str, dfd: int | None) -> bool:
        """Make the folder ``where`` (relative to ``dfd``, or a path); False if its parent is missing."""
        try:
            os.mkdir(where, dir_fd=dfd)
        except FileExistsError:
            return True  # made meanwhile, or something else is there: the next open says which
        except FileNotFoundError:
            if dfd is None:
                self._make_folders(self.base_dir)  # base_dir itself was removed: made again
            return False
        except NotADirectoryError:
            if dfd is None:
                self._raise_if_blocked(self.base_dir)  # a file stands where base_dir should be
            raise
        if self.durable:
            if dfd is None:
                _fsync_dir(self.base_dir, missing_ok=True)
            else:
                os.fsync(dfd)
        return True

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat:
        """Store ``data`` at ``loc`` atomically; PreconditionFailed changes nothing."""
        st = self._store(loc, data, precondition, True)
        assert st is not None
        return st

    def put(self, loc: Location, data: bytes) -> None:
        """``write`` without a precondition and without gathering the new Stat (one fstat fewer)."""
        self._store(loc, data, None, False)

    def _store(self, loc: Location, data: bytes, precondition: Precondition, with_stat: bool) -> Stat | None:
        """Write a temporary file, then rename it over ``loc`` (under the folder lock); return its Stat.

        One name below base_dir: the temporary file is made by its path.
        Deeper: by its path with one openat2 call that follows no link (a
        plain write with locks, where Linux has openat2), else in a
        descriptor of the item's folder, opened (and made) with no link
        followed. The rename happens relative to the descriptor the
        temporary file stands in, or to the locked folder's, where it
        succeeds only if that is the folder the temporary file is in.
        """
        sp = self._splits.get(loc) or self._split(loc)
        parts = sp[3]
        # A plain write may make its temporary file with one openat2 call: the rename, relative to a
        # kept descriptor of the folder, finds it only if that folder is the one it is in.
        quick = bool(parts) and precondition is None and self._one_call_opens()
        for _ in range(_FOLDER_ATTEMPTS):
            dfd = None
            made = self._make_temp_no_links(sp[2], data, with_stat) if quick else None
            if made is None and parts:
                quick = False
                dfd = self._folder_for_write(parts)
                if dfd is None:
                    continue
            try:
                if made is None:
                    made = self._make_temp(dfd, sp[2], data, with_stat)
                    if made is None:
                        continue
                tmp_name, st = made
                if self._commit(loc, sp, dfd, tmp_name, precondition):
                    return st
                quick = False  # the folder changed meanwhile: walk to it
            finally:
                if dfd is not None:
                    os.close(dfd)
        raise _kept_vanishing(sp[1])

    def _commit(
        self, loc: Location, sp: _Split, dfd: int | None, tmp_name: str, precondition: Precondition
    ) -> bool:
        """Rename the temporary file over the item if ``precondition`` holds (under the folder lock).

        False (the temporary file removed) when the folder at the item's path
        is not the one the temporary file stands in (it was renamed away, or
        a link stands there): try again.
        """
        path, folder, head, _ = sp
        name = loc[-1]
        tmp_at, name_at = (tmp_name, name) if dfd is not None else (head + tmp_name, path)
        try:
            # With locks, and for a plain write made by one openat2 call: rename in a kept descriptor.
            if self.use_locks or (dfd is None and sp[3]):
                done = self._commit_held(
                    loc, folder, dfd, tmp_name, name, name_at, precondition, lock=self.use_locks
                )
                if not done:
                    _unlink_quietly(tmp_at, dir_fd=dfd)
                return done
            if isinstance(precondition, IfAbsent):
                self._link_if_absent(loc, dfd, tmp_at, name_at)
            else:
                if precondition is not None:
                    self._check(loc, dfd, name_at, precondition)
                os.replace(tmp_at, name_at, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException as e:
            raise self._abandon(dfd, tmp_at, name_at, path, e) from None
        if self.durable:
            if dfd is not None:
                os.fsync(dfd)
            else:
                _fsync_dir(folder, missing_ok=True)  # gone only if a delete already removed the item
        return True

    def _commit_held(
        self,
        loc: Location,
        folder: str,
        dfd: int | None,
        tmp_name: str,
        name: str,
        name_at: str,
        precondition: Precondition,
        *,
        lock: bool = True,
    ) -> bool:
        """``_commit`` with locks (or, ``lock=False``, a plain write without locks): lock (or not) and
        rename through this process's kept descriptor of the folder (no open, close or path walk of
        the folder per write); fsync it after, when durable.

        Renaming the temporary file relative to the kept descriptor succeeds
        only if the descriptor is the folder the file stands in; a stale one
        (its folder removed or renamed away since) fails with
        FileNotFoundError, and is dropped for a fresh one. The lock taken is
        thus the lock of the folder the rename lands in. False if even a
        fresh descriptor of the folder at the path does not hold the file.
        """
        for _ in range(2):
            try:
                held = folder_locks.hold_locked(folder) if lock else folder_locks.hold(folder)
            except OSError as e:
                if e.errno in _ABSENT_ERRNOS:
                    return False
                raise
            try:
                if precondition is not None:
                    self._check(loc, dfd, name_at, precondition)
                os.replace(tmp_name, name, src_dir_fd=held.fd, dst_dir_fd=held.fd)
            except FileNotFoundError:
                folder_locks.drop(folder, held)  # stale: another folder stands at the path
                continue
            except BaseException:
                folder_locks.release(held)
                raise
            folder_locks.release(held, fsync=self.durable)
            return True
        return False

    def _abandon(
        self, dfd: int | None, tmp_at: str, name_at: str, path: str, e: BaseException
    ) -> BaseException:
        """Remove the temporary file of a write that failed with ``e``; return what to raise.

        A rename refused because a folder stands at the item's path is a PathCollisionError.
        """
        _unlink_quietly(tmp_at, dir_fd=dfd)
        if isinstance(e, IsADirectoryError) or (
            isinstance(e, OSError)
            and e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EPERM)
            and _is_folder(name_at, dfd)
        ):
            return self._folder_in_the_way(path)
        return e

    def _link_if_absent(self, loc: Location, dfd: int | None, tmp_at: str, name_at: str) -> None:
        """Create the item from the temporary file only if absent (atomic where link() works).

        A link or other non-file standing at the item's name is no item: it is removed (never its target).
        """
        for attempt in range(2):
            try:
                os.link(tmp_at, name_at, src_dir_fd=dfd, dst_dir_fd=dfd)
            except FileExistsError:
                st = _lstat_at(name_at, dfd)
                if st is not None and _S_ISDIR(st.st_mode):
                    raise self._folder_in_the_way(self.path(loc)) from None
                if attempt or st is None or _S_ISREG(st.st_mode):
                    raise PreconditionFailed(loc, IfAbsent()) from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name_at, dir_fd=dfd)  # a link (or FIFO...) named like the item: no item
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                self._check(loc, dfd, name_at, IfAbsent())  # no hard links here: check-then-act
                os.replace(tmp_at, name_at, src_dir_fd=dfd, dst_dir_fd=dfd)
                return
            os.unlink(tmp_at, dir_fd=dfd)
            return

    def _check(self, loc: Location, dfd: int | None, name_at: str, precondition: Precondition) -> None:
        """Raise PreconditionFailed unless ``precondition`` holds for the file ``name_at`` (in ``dfd``).

        Only a regular file is an item. A folder there is none: an IfMatch
        fails on it, and an IfAbsent write raises PathCollisionError (it
        could never succeed).
        """
        st = _lstat_at(name_at, dfd)
        if st is not None and not _S_ISREG(st.st_mode):
            if _S_ISDIR(st.st_mode) and isinstance(precondition, IfAbsent):
                raise self._folder_in_the_way(self.path(loc))
            st = None
        if isinstance(precondition, IfAbsent):
            ok = st is None
        else:
            assert isinstance(precondition, IfMatch)
            ok = st is not None and _etag_at(name_at, dfd, st) == precondition.etag
        if not ok:
            raise PreconditionFailed(loc, precondition)

    # ------------------------------------------------------------ deletes

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Remove ``loc``; then remove the folders this left empty (below base_dir).

        Nothing to delete (no file, a folder, a link, a name too long to
        exist) is False, or PreconditionFailed for an IfMatch. A link named
        like the item is left alone, and so is its target.
        """
        sp = self._splits.get(loc)  # a location written here: its names are checked
        if sp is not None:
            path, folder = sp[0], sp[1]
        elif self._reach(loc) is None:
            return self._nothing(loc, precondition)
        else:
            path = self.path(loc)
            folder = os.path.dirname(path)
        parts = loc[:-1]
        if self.use_locks:
            done = self._unlink_locked(loc, parts, folder, path, precondition)
        else:
            done = self._unlink_unlocked(loc, parts, folder, path, precondition)
        if done and parts:
            self._prune(parts, folder)
        return done

    def _nothing(self, loc: Location, precondition: Precondition) -> bool:
        """The answer of a delete that found nothing: False, or PreconditionFailed for an IfMatch."""
        if isinstance(precondition, IfMatch):
            raise PreconditionFailed(loc, precondition)
        return False

    def _open_folder(self, parts: Location, folder: str, flags: int) -> int:
        """A descriptor of the folder ``parts`` (at the path ``folder``), opened without following links."""
        # One folder is the last name of its path, which O_NOFOLLOW guards.
        return os.open(folder, flags) if len(parts) == 1 else self._folder(parts, flags)

    def _unlink_locked(
        self, loc: Location, parts: Location, folder: str, path: str, precondition: Precondition
    ) -> bool:
        """Unlink the item under the folder lock, relative to the lock's descriptor (opened without
        following links) if it is a regular file and ``precondition`` holds."""
        opener = None
        if parts:
            opener = functools.partial(self._open_folder, parts, folder, _O_FOLDER)
        try:
            lock = folder_locks.acquire(folder, opener)
        except OSError as e:
            if e.errno not in _ABSENT_ERRNOS:
                raise
            return self._nothing(loc, precondition)
        dfd, name_at = (lock.fd, loc[-1]) if parts else (None, path)
        unlinked = False
        try:
            unlinked = self._unlink_checked(loc, dfd, name_at, precondition)
        finally:
            folder_locks.release(lock, fsync=unlinked and self.durable)
        return unlinked

    def _unlink_unlocked(
        self, loc: Location, parts: Location, folder: str, path: str, precondition: Precondition
    ) -> bool:
        """``_unlink_locked`` without the lock: relative to a descriptor of the folder opened without
        following links (check-then-act for a precondition)."""
        dfd = None
        if parts:
            # Only a fsync needs more than a descriptor to look names up in.
            try:
                dfd = self._open_folder(parts, folder, _O_FOLDER if self.durable else _O_HOP)
            except OSError as e:
                if e.errno not in _ABSENT_ERRNOS:
                    raise
                return self._nothing(loc, precondition)
        try:
            if not self._unlink_checked(loc, dfd, loc[-1] if parts else path, precondition):
                return False
            if self.durable:
                if dfd is not None:
                    os.fsync(dfd)
                else:
                    _fsync_dir(folder, missing_ok=True)  # gone only if pruned by another delete
        finally:
            if dfd is not None:
                os.close(dfd)
        return True

    def _unlink_checked(
        self, loc: Location, dfd: int | None, name_at: str, precondition: Precondition
    ) -> bool:
        """Unlink ``name_at`` (relative to ``dfd``) if it is a regular file and ``precondition`` holds."""
        if precondition is not None:
            self._check(loc, dfd, name_at, precondition)
        else:
            st = _lstat_at(name_at, dfd)
            if st is None or not _S_ISREG(st.st_mode):
                return False
        try:
            os.unlink(name_at, dir_fd=dfd)
        except OSError as e:
            if not _nothing_to_unlink(e, name_at, dfd):
                raise
            return self._nothing(loc, precondition)  # (only without locks)
        return True

    def _prune(self, parts: Location, folder: str) -> None:
        """Remove the folders ``parts`` (at the path ``folder``) if empty, deepest first, up to base_dir
        (kept); no link followed."""
        if len(parts) == 1:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # rmdir never follows a link in its last name
            return
        fds: list[int] = []
        try:
            try:
                if len(parts) > 1:
                    fds.append(os.open(os.path.join(self.base_dir, parts[0]), _O_HOP))
                for name in parts[1:-1]:
                    fds.append(os.open(name, _O_HOP, dir_fd=fds[-1]))
            except OSError:
                return
            for i in range(len(parts) - 1, 0, -1):
                try:
                    os.rmdir(parts[i], dir_fd=fds[i - 1])
                except OSError:
                    return
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(self.base_dir, parts[0]))
        finally:
            for fd in fds:
                os.close(fd)

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Delete many locations unconditionally; return how many were deleted."""
        n = 0
        for loc in locs:
            n += self.delete(loc)
        return n

    # ------------------------------------------------------------ maintenance

    def remove_stale_temps(
        self, older_than: float, prefix: Location = (), descend: Callable[[str], bool] | None = None
    ) -> int:
        """Delete temporary files last modified over ``older_than`` seconds ago; return how many.

        Only files named like this backend's temporary files (a leading "."
        and the ".tmp#" suffix) under ``prefix`` (in the folders ``descend``
        accepts) are touched; folders left empty are removed. A live
        writer's temporary file is younger than the time its write takes: do
        not pass 0 while other writers may run.
        """
        if math.isinf(older_than):
            return 0
        cutoff = time.time_ns() - int(older_than * 1e9)
        removed = 0
        emptied: set[Location] = set()
        for parts, fd, entries in self._walk(prefix, descend):
            for entry in entries:
                name = entry.name
                if not (name.endswith(_TMP_SUFFIX) and name.startswith(".")):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime_ns > cutoff:
                        continue
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    continue  # renamed into place or removed meanwhile
                removed += 1
                if prefix + parts:
                    emptied.add(prefix + parts)
        for parts in sorted(emptied, key=len, reverse=True):
            self._prune(parts, os.path.join(self.base_dir, *parts))
        return removed

    # ------------------------------------------------------------ listing

    def walk(
        self, prefix: Location, descend: Callable[[str], bool] | None = None
    ) -> Iterator[tuple[Location, list[os.DirEntry[str]]]]:
        """Stream ``(folder parts, file entries)`` for every regular file under ``prefix``, in chunks.

        The folder parts are relative to ``prefix`` and the same tuple object
        for all chunks of one folder; a chunk holds at most ``_WALK_CHUNK``
        entries, so memory stays constant but for one open directory per
        level. Entries belong to a descriptor open until the next chunk is
        asked for (their ``stat(follow_symlinks=False)`` works until then).
        Folders that vanish meanwhile are skipped; links, and folders whose
        name ``descend`` refuses, are neither walked nor listed.
        """
        for parts, _, entries in self._walk(prefix, descend):
            yield parts, entries

    def _walk(
        self, prefix: Location, descend: Callable[[str], bool] | None
    ) -> Iterator[tuple[Location, int, list[os.DirEntry[str]]]]:
        """``walk`` with the descriptor of each chunk's folder (open while the chunk is out)."""
        try:
            top = self._folder(prefix, _O_FOLDER) if prefix else os.open(self.base_dir, _O_FOLDER)
        except OSError as e:
            if e.errno in _ABSENT_ERRNOS:
                return
            raise
        stack: list[tuple[Location, int, os._ScandirIterator[str] | None]] = [((), top, None)]
        try:
            stack[0] = ((), top, os.scandir(top))
            while stack:
                parts, fd, entries = stack[-1]
                assert entries is not None
                files: list[os.DirEntry[str]] = []
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            files.append(entry)
                            if len(files) >= _WALK_CHUNK:
                                yield parts, fd, files
                                files = []
                            continue
                        if not entry.is_dir(follow_symlinks=False):
                            continue  # a link, a FIFO...
                    except OSError:
                        continue
                    name = entry.name
                    if descend is not None and not descend(name):
                        continue
                    below = _open_below(name, fd)
                    if below < 0:
                        continue
                    if files:
                        yield parts, fd, files
                    stack.append(((*parts, name), below, None))
                    stack[-1] = ((*parts, name), below, os.scandir(below))
                    break
                else:
                    if files:
                        yield parts, fd, files
                    stack.pop()
                    entries.close()
                    os.close(fd)
        finally:
            for _, fd, entries in stack:
                if entries is not None:
                    entries.close()
                os.close(fd)

    def list(self, prefix: Location) -> Iterator[Location]:
        """Every file location under ``prefix``, relative to it, streamed."""
        for parts, entries in self.walk(prefix):
            for entry in entries:
                yield (*parts, entry.name)

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Every file location under ``prefix`` with its stat, streamed (vanished files skipped)."""
        for parts, fd, entries in self._walk(prefix, None):
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    stat = (
                        stat_of(st)
                        if st.st_mtime_ns % _COARSE_NS
                        else _stat_with(st, _etag_at(entry.name, fd, st))
                    )
                except FileNotFoundError:
                    continue
                yield (*parts, entry.name), stat


def _open_below(name: str, fd: int) -> int:
    """A listing descriptor of the folder ``name`` in ``fd`` (never through a link); -1 if it is gone."""
    try:
        return os.open(name, _O_FOLDER, dir_fd=fd)
    except OSError as e:
        if e.errno in _ABSENT_ERRNOS:
            return -1
        raise


def _lstat_at(name: str, dfd: int | None) -> os.stat_result | None:
    """``lstat`` of ``name`` relative to ``dfd`` (a path if None), or None when nothing can be there."""
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in _ABSENT_ERRNOS:
            return None
        raise


def _etag_at(name: str, dfd: int | None, st: os.stat_result) -> str:
    """The ETag of the regular file ``name`` (relative to ``dfd``) whose lstat is ``st``."""
    if st.st_mtime_ns % _COARSE_NS:
        return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
    try:
        fd = os.open(name, _O_READ, dir_fd=dfd)
    except OSError as e:
        if e.errno in _ABSENT_ERRNOS:
            return ""  # replaced meanwhile: matches no ETag
        raise
    try:
        return _etag_of_open(fd, os.fstat(fd), None)
    finally:
        os.close(fd)


def _is_folder(name: str, dfd: int | None) -> bool:
    found = _lstat_at(name, dfd)
    return found is not None and _S_ISDIR(found.st_mode)


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


def _nothing_to_unlink(e: OSError, name: str, dfd: int | None) -> bool:
    """Whether unlinking ``name`` (in ``dfd``) failed because no file is there (nothing, or a folder)."""
    if e.errno in _ABSENT_ERRNOS or isinstance(e, IsADirectoryError):
        return True
    return e.errno == errno.EPERM and _is_folder(name, dfd)  # unlink of a folder on BSD/macOS


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


def _unlink_quietly(path: str, *, dir_fd: int | None = None) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path, dir_fd=dir_fd)
