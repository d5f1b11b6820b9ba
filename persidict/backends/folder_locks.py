"""Exclusive locks on folders, across threads and processes: ``flock`` on a descriptor of the folder.

``flock`` locks belong to an open file description, so every opener of a
folder — another process, another FileBackend of this one — excludes the
others.

``acquire`` opens the folder for one lock: the folder it locks is the one at
the path (checked to still have links once locked), whatever happened to
the path before.

``hold_locked`` serves writers that rename files inside the folder: it hands out a
descriptor kept open between writes (up to ``_KEPT_LIMIT`` folders per
process), so that a write costs neither an open nor a close, and renames
relative to it cost no path walk. A kept descriptor may be stale: its folder
may have been removed, or renamed away, since it was opened. The holder must
detect that from the operation itself — a temporary file made by path
stands in the folder at the path, so renaming it relative to a stale
descriptor fails with FileNotFoundError — and then ``drop`` it and call
``hold_locked`` again (which reopens the folder). Threads sharing a kept descriptor take its
threading lock first (``flock`` does not exclude two holders of one
description). A forked child empties the table: its inherited descriptors
share the parent's open file descriptions, and so its locks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading

import attrs

O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
"""Flags that open a folder for its descriptor."""
_LOCK_UNSUPPORTED = frozenset({errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
_KEPT_LIMIT = 64


@attrs.define(eq=False)
class FolderLock:
    """A descriptor of a folder, the threading lock guarding it, and whether the table keeps it."""

    fd: int
    guard: threading.Lock
    kept: bool
    usable: bool = True


_kept: dict[str, FolderLock] = {}
_kept_guard = threading.Lock()


def hold_locked(folder: str) -> FolderLock:
    """A kept descriptor of ``folder`` (possibly stale, see the module), its threading lock and flock held.

    Pass it to ``release``, or, if it turned out stale, to ``drop``. Raises
    FileNotFoundError (or another OSError) when the folder has to be opened
    and cannot be; a descriptor that cannot lock is dropped.
    """
    while True:
        held = _kept.get(folder) or _open(folder, keep=True)
        held.guard.acquire()
        if held.usable:
            break
        held.guard.release()  # dropped while we waited for it
    try:
        fcntl.flock(held.fd, fcntl.LOCK_EX)
    except BaseException as e:
        drop(folder, held)
        if isinstance(e, OSError) and e.errno in _LOCK_UNSUPPORTED:
            raise _unsupported(folder, e) from e
        raise
    return held


def _unsupported(folder: str, e: OSError) -> OSError:
    """The error for a filesystem without flock: what to do instead."""
    return OSError(
        e.errno,
        f"Cannot lock folder {folder!r} ({e.strerror}); on filesystems without "
        "flock (some network or synced folders) open the dict with use_locks=False",
    )


def acquire(folder: str) -> FolderLock:
    """Open ``folder`` and lock it exclusively (again if it was removed while we waited); ``release`` it.

    Raises FileNotFoundError (or another OSError) when the folder cannot be opened.
    """
    while True:
        held = _open(folder, keep=False)
        held.guard.acquire()
        try:
            fcntl.flock(held.fd, fcntl.LOCK_EX)
            alive = os.fstat(held.fd).st_nlink > 0
        except BaseException as e:
            drop(folder, held)
            if isinstance(e, OSError) and e.errno in _LOCK_UNSUPPORTED:
                raise _unsupported(folder, e) from e
            raise
        if alive:
            return held
        drop(folder, held)  # removed meanwhile: a new folder may stand at that path


def release(held: FolderLock, *, fsync: bool = False) -> None:
    """Unlock (then, with ``fsync``, fsync the folder) and let the next thread in."""
    try:
        if held.kept or fsync:  # closing a descriptor of our own unlocks it anyway
            fcntl.flock(held.fd, fcntl.LOCK_UN)
        if fsync:
            os.fsync(held.fd)
    finally:
        if not held.kept:
            held.usable = False
            os.close(held.fd)
        held.guard.release()


def drop(folder: str, held: FolderLock) -> None:
    """Forget and close a held descriptor (stale, or its folder cannot lock), then let the next thread in."""
    held.usable = False
    if held.kept:
        with _kept_guard:
            if _kept.get(folder) is held:
                del _kept[folder]
    try:
        os.close(held.fd)
    finally:
        held.guard.release()


def _open(folder: str, keep: bool) -> FolderLock:
    fd = os.open(folder, O_DIR)
    held = FolderLock(fd, threading.Lock(), False)
    if keep:
        with _kept_guard:
            other = _kept.get(folder)
            if other is None and len(_kept) < _KEPT_LIMIT:
                held.kept = True
                _kept[folder] = held
        if other is not None:  # another thread kept one first
            os.close(fd)
            return other
    return held


def _forget_in_child() -> None:
    global _kept, _kept_guard
    inherited = list(_kept.values())
    _kept = {}
    _kept_guard = threading.Lock()
    for held in inherited:
        held.usable = False
        with contextlib.suppress(OSError):
            os.close(held.fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
