"""Fork safety of folder locks (issue 13, item 4).

A forked child shares its parent's open file descriptions, and with them
their ``flock`` locks. The contract: every lock is released explicitly
(``LOCK_UN``) before its descriptor is closed, and a child closes its copies
of the parent's descriptors without unlocking them, so that

- a child never waits on a lock it inherited (it waits for the parent's lock
  like any other process, and gets it once the parent releases it);
- an idle child never blocks the parent;
- a child never releases a lock its parent holds.

Children are real processes made with ``os.fork``; every wait has a deadline
(a hang kills the children and fails the test instead of hanging the suite).
The many-children scenario runs in a fresh interpreter, killed as a whole if
it hangs; there the parent's writer pauses inside the lock of each delete,
so that many forks land while it holds a lock.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from persidict.backends import folder_locks
from persidict.file_dir_dict import FileDirDict
from persidict.flags import ETAG_IS_THE_SAME, ItemNotAvailableFlag

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning"),
]

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCALE = os.environ.get("PERSIDICT_STRESS_SCALE", "full")
DEADLINE = 60.0
"""Seconds a child (or the parent's writer) may take before it counts as hung."""


@pytest.fixture(autouse=True)
def _empty_table() -> Iterator[None]:
    folder_locks._after_fork_in_child()  # no kept descriptors of earlier tests: room to keep ours
    yield


def _plus_one(v: int | ItemNotAvailableFlag) -> int:
    assert isinstance(v, int)
    return v + 1


def _store(base_dir: str | pathlib.Path) -> FileDirDict[int]:
    return FileDirDict(base_dir=base_dir, use_locks=True, durable=False)


# ------------------------------------------------------------ helpers for children


def _fork(body: Callable[[], object]) -> int:
    """Fork a child that runs ``body`` and exits (0 if it returned, 1 if it raised); return its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        body()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _reap(pids: list[int], deadline: float) -> tuple[list[int], list[int]]:
    """Wait for ``pids`` up to ``deadline`` seconds; kill the rest. Return (hung, failed) pids."""
    end = time.monotonic() + deadline
    pending, failed = set(pids), []
    while pending and time.monotonic() < end:
        for pid in list(pending):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                pending.discard(pid)
                if os.waitstatus_to_exitcode(status) != 0:
                    failed.append(pid)
        time.sleep(0.005)
    for pid in pending:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return sorted(pending), failed


def _lockable_by_another_process(folder: str) -> bool:
    """Whether a third process can take ``folder``'s lock right now (``LOCK_NB``)."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, folder], timeout=DEADLINE, check=False)
    assert r.returncode in (0, 3)
    return r.returncode == 0


def _held(folder: str) -> folder_locks.FolderLock:
    return folder_locks.hold_locked(folder)


def _acquired(folder: str) -> folder_locks.FolderLock:
    return folder_locks.acquire(folder)


class _HoldingThread(threading.Thread):
    """A thread that takes a folder's lock, holds it until told, then releases it."""

    def __init__(self, folder: str, take: Callable[[str], folder_locks.FolderLock]) -> None:
        super().__init__(daemon=True)
        self.folder, self.take = folder, take
        self.locked, self.go = threading.Event(), threading.Event()

    def run(self) -> None:
        """Lock, say so, wait for ``go``, release."""
        lock = self.take(self.folder)
        self.locked.set()
        self.go.wait(DEADLINE)
        folder_locks.release(lock)


# ------------------------------------------------------------ one child, one lock


@pytest.mark.parametrize("take", [_acquired, _held])
def test_a_child_forked_while_a_thread_holds_the_lock_can_write_there(
    tmp_path: pathlib.Path, take: Callable[[str], folder_locks.FolderLock]
) -> None:
    d = _store(tmp_path)
    holder = _HoldingThread(str(tmp_path), take)
    holder.start()
    assert holder.locked.wait(DEADLINE)

    def write() -> None:
        d["child"] = 1
        d.transform_item("child", _plus_one)

    child = _fork(write)
    holder.go.set()  # the child waits for the parent's lock, then takes its own
    holder.join(DEADLINE)
    hung, failed = _reap([child], DEADLINE)
    assert (hung, failed) == ([], [])
    assert d["child"] == 2


@pytest.mark.parametrize("take", [_acquired, _held])
def test_an_idle_child_does_not_block_the_parents_writes(
    tmp_path: pathlib.Path, take: Callable[[str], folder_locks.FolderLock]
) -> None:
    folder = str(tmp_path)
    d = _store(tmp_path)
    holder = _HoldingThread(folder, take)
    holder.start()
    assert holder.locked.wait(DEADLINE)
    child = _fork(lambda: time.sleep(DEADLINE))  # holds what it inherited, does nothing
    try:
        holder.go.set()
        holder.join(DEADLINE)
        assert _lockable_by_another_process(folder)  # the parent's release released it
        d["k"] = 1
        assert d.discard("k") and "k" not in d
    finally:
        _reap([child], 0)


@pytest.mark.parametrize(
    ("take", "fsync"), [(_held, False), (_acquired, False), (_acquired, True)], ids=["kept", "plain", "fsync"]
)
def test_a_child_never_unlocks_its_parents_lock(
    tmp_path: pathlib.Path, take: Callable[[str], folder_locks.FolderLock], fsync: bool
) -> None:
    """The forking thread holds a lock; in the child, the code that took it goes on and releases it."""
    folder = str(tmp_path)
    lock = take(folder)
    try:
        child = _fork(lambda: folder_locks.release(lock, fsync=fsync))
        assert _reap([child], DEADLINE) == ([], [])
        assert not _lockable_by_another_process(folder)  # the parent still holds it
    finally:
        folder_locks.release(lock)
    assert _lockable_by_another_process(folder)


def test_a_child_closes_every_inherited_folder_descriptor(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kept = _held(str(tmp_path / "a"))
    folder_locks.release(kept)  # kept open between writes
    plain = _acquired(str(tmp_path / "b"))  # held by this thread at the fork
    try:
        fds = [kept.fd, plain.fd]

        def check() -> None:
            for fd in fds:
                try:
                    os.fstat(fd)
                except OSError:
                    continue
                raise AssertionError(f"descriptor {fd} still open in the child")

        assert _reap([_fork(check)], DEADLINE) == ([], [])
    finally:
        folder_locks.release(plain)


# ------------------------------------------------------------ many children, a writing parent


class _ParentWriter(threading.Thread):
    """The parent's thread: plain writes, conditional writes, increments and deletes, until stopped."""

    def __init__(self, d: FileDirDict[int]) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.stop, self.started = threading.Event(), threading.Event()
        self.n = 0
        self.error: str | None = None

    def run(self) -> None:
        """Write until ``stop``; remember the number of rounds done and any error."""
        d = self.d
        try:
            while not self.stop.is_set():
                key = f"p{self.n}"
                d[key] = -1
                r = d.set_item_if(key, self.n, d.etag(key), ETAG_IS_THE_SAME)
                assert r.value_was_mutated
                d.transform_item("counter", _plus_one, n_retries=None)
                d["scratch"] = self.n
                for _ in range(4):  # a delete takes a lock of its own (not the kept one)
                    d.discard("scratch")
                self.n += 1
                self.started.set()
        except BaseException:
            self.error = traceback.format_exc()
            self.started.set()


def _child_writes(d: FileDirDict[int], me: int, n_writes: int) -> None:
    for j in range(n_writes):
        d[f"c{me}_{j}"] = j
        d.transform_item("counter", _plus_one, n_retries=None)
        d[f"t{me}"] = j
        d.discard(f"t{me}")


def _widen_the_lock_window_of_deletes(writer: threading.Thread) -> None:
    """Have ``writer`` pause just before each unlink, which a delete makes under the folder's lock.

    So many forks land while the writer holds a lock of a delete (the lock
    that used to be closed without an unlock). For this process only.
    """
    unlink = os.unlink

    def slow_unlink(path: Any, *, dir_fd: int | None = None) -> None:
        if threading.current_thread() is writer:
            time.sleep(0.0005)
        unlink(path, dir_fd=dir_fd)

    os.unlink = slow_unlink


def fork_scenario(base_dir: str, n_children: int, n_writes: int) -> dict[str, Any]:
    """Fork ``n_children`` writers of the store at ``base_dir`` while a thread of this process writes.

    Run in a process of its own (see ``_run_fork_scenario``). Returns the hung
    and failed children, and the writer's rounds, error and whether it hung.
    """
    d = _store(base_dir)
    d["counter"] = 0
    parent = _ParentWriter(d)
    _widen_the_lock_window_of_deletes(parent)
    parent.start()
    parent.started.wait(DEADLINE)
    go_r, go_w = os.pipe()  # the children write together, once all are forked (at EOF)

    def child(me: int) -> None:
        os.close(go_w)
        os.read(go_r, 1)
        _child_writes(d, me, n_writes)

    pids = []
    for me in range(n_children):
        pids.append(_fork(lambda me=me: child(me)))  # type: ignore[misc]
        time.sleep(0.001)  # let the writer run between forks
    os.close(go_w)
    hung, failed = _reap(pids, DEADLINE)
    os.close(go_r)
    parent.stop.set()
    parent.join(DEADLINE)
    return {
        "hung": hung,
        "failed": failed,
        "parent_rounds": parent.n,
        "parent_error": parent.error,
        "parent_hung": parent.is_alive(),
    }


def _run_fork_scenario(base_dir: pathlib.Path, n_children: int, n_writes: int) -> dict[str, Any]:
    """``fork_scenario`` in a fresh interpreter, killed with its children if it outlives the deadline."""
    code = (
        "import json, sys\n"
        "from tests.test_reliability_fork import fork_scenario\n"
        "print(json.dumps(fork_scenario(*json.loads(sys.argv[1]))))\n"
    )
    args = json.dumps([str(base_dir), n_children, n_writes])
    proc = subprocess.Popen(
        [sys.executable, "-c", code, args],
        cwd=ROOT,
        start_new_session=True,  # its own process group: one kill reaches the children too
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=3 * DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the fork scenario hung and was killed; its stderr:\n{err}")
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    assert result["hung"] == [], f"children hung (killed after {DEADLINE} s); stderr:\n{err}"
    assert result["failed"] == [], f"children failed; stderr:\n{err}"
    assert not result["parent_hung"], "the parent's writer hung"
    assert result["parent_error"] is None, result["parent_error"]
    return result


def _check_every_write_landed(base_dir: pathlib.Path, result: dict[str, Any], n: int, writes: int) -> None:
    d = _store(base_dir)
    rounds = result["parent_rounds"]
    assert rounds > 0
    assert all(d[f"c{me}_{j}"] == j for me in range(n) for j in range(writes))
    assert all(d[f"p{i}"] == i for i in range(rounds))
    assert d["counter"] == rounds + n * writes
    assert "scratch" not in d and not any(f"t{me}" in d for me in range(n))


def test_twenty_forked_children_write_while_a_parent_thread_writes(tmp_path: pathlib.Path) -> None:
    result = _run_fork_scenario(tmp_path, 20, 10)
    _check_every_write_landed(tmp_path, result, 20, 10)


@pytest.mark.slow
def test_many_rounds_of_forked_children_while_a_parent_thread_writes(tmp_path: pathlib.Path) -> None:
    rounds, n, writes = (3, 20, 20) if SCALE == "small" else (10, 40, 50)
    for r in range(rounds):
        base = tmp_path / str(r)
        result = _run_fork_scenario(base, n, writes)
        _check_every_write_landed(base, result, n, writes)
