"""Exclusive locks on folders, across threads and processes: ``flock`` on a descriptor of the folder.

``flock`` locks belong to an open file description, so every opener of a
folder — another process, another FileBackend of this one — excludes the
others.

``acquire`` opens the folder for one lock: the folder it locks is the one at
the path (checked to still have links once locked), whatever happened to
the path before.

``hold_locked`` serves writers that rename files inside the folder (and
``hold``, which takes no flock, writers without locks): it hands out a
descriptor kept open between writes (up to ``_KEPT_LIMIT`` folders per
process), so that a write costs neither an open nor a close, and renames
relative to it cost no path walk. A kept descriptor may be stale: its folder
may have been removed, or renamed away, since it was opened. The holder must
detect that from the operation itself — a temporary file made by path
stands in the folder at the path, so renaming it relative to a stale
descriptor fails with FileNotFoundError — and then ``drop`` it and call
``hold_locked`` again (which reopens the folder). Threads sharing a kept descriptor take its
threading lock first (``flock`` does not exclude two holders of one
description).

Fork safety. A forked child shares its parent's open file descriptions, and
with them their locks; so

- every lock is released explicitly (``LOCK_UN``) before its descriptor is
  closed: closing alone would leave the lock to any child that still has a
  copy, and an idle child would block the parent (or a child that waits for
  the folder would wait for itself, forever);
- a forked child closes its copy of every descriptor of this module, kept or
  held by any thread at the fork, without unlocking it (that would release
  the parent's lock), and starts with an empty table and fresh threading
  locks. A lock object it inherited (one the forking thread held) becomes
  inert there: ``release`` and ``drop`` only let the next thread in. So a
  child waits for a folder its parent holds like any other process, and
  never on what it inherited.

Every open descriptor is in ``_live``; opening and registering, and
unregistering and closing, happen under ``_fork_guard``, which a fork waits
for, so a child sees no descriptor of this module that ``_live`` misses.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable

import attrs

O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
"""Flags that open a folder for its descriptor."""
_LOCK_UNSUPPORTED = frozenset({errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
_KEPT_LIMIT = 64


@attrs.define(eq=False)
class FolderLock:
    """A descriptor of a folder, the threading lock guarding it, and whether the table keeps it."""

    fd: int
    """The descriptor; ``_CLOSED`` once closed, and in a forked child for an inherited one."""
    guard: threading.Lock
    kept: bool
    usable: bool = True
    flocked: bool = False
    """Whether its holder took the flock (``hold`` takes only the threading lock)."""


_CLOSED = -1
_kept: dict[str, FolderLock] = {}
_kept_guard = threading.Lock()
_live: set[FolderLock] = set()
"""Every FolderLock whose descriptor is open, kept or not: what a forked child closes."""
_fork_guard = threading.RLock()
"""Held while a descriptor is opened and registered, or unregistered and closed, and across a fork.

Reentrant: a fork from a signal handler that interrupted this thread inside it does not deadlock.
"""


def hold(folder: str) -> FolderLock:
    """A kept descriptor of ``folder`` (possibly stale, see the module) with its threading lock held but
    no flock: for writers without locks, which rename relative to it. Pass it to ``release`` or ``drop``.

    Raises FileNotFoundError (or another OSError) when the folder has to be opened and cannot be.
    """
    while True:
        held = _kept.get(folder) or _open(folder, keep=True)
        held.guard.acquire()
        if held.usable:
            return held
        held.guard.release()  # dropped while we waited for it


def hold_locked(folder: str) -> FolderLock:
    """``hold``, and its flock taken (a descriptor that cannot lock is dropped)."""
    held = hold(folder)
    try:
        fcntl.flock(held.fd, fcntl.LOCK_EX)
    except BaseException as e:
        drop(folder, held)
        if isinstance(e, OSError) and e.errno in _LOCK_UNSUPPORTED:
            raise _unsupported(folder, e) from e
        raise
    held.flocked = True
    return held


def _unsupported(folder: str, e: OSError) -> OSError:
    """The error for a filesystem without flock: what to do instead."""
    return OSError(
        e.errno,
        f"Cannot lock folder {folder!r} ({e.strerror}); on filesystems without "
        "flock (some network or synced folders) open the dict with use_locks=False",
    )


def acquire(folder: str, opener: Callable[[], int] | None = None) -> FolderLock:
    """Open ``folder`` and lock it exclusively (again if it was removed while we waited); ``release`` it.

    ``opener`` opens the folder instead of ``os.open(folder, O_DIR)`` (say,
    without following links); the lock's descriptor is then one to act in.
    Raises FileNotFoundError (or another OSError) when the folder cannot be opened.
    """
    while True:
        held = _open(folder, keep=False, opener=opener)
        held.guard.acquire()
        try:
            fcntl.flock(held.fd, fcntl.LOCK_EX)
            held.flocked = True
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
    """Unlock (then, with ``fsync``, fsync the folder), close a descriptor not kept, let the next thread in.

    The unlock is explicit, not left to the close: a forked child may share the descriptor.
    """
    fd = held.fd
    try:
        if fd != _CLOSED:  # else inherited in a forked child: the parent's lock, not ours to unlock
            if held.flocked:
                held.flocked = False
                fcntl.flock(fd, fcntl.LOCK_UN)
            if fsync:
                os.fsync(fd)
    finally:
        if not held.kept:
            _close(held)
        held.guard.release()


def drop(folder: str, held: FolderLock) -> None:
    """Forget, unlock and close a held descriptor (stale, or unable to lock); let the next thread in."""
    held.usable = False
    if held.kept:
        with _kept_guard:
            if _kept.get(folder) is held:
                del _kept[folder]
    try:
        if held.fd != _CLOSED and held.flocked:
            held.flocked = False
            with contextlib.suppress(OSError):
                fcntl.flock(held.fd, fcntl.LOCK_UN)
        _close(held)
    finally:
        held.guard.release()


def _open(folder: str, keep: bool, opener: Callable[[], int] | None = None) -> FolderLock:
    """A new FolderLock of ``folder`` (registered in ``_live``), or the one another thread kept first."""
    with _fork_guard:
        held = FolderLock(os.open(folder, O_DIR) if opener is None else opener(), threading.Lock(), False)
        _live.add(held)
    if keep:
        with _kept_guard:
            other = _kept.get(folder)
            if other is None and len(_kept) < _KEPT_LIMIT:
                held.kept = True
                _kept[folder] = held
        if other is not None:  # another thread kept one first
            _close(held)
            return other
    return held


def _close(held: FolderLock) -> None:
    """Unregister and close ``held``'s descriptor (unlocked already, or never locked); idempotent."""
    held.usable = False
    with _fork_guard:
        fd, held.fd = held.fd, _CLOSED
        _live.discard(held)
        if fd != _CLOSED:
            os.close(fd)


def _before_fork() -> None:
    _fork_guard.acquire()  # no thread is between an open and its registration


def _after_fork_in_parent() -> None:
    _fork_guard.release()


def _after_fork_in_child() -> None:
    """Close every inherited descriptor without unlocking it; start with an empty table and fresh locks.

    Also resets the module's state in this process when called outside a
    fork (tests), closing descriptors whose locks then go with them.
    """
    global _kept, _kept_guard, _live, _fork_guard
    inherited = _live
    _kept, _kept_guard, _live, _fork_guard = {}, threading.Lock(), set(), threading.RLock()
    for held in inherited:
        held.usable = False
        fd, held.fd = held.fd, _CLOSED
        if fd != _CLOSED:
            with contextlib.suppress(OSError):
                os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
