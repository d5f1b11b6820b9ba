"""Exclusive locks on folders, across threads and processes: ``flock`` on a descriptor of the folder.

``flock`` locks belong to an open file description, so every opener of a
folder — another process, another FileBackend of this one — excludes the
others. Opening a folder costs a path lookup and a close on every write, so
descriptors of up to ``_KEPT_LIMIT`` folders are kept open between locks in a
process-wide table. Threads sharing a kept descriptor take its threading lock
first (``flock`` does not exclude two holders of one description).

A kept descriptor may outlive its folder (deletes remove folders they leave
empty): after taking the lock, a folder with no links left is dropped, and the
folder opened again. A forked child empties the table: its inherited
descriptors share the parent's open file descriptions, and so its locks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading

import attrs

_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_LOCK_UNSUPPORTED = frozenset({errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
_KEPT_LIMIT = 64


@attrs.define(eq=False)
class FolderLock:
    """A descriptor of a folder, the threading lock guarding its ``flock``, and whether the table keeps it."""

    fd: int
    guard: threading.Lock
    kept: bool
    usable: bool = True


_kept: dict[str, FolderLock] = {}
_kept_guard = threading.Lock()


def hold(folder: str, *, keep: bool = True) -> FolderLock:
    """This process's descriptor of ``folder``, its threading lock held (no ``flock`` yet).

    The descriptor stays valid until ``let_go`` (or ``drop``): a writer may
    open files relative to it. It may belong to a folder removed since it
    was opened; ``acquire`` checks, and so does creating a file in it.
    Raises FileNotFoundError (or another OSError) when the folder cannot be
    opened. ``keep=False`` opens a descriptor for this holder only.
    """
    while True:
        lock = _kept.get(folder) if keep else None
        if lock is None:
            lock = _open(folder, keep)
        lock.guard.acquire()
        if lock.usable:
            return lock
        lock.guard.release()  # dropped while we waited for it


def lock_held(folder: str, held: FolderLock) -> None:
    """Take the ``flock`` of a held folder; on error the caller ``drop``s it."""
    try:
        fcntl.flock(held.fd, fcntl.LOCK_EX)
    except OSError as e:
        if e.errno in _LOCK_UNSUPPORTED:
            raise OSError(
                e.errno,
                f"Cannot lock folder {folder!r} ({e.strerror}); on filesystems without "
                "flock (some network or synced folders) open the dict with use_locks=False",
            ) from e
        raise


def acquire(folder: str, *, keep: bool = True) -> FolderLock:
    """Lock ``folder`` exclusively (``hold`` + ``flock``, reopened if removed meanwhile); ``release`` it.

    Raises FileNotFoundError (or another OSError) when the folder cannot be
    opened. ``keep=False`` opens a descriptor for this lock only (its
    ``release`` closes it).
    """
    while True:
        held = hold(folder, keep=keep)
        try:
            lock_held(folder, held)
            alive = os.fstat(held.fd).st_nlink > 0
        except BaseException:
            drop(folder, held)
            raise
        if alive:
            return held
        drop(folder, held)  # removed meanwhile: a new folder may stand at that path


def release(held: FolderLock, *, fsync: bool = False) -> None:
    """Unlock (then, with ``fsync``, fsync the folder) and ``let_go``."""
    try:
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        if fsync:
            os.fsync(held.fd)
    finally:
        let_go(held)


def let_go(held: FolderLock) -> None:
    """Let the next thread in (closing a descriptor that is not kept)."""
    if not held.kept:
        held.usable = False
        os.close(held.fd)
    held.guard.release()


def _open(folder: str, keep: bool) -> FolderLock:
    fd = os.open(folder, _O_DIR)
    lock = FolderLock(fd, threading.Lock(), False)
    if keep:
        with _kept_guard:
            other = _kept.get(folder)
            if other is None and len(_kept) < _KEPT_LIMIT:
                lock.kept = True
                _kept[folder] = lock
        if other is not None:  # another thread kept one first
            os.close(fd)
            return other
    return lock


def drop(folder: str, lock: FolderLock) -> None:
    """Forget and close a held ``lock`` (its folder was removed, or cannot lock), then let go."""
    lock.usable = False
    if lock.kept:
        with _kept_guard:
            if _kept.get(folder) is lock:
                del _kept[folder]
    try:
        os.close(lock.fd)
    finally:
        lock.guard.release()


def _forget_in_child() -> None:
    global _kept, _kept_guard
    inherited = list(_kept.values())
    _kept = {}
    _kept_guard = threading.Lock()
    for lock in inherited:
        lock.usable = False
        with contextlib.suppress(OSError):
            os.close(lock.fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
