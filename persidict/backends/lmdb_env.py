"""One LMDB environment per database file per process, safe across fork and map growth.

An ``EnvHandle`` owns the ``lmdb.Environment`` of one database directory and
its named databases (``v``: records, ``c``: creation times, ``a``: access
times, ``m``: database metadata). Handles live in a per-process registry
keyed by the real identity of the data file (``st_dev``, ``st_ino``), so two
paths to the same files (symlinks, relative paths) share one environment, as
LMDB requires.

Threading model
---------------
* Every LMDB transaction is bracketed by ``enter()`` / ``leave()``, which
  count the transactions in flight in this process. The count is guarded by
  a short Python lock that is never held while waiting for LMDB.
* Operations that need *no* transaction in flight in this process —
  growing the map (``MapFullError``), adopting a map grown by another process
  (``MapResizedError``) and closing the environment before ``fork()`` — set a
  ``frozen`` flag (new transactions wait), wait until the count drains, act,
  and unfreeze. The only Python lock involved is the gate's own lock, which
  nobody holds while beginning or waiting for an LMDB write transaction, so
  Python locks and LMDB's writer mutex are never taken in opposite orders:
  no deadlock.
* A write transaction of ``LmdbDict.transaction()`` belongs to one thread;
  other threads' writes wait for it (LMDB allows one writer), their reads do
  not (MVCC).
* ``fork()``: before forking, each environment with no write batch open is
  closed (after in-flight transactions drain) and reopened lazily on next use,
  in the parent and in the child. LMDB forbids using an environment across
  fork, and py-lmdb refuses to open the same files twice in one process; a
  child that closes an inherited environment would also free the parent's
  reader slots. If a batch is open at fork time, the parent keeps its
  environment and the child cannot use that database (a clear error).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import lmdb

from ..errors import BackendError

_DATA_FILE = "data.mdb"
_FORK_DRAIN_SECONDS = 5.0
_ABANDONED: list[Any] = []  # environments inherited across fork: never touched again


FORMAT = b"2"
"""The record format of databases this code creates (see lmdb.py); it reads and writes format 1 too."""


def _check_format(found: bytes | None, path: str) -> None:
    """Raise if the database's format is newer than this code."""
    fmt = found or b"1"
    if fmt not in (b"1", FORMAT):
        raise BackendError(
            f"The LMDB database at {path!r} has record format {fmt.decode(errors='replace')!r}, "
            f"newer than this persidict reads ({FORMAT.decode()}): upgrade persidict",
            backend=f"lmdb:{path}", operation="open",
        )


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(os.path.join(path, _DATA_FILE))
    except OSError:
        return None
    return st.st_dev, st.st_ino


QueuedRecord = tuple[tuple[bytes, bytes], bytes, float]
"""((LMDB key, kept location), value bytes, mtime): a write waiting in a batch's queue."""

QUEUE_LENGTH = 1000
"""A batch's queue is written once it holds this many records ..."""
QUEUE_VALUE_MAX = 64 * 1024
"""... or a value longer than this many bytes: the memory it holds stays bounded."""


