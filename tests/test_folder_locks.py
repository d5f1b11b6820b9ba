"""Folder locks: kept descriptors, threads of one process, forked children, stale folders."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
import os
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from persidict.backends import folder_locks

from .threads import run_in_threads


@pytest.fixture(autouse=True)
def _empty_table() -> Iterator[None]:
    folder_locks._after_fork_in_child()  # start and end with no kept descriptors
    yield
    folder_locks._after_fork_in_child()


def _held(folder: str) -> folder_locks.FolderLock:
    return folder_locks.hold_locked(folder)


def _acquired(folder: str) -> folder_locks.FolderLock:
    return folder_locks.acquire(folder)


@pytest.mark.parametrize("take", [_held, _acquired])
def test_threads_exclude_each_other(tmp_path: pathlib.Path, take: Callable[[str], Any]) -> None:
    folder = str(tmp_path)
    counter = [0]

    def work(_: int) -> None:
        for _ in range(200):
            lock = take(folder)
            try:
                seen = counter[0]
                time.sleep(0)  # invite a switch between read and write
                counter[0] = seen + 1
            finally:
                folder_locks.release(lock)

    run_in_threads(8, work)
    assert counter[0] == 1600
    # hold_locked() served every thread with one kept descriptor; acquire() keeps none.
    assert list(folder_locks._kept) == ([folder] if take is _held else [])
    assert folder_locks._live == set(folder_locks._kept.values())  # the others were closed and forgotten


def test_held_and_acquired_locks_of_one_folder_exclude_each_other(tmp_path: pathlib.Path) -> None:
    folder = str(tmp_path)
    held = _held(folder)
    got: list[float] = []

    def other() -> None:
        lock = folder_locks.acquire(folder)  # another open file description: flock decides
        got.append(time.monotonic())
        folder_locks.release(lock)

    t = threading.Thread(target=other)
    t.start()
    time.sleep(0.3)
    released = time.monotonic()
    folder_locks.release(held)
    t.join(10)
    assert got and got[0] >= released


def test_a_stale_kept_descriptor_is_dropped_and_the_folder_reopened(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    folder_locks.release(_held(str(folder)))
    old = folder_locks._kept[str(folder)]
    folder.rename(tmp_path / "g")  # renamed away: the kept descriptor follows it
    folder.mkdir()
    held = folder_locks.hold_locked(str(folder))
    assert held is old  # hold_locked() does not check: its users detect staleness
    folder_locks.drop(str(folder), held)
    assert str(folder) not in folder_locks._kept and not old.usable
    held = folder_locks.hold_locked(str(folder))
    try:
        assert os.fstat(held.fd).st_ino == os.stat(folder).st_ino  # the new folder
    finally:
        folder_locks.release(held)


def test_acquire_locks_the_folder_at_the_path(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "f"
    with pytest.raises(FileNotFoundError):
        folder_locks.acquire(str(folder))
    folder.mkdir()
    lock = folder_locks.acquire(str(folder))
    try:
        assert os.fstat(lock.fd).st_ino == os.stat(folder).st_ino
    finally:
        folder_locks.release(lock)
    assert not lock.usable  # closed by release


def _child_waits_for_the_lock(folder: str, got_at: Any) -> None:
    lock = _held(folder)
    got_at.value = time.monotonic()
    folder_locks.release(lock)


def test_a_forked_child_does_not_share_its_parents_lock(tmp_path: pathlib.Path) -> None:
    folder = str(tmp_path)
    ctx = multiprocessing.get_context("fork")
    got_at = ctx.Value("d", 0.0)
    lock = _held(folder)  # kept: the child inherits the descriptor
    child = ctx.Process(target=_child_waits_for_the_lock, args=(folder, got_at))
    child.start()
    time.sleep(0.5)
    released = time.monotonic()
    folder_locks.release(lock)
    child.join(10)
    assert child.exitcode == 0
    assert got_at.value >= released  # it waited for the parent


def _lockable_by_another_opener(folder: str) -> bool:
    fd = os.open(folder, os.O_RDONLY)  # a description of its own: flock excludes it from the others
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.mark.parametrize("take", [_held, _acquired])
@pytest.mark.parametrize("end", ["release", "release with fsync", "drop"])
def test_a_lock_is_unlocked_before_its_descriptor_is_closed(
    tmp_path: pathlib.Path, take: Callable[[str], Any], end: str
) -> None:
    """Closing alone would leave the lock held by any copy of the descriptor (a forked child's)."""
    folder = str(tmp_path)
    lock = take(folder)
    copy = os.dup(lock.fd)  # shares the open file description, as a forked child's copy does
    try:
        assert not _lockable_by_another_opener(folder)
        if end == "drop":
            folder_locks.drop(folder, lock)
        else:
            folder_locks.release(lock, fsync=end == "release with fsync")
        assert _lockable_by_another_opener(folder)
    finally:
        os.close(copy)


def test_at_most_the_limit_of_folders_is_kept(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_locks, "_KEPT_LIMIT", 3)
    folders = []
    for i in range(6):
        (tmp_path / str(i)).mkdir()
        folders.append(str(tmp_path / str(i)))
    fds_before = len(os.listdir("/proc/self/fd"))
    for f in folders:
        lock = _held(f)
        folder_locks.release(lock)
        assert lock.kept == (f in folders[:3])
    assert sorted(folder_locks._kept) == sorted(folders[:3])
    assert len(os.listdir("/proc/self/fd")) == fds_before + 3  # the others were closed


def test_a_filesystem_without_flock_is_told_to_use_no_locks(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("persidict.backends.folder_locks.fcntl.flock", no_flock)
    with pytest.raises(OSError, match="use_locks=False") as e:
        folder_locks.acquire(str(tmp_path))
    assert e.value.errno == errno.ENOLCK
    with pytest.raises(OSError, match="use_locks=False"):
        folder_locks.hold_locked(str(tmp_path))
    assert str(tmp_path) not in folder_locks._kept  # dropped, not kept half-working


def test_release_can_fsync_the_folder(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr("persidict.backends.folder_locks.os.fsync", fsync)
    lock = folder_locks.acquire(str(tmp_path))
    fd = lock.fd
    folder_locks.release(lock, fsync=True)
    assert synced == [fd] and not folder_locks._kept
    with pytest.raises(OSError):
        os.fstat(fd)  # closed


def _flock_free(folder: str) -> bool:
    """Whether another open file description of ``folder`` can take its flock now."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # (the flock, if taken, goes with its only descriptor)
    return True


def test_hold_shares_the_kept_descriptor_without_the_flock(tmp_path: pathlib.Path) -> None:
    # Writers without locks rename relative to the kept descriptor but must not lock the folder.
    folder = str(tmp_path)
    held = folder_locks.hold(folder)
    assert _flock_free(folder)
    folder_locks.release(held)
    locked = folder_locks.hold_locked(folder)
    assert locked is held  # one kept descriptor for both kinds of holder
    assert not _flock_free(folder)
    folder_locks.release(locked)
    assert _flock_free(folder)
    again = folder_locks.hold(folder)  # a later plain holder finds it unlocked, and leaves it so
    assert again is held and _flock_free(folder)
    folder_locks.release(again)
    assert _flock_free(folder)


def test_acquire_opens_the_folder_with_the_opener_given(tmp_path: pathlib.Path) -> None:
    # Deletes lock the folder through a descriptor opened without following links: the lock's.
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    opened: list[int] = []

    def no_follow() -> int:
        opened.append(os.open(str(tmp_path / "link"), folder_locks.O_DIR | os.O_NOFOLLOW))
        return opened[-1]  # never reached: the link is refused

    with pytest.raises(OSError) as e:
        folder_locks.acquire(str(tmp_path / "link"), no_follow)
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR) and opened == []
    lock = folder_locks.acquire(str(real), lambda: os.open(str(real), folder_locks.O_DIR | os.O_NOFOLLOW))
    assert not _flock_free(str(real))
    folder_locks.release(lock)
    assert _flock_free(str(real))