class Batch:
    """The write transaction of a ``transaction()`` block, with its write counter and queue.

    Unconditional writes inside the block are queued (``enqueue``), each with
    the time it was made, and written together by the queue's owner (one
    loop), as ``update()`` writes. ``flushed()`` writes the queue and returns the
    transaction, so every other use of the transaction — reads, other writes,
    the commit — sees the queued writes.

    ``LmdbDict.__setitem__`` appends to ``queue`` itself, without the call,
    when its backend already owns the queue and the value is at most
    ``QUEUE_VALUE_MAX`` bytes, then writes the queue at ``QUEUE_LENGTH``
    records: what ``enqueue`` would do.
    """

    __slots__ = (
        "cursor", "depth", "map_full", "queue", "queue_owner", "queue_writer", "seq", "txn", "txnid"
    )

    def __init__(self, txn: lmdb.Transaction[Any], db: Any) -> None:
        self.txn = txn
        """The transaction; use it through ``flushed()`` (only a queue writer may use it directly)."""
        self.txnid = txn.id()
        self.seq = 0
        self.depth = 1
        self.map_full = False
        self.cursor: lmdb.Cursor[Any] = txn.cursor(db=db)
        """A cursor on the records database, reused by this batch's writes."""
        self.queue: list[QueuedRecord] = []
        self.queue_owner: object = None
        """Who queued the records: the one whose ``queue_writer`` writes them."""
        self.queue_writer: Callable[[Batch, list[QueuedRecord]], object] | None = None

    def next_seq(self) -> int:
        """A number unique among this transaction's writes."""
        self.seq += 1
        return self.seq

    def flushed(self) -> lmdb.Transaction[Any]:
        """The transaction, once the queued writes are in it."""
        queue = self.queue
        if queue:
            self.queue = []
            assert self.queue_writer is not None
            self.queue_writer(self, queue)
        return self.txn

    def enqueue(
        self, owner: object, writer: Callable[[Batch, list[QueuedRecord]], object], record: QueuedRecord
    ) -> None:
        """Queue a record of ``owner``, whose ``writer`` writes the queue (another owner's first)."""
        if self.queue_owner is not owner:
            self.flushed()
            self.queue_owner = owner
            self.queue_writer = writer
        queue = self.queue
        queue.append(record)
        if len(queue) >= QUEUE_LENGTH or len(record[1]) > QUEUE_VALUE_MAX:
            self.flushed()


class EnvHandle:
    """The environment of one database directory in this process (see the module docstring)."""

    def __init__(
        self, path: str, *, map_size: int, max_map_size: int | None, durable: bool, readonly: bool
    ) -> None:
        self.path = path
        self.durable = durable
        self.readonly = readonly
        self.max_map_size = max_map_size
        self._map_size = map_size
        self._cond = threading.Condition(threading.Lock())
        self._active: list[None] = []  # one entry per transaction in flight (append/pop: GIL-atomic)
        self._frozen = False
        self._poisoned: str | None = None
        self.env: lmdb.Environment | None = None
        self.vdb: Any = None
        self.adb: Any = None
        self.cdb: Any = None
        self.dbid = ""
        self.max_key_size = 511
        self.batch: Batch | None = None
        self.batch_owner: int | None = None
        self.purged: set[float] = set()
        self._fork_closed = False
        self._open()

    # ------------------------------------------------------------ opening

    def _open(self) -> None:
        try:
            env = lmdb.open(
                self.path,
                map_size=self._map_size,
                max_dbs=4,
                readonly=self.readonly,
                sync=self.durable,
                metasync=self.durable,
                create=not self.readonly,
                subdir=True,
            )
        except lmdb.Error as e:
            raise BackendError(
                f"Cannot open the LMDB database at {self.path!r}: {e}", backend=f"lmdb:{self.path}",
                operation="open",
            ) from e
        try:
            env.reader_check()
            if self.readonly:
                with env.begin() as txn:
                    names = set(txn.cursor().iternext(values=False))
                if b"v" not in names:
                    raise BackendError(
                        f"{self.path!r} holds no LmdbDict database (opened read-only)",
                        backend=f"lmdb:{self.path}", operation="open",
                    )
                self.vdb = env.open_db(b"v", create=False)
                self.adb = env.open_db(b"a", create=False) if b"a" in names else None
                self.cdb = env.open_db(b"c", create=False) if b"c" in names else None
                mdb = env.open_db(b"m", create=False)
                with env.begin() as txn:
                    dbid = txn.get(b"dbid", db=mdb) or b"0"
                    _check_format(txn.get(b"format", db=mdb), self.path)
            else:
                self.vdb = env.open_db(b"v")
                self.adb = env.open_db(b"a")
                self.cdb = env.open_db(b"c")
                mdb = env.open_db(b"m")
                with env.begin() as rtxn:
                    found = rtxn.get(b"dbid", db=mdb)
                    _check_format(rtxn.get(b"format", db=mdb), self.path)
                if found is None:
                    with env.begin(write=True) as txn:
                        found = txn.get(b"dbid", db=mdb)
                        if found is None:
                            found = os.urandom(4).hex().encode()
                            txn.put(b"dbid", found, db=mdb)
                            txn.put(b"format", FORMAT, db=mdb)
                dbid = found
        except BaseException:
            env.close()
            raise
        self.dbid = dbid.decode()
        self.max_key_size = env.max_key_size()
        self._map_size = env.info()["map_size"]
        self.env = env

    def describe(self) -> str:
        """``lmdb:<path>``."""
        return f"lmdb:{self.path}"

    # ------------------------------------------------------------ gate

    def enter(self) -> lmdb.Environment:
        """Count a transaction in flight; return the (re)opened environment.

        Lock-free on the fast path: the entry is counted *before* ``frozen``
        is checked, and a freezer sets ``frozen`` *before* it waits for the
        count to drain, so either the freezer waits for us or we back off.
        """
        active = self._active
        active.append(None)
        env = self.env
        if not self._frozen and env is not None:
            return env
        active.pop()
        self._notify_if_frozen()
        with self._cond:
            while True:
                while self._frozen:
                    self._cond.wait()
                if self.env is None:
                    if self._poisoned is not None:
                        raise BackendError(self._poisoned, backend=self.describe(), operation="open")
                    self._open()
                self._active.append(None)
                if not self._frozen:  # (a freezer cannot run while we hold the lock)
                    env = self.env
                    assert env is not None
                    return env
                self._active.pop()

    def leave(self) -> None:
        """The transaction counted by ``enter()`` has ended."""
        self._active.pop()
        if self._frozen:
            self._notify_if_frozen()

    def _notify_if_frozen(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _exclusive(self, action: str, seen_size: int = 0) -> None:
        """Run ``grow`` or ``adopt`` with no transaction in flight in this process."""
        with self._cond:
            while self._frozen:
                self._cond.wait()
            self._frozen = True
            try:
                while self._active:
                    self._cond.wait()
                env = self.env
                if env is None:
                    return  # closed for fork meanwhile: reopening adopts the size
                env.reader_check()
                if action == "adopt":
                    env.set_mapsize(0)
                else:
                    current = env.info()["map_size"]
                    if current > seen_size:
                        self._map_size = current  # another thread grew it meanwhile
                        return
                    new = current * 2
                    if self.max_map_size is not None:
                        new = min(new, self.max_map_size)
                    if new <= current:
                        raise BackendError(
                            f"The LMDB map is full at {current} bytes (max_map_size={self.max_map_size})",
                            backend=self.describe(), operation="write",
                        )
                    env.set_mapsize(new)
                self._map_size = env.info()["map_size"]
            finally:
                self._frozen = False
                self._cond.notify_all()

    def grow(self, seen_size: int) -> None:
        """Double the map (up to ``max_map_size``) unless it grew past ``seen_size`` already."""
        if self._map_size > seen_size:
            return
        self._exclusive("grow", seen_size)

    def adopt(self) -> None:
        """Adopt a map size grown by another process."""
        self._exclusive("adopt")

    @property
    def map_size(self) -> int:
        """The current map size in bytes."""
        return self._map_size

    # ------------------------------------------------------------ batches

    def begin_batch(self) -> Batch:
        """Open (or join) this thread's write batch."""
        me = threading.get_ident()
        if self.batch_owner == me:
            assert self.batch is not None
            self.batch.depth += 1
            return self.batch
        if self.readonly:
            raise BackendError("read-only database", backend=self.describe(), operation="transaction")
        self._make_room()
        while True:
            env = self.enter()
            try:
                txn = env.begin(write=True, buffers=True)
            except lmdb.MapResizedError:
                self.leave()
                self.adopt()
                continue
            except BaseException:
                self.leave()
                raise
            batch = Batch(txn, self.vdb)
            self.batch = batch
            self.batch_owner = me
            return batch

    def end_batch(self, commit: bool) -> None:
        """Leave this thread's batch; the outermost exit commits (or aborts)."""
        batch = self.batch
        assert batch is not None and self.batch_owner == threading.get_ident()
        batch.depth -= 1
        if batch.depth > 0:
            return
        self.batch = None
        self.batch_owner = None
        size = self._map_size
        full = batch.map_full
        try:
            if commit and not full:
                batch.flushed().commit()
            else:
                batch.txn.abort()
        except BaseException as e:
            batch.txn.abort()
            full = isinstance(e, lmdb.MapFullError) or batch.map_full
            if not full:
                raise
        finally:
            self.leave()
        if full:
            self.grow(size)
            if commit:  # (also when the error was swallowed inside the block: it did not commit)
                raise BackendError(
                    f"The LMDB map filled up during a transaction; it has grown to {self._map_size} "
                    "bytes and nothing was committed: run the transaction again",
                    backend=self.describe(), operation="transaction",
                )

    def _make_room(self) -> None:
        """Before a batch, grow the map if it is more than half used (a batch cannot grow it)."""
        env = self.enter()
        try:
            info = env.info()
            stat = env.stat()
        finally:
            self.leave()
        used = (info["last_pgno"] + 1) * stat["psize"]
        if used * 2 > self._map_size and (
            self.max_map_size is None or self._map_size < self.max_map_size
        ):
            self.grow(self._map_size)

    # ------------------------------------------------------------ fork

    def _before_fork(self) -> None:
        """Close the environment once no transaction is in flight (bounded wait)."""
        self._cond.acquire()
        while self._frozen:
            self._cond.wait()
        self._frozen = True
        self._fork_closed = False
        if self.env is None or self.batch_owner == threading.get_ident():
            return  # nothing to close, or this very thread is inside a batch
        deadline = time.monotonic() + _FORK_DRAIN_SECONDS
        while self._active:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)
        try:
            self.env.close()
        except Exception:  # pragma: no cover - keep the fork hooks balanced whatever happens
            return
        self.env = None
        self._fork_closed = True

    def _after_fork_parent(self) -> None:
        self._frozen = False
        self._cond.notify_all()
        self._cond.release()

    def _after_fork_child(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._frozen = False
        self._active = []
        self.batch = None
        self.batch_owner = None
        if self.env is not None:
            _ABANDONED.append(self.env)
            self.env = None
            self._poisoned = (
                f"The LMDB database {self.path!r} was in use by a transaction when this process "
                "was forked, so it cannot be reopened in the child process"
            )


_REGISTRY: dict[tuple[int, int], EnvHandle] = {}
_ALL: weakref.WeakSet[EnvHandle] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()


def open_env(
    path: str, *, map_size: int, max_map_size: int | None, durable: bool, readonly: bool
) -> EnvHandle:
    """The process's handle for the database at ``path`` (opened on first use)."""
    path = os.path.abspath(path)
    if not readonly:
        os.makedirs(path, exist_ok=True)
    with _REGISTRY_LOCK:
        ident = _file_id(path)
        h = _REGISTRY.get(ident) if ident is not None else None
        if h is None:
            h = EnvHandle(
                path, map_size=map_size, max_map_size=max_map_size, durable=durable, readonly=readonly
            )
            ident = _file_id(path)
            assert ident is not None
            _REGISTRY[ident] = h
            _ALL.add(h)
            return h
        if h.durable != durable:
            raise ValueError(
                f"The LMDB database {path!r} is already open in this process with durable={h.durable}; "
                "durability is a property of the open environment"
            )
        if h.readonly and not readonly:
            raise ValueError(
                f"The LMDB database {path!r} is already open read-only in this process"
            )
        if max_map_size is not None and (h.max_map_size is None or max_map_size > h.max_map_size):
            h.max_map_size = max_map_size
        return h


_FORKING: list[EnvHandle] = []  # the handles locked by _before_fork, in order


def _before_fork() -> None:
    _REGISTRY_LOCK.acquire()
    _FORKING[:] = list(_ALL)
    for h in _FORKING:
        h._before_fork()


def _after_fork_parent() -> None:
    for h in _FORKING:
        h._after_fork_parent()
    _FORKING.clear()
    _REGISTRY_LOCK.release()


def _after_fork_child() -> None:
    global _REGISTRY_LOCK
    for h in _FORKING:
        h._after_fork_child()
    _FORKING.clear()
    _REGISTRY_LOCK = threading.Lock()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
)
