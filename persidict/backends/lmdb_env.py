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

Errors and closing
------------------
* Every LMDB failure (a full disk, an I/O error, a map that cannot grow ...)
  surfaces as ``BackendError``; no ``lmdb.Error`` escapes. A map grown by
  another process while this one opens the environment is adopted and the
  open retried.
* Each ``LmdbBackend`` holds one use of its handle (``open_env``), given back
  by ``release()`` when its dict is closed. When the last use is given back
  (outside a write batch), the environment is closed and leaves the
  registry: the next LmdbDict on that database opens it anew. A closed
  backend swaps its handle for ``released_copy()``, whose every transaction
  raises ``closed_error``: a closed dict stays closed, across ``fork()`` too.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

try:
    import lmdb
except ImportError as _missing:  # tests/test_extras.py hides lmdb to check this message
    raise ImportError(
        f"LmdbDict needs lmdb ({_missing}): pip install 'persidict[lmdb]'", name=_missing.name
    ) from _missing

from ..errors import BackendError

_DATA_FILE = "data.mdb"
_FORK_DRAIN_SECONDS = 5.0
_OPEN_ATTEMPTS = 100  # opens that meet a map grown meanwhile by another process, before giving up
_ABANDONED: list[Any] = []  # environments inherited across fork: never touched again


FORMAT = b"3"
"""The format of databases this code creates (see lmdb.py); it reads and writes formats 1 and 2 too.

Format 3 has the records of format 2; every writer also registers the
serialisation format (the extension of its locations) of each LmdbDict it
opens for writing in ``m`` under ``FORMATS`` (see ``register_format``), so
a root LmdbDict whose format is the only one registered knows that every
record of ``v`` is one of its items, and ``len()`` is LMDB's entry count.
Format-2 code refuses to open a format-3 database, so no writer skips the
registration.
"""

FORMATS = b"formats"
"""The key, in ``m``, of the serialisation formats registered (extensions, sorted, one a line)."""


def _check_format(found: bytes | None, path: str) -> bytes:
    """The database's format; raise if it is newer than this code."""
    fmt = found or b"1"
    if fmt not in (b"1", b"2", FORMAT):
        raise BackendError(
            f"The LMDB database at {path!r} has record format {fmt.decode(errors='replace')!r}, "
            f"newer than this persidict reads ({FORMAT.decode()}): upgrade persidict",
            backend=f"lmdb:{path}", operation="open",
        )
    return fmt


def closed_error(path: str) -> ValueError:
    """The error of any operation on a closed LmdbDict (as for a closed file)."""
    return ValueError(f"I/O operation on a closed LmdbDict (lmdb:{path})")


def lmdb_error(e: lmdb.Error, path: str, operation: str, key: object = None) -> BackendError:
    """``e``, an error of the ``lmdb`` module, as a BackendError."""
    return BackendError(f"LMDB error: {e}", backend=f"lmdb:{path}", operation=operation, key=key)


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
        "cursor", "depth", "failed", "map_full", "on_abort", "queue", "queue_owner", "queue_writer", "seq",
        "txn", "txnid",
    )

    def __init__(self, txn: lmdb.Transaction[Any], db: Any) -> None:
        self.txn = txn
        """The transaction; use it through ``flushed()`` (only a queue writer may use it directly)."""
        self.txnid = txn.id()
        self.seq = 0
        self.depth = 1
        self.map_full = False
        self.failed: str | None = None
        """The LMDB error an operation of the batch met: the batch cannot commit."""
        self.cursor: lmdb.Cursor[Any] = txn.cursor(db=db)
        """A cursor on the records database, reused by this batch's writes."""
        self.queue: list[QueuedRecord] = []
        self.queue_owner: object = None
        """Who queued the records: the one whose ``queue_writer`` writes them."""
        self.queue_writer: Callable[[Batch, list[QueuedRecord]], object] | None = None
        self.on_abort: list[Callable[[], object]] = []
        """Run (in their own transactions) once the batch has ended without committing."""

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
        self.mdb: Any = None
        self.format = FORMAT
        """The database's format (b"1", b"2" or FORMAT), read at open."""
        self.formats: frozenset[str] = frozenset()
        """Serialisation formats known to be registered (``register_format``): a cache that only grows."""
        self.dbid = ""
        self.max_key_size = 511
        self.batch: Batch | None = None
        self.batch_owner: int | None = None
        self.purged: set[float] = set()
        self._fork_closed = False
        self.users = 0
        """How many LmdbBackends use this handle (see ``open_env`` and ``release``)."""
        self.released = False
        """Closed for good by ``release()``: it is never reopened."""
        self._open()

    def released_copy(self) -> EnvHandle:
        """A handle like this one whose every transaction raises ``closed_error`` (for a closed dict)."""
        stub = EnvHandle.__new__(EnvHandle)
        stub.__dict__.update(self.__dict__)
        stub._cond = threading.Condition(threading.Lock())
        stub._active = []
        stub._frozen = False
        stub._poisoned = None
        stub.env = None
        stub.vdb = stub.adb = stub.cdb = stub.mdb = None
        stub.batch = None
        stub.batch_owner = None
        stub.released = True
        return stub

    # ------------------------------------------------------------ opening

    def _open(self) -> None:
        """Open the environment and its named databases.

        A map grown by another process between the open and the first
        transaction (``MapResizedError``) is adopted, and the open retried.
        """
        for _ in range(_OPEN_ATTEMPTS):
            try:
                env = lmdb.open(
                    self.path,
                    map_size=self._map_size,
                    max_dbs=8,  # ours (v, a, c, m), and room to read others' (PersistDict's three)
                    readonly=self.readonly,
                    sync=self.durable,
                    metasync=self.durable,
                    create=not self.readonly,
                    subdir=True,
                )
            except lmdb.MapResizedError:
                continue  # (py-lmdb's open runs a first transaction): open again
            except lmdb.Error as e:
                raise self._open_error(e) from e
            try:
                dbid = self._prepare(env)
            except lmdb.MapResizedError:
                env.close()
                continue
            except lmdb.Error as e:
                env.close()
                raise self._open_error(e) from e
            except BaseException:
                env.close()
                raise
            self.dbid = dbid.decode()
            self.max_key_size = env.max_key_size()
            self._map_size = env.info()["map_size"]
            self.env = env
            return
        raise BackendError(
            f"Cannot open the LMDB database at {self.path!r}: another process kept growing its map "
            f"({_OPEN_ATTEMPTS} attempts)",
            backend=self.describe(), operation="open",
        )

    def _open_error(self, e: lmdb.Error) -> BackendError:
        return BackendError(
            f"Cannot open the LMDB database at {self.path!r}: {e}", backend=self.describe(), operation="open"
        )

    def _prepare(self, env: lmdb.Environment) -> bytes:
        """Open the named databases of a new ``env`` (creating them if writable); return the db id."""
        env.reader_check()
        if self.readonly:
            with env.begin() as txn:
                names = set(txn.cursor().iternext(values=False))
            if b"v" not in names:
                raise BackendError(
                    f"{self.path!r} holds no LmdbDict database (opened read-only)",
                    backend=self.describe(), operation="open",
                )
            self.vdb = env.open_db(b"v", create=False)
            self.adb = env.open_db(b"a", create=False) if b"a" in names else None
            self.cdb = env.open_db(b"c", create=False) if b"c" in names else None
            self.mdb = mdb = env.open_db(b"m", create=False)
            with env.begin() as txn:
                dbid = txn.get(b"dbid", db=mdb) or b"0"
                self.format = _check_format(txn.get(b"format", db=mdb), self.path)
            return bytes(dbid)
        self.vdb = env.open_db(b"v")
        self.adb = env.open_db(b"a")
        self.cdb = env.open_db(b"c")
        self.mdb = mdb = env.open_db(b"m")
        with env.begin() as rtxn:
            found = rtxn.get(b"dbid", db=mdb)
            fmt = _check_format(rtxn.get(b"format", db=mdb), self.path)
        if found is None:
            with env.begin(write=True) as txn:
                found = txn.get(b"dbid", db=mdb)
                fmt = _check_format(txn.get(b"format", db=mdb), self.path)
                if found is None:
                    found = os.urandom(4).hex().encode()
                    # Records there already (written by another program) were registered by nobody.
                    fmt = FORMAT if txn.stat(self.vdb)["entries"] == 0 else b"2"
                    txn.put(b"dbid", found, db=mdb)
                    txn.put(b"format", fmt, db=mdb)
        self.format = fmt
        return bytes(found)

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
                    if self.released:
                        raise closed_error(self.path)
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
                try:
                    self._resize(env, action, seen_size)
                except lmdb.Error as e:
                    raise lmdb_error(e, self.path, "grow" if action == "grow" else "open") from e
            finally:
                self._frozen = False
                self._cond.notify_all()

    def _resize(self, env: lmdb.Environment, action: str, seen_size: int) -> None:
        """``_exclusive``'s work: adopt the map size on file, or double the map."""
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
            except lmdb.Error as e:
                self.leave()
                raise lmdb_error(e, self.path, "transaction") from e
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
        committed = False
        try:
            if commit and not full and batch.failed is not None:
                raise BackendError(
                    f"LMDB error inside the transaction: {batch.failed}; nothing of it was committed",
                    backend=self.describe(), operation="transaction",
                )
            if commit and not full:
                batch.flushed().commit()
                committed = True
            else:
                batch.txn.abort()
        except BaseException as e:
            batch.txn.abort()
            full = isinstance(e, lmdb.MapFullError) or batch.map_full
            if not full:
                if isinstance(e, lmdb.Error):
                    raise BackendError(
                        f"LMDB error: {e}; nothing of the transaction was committed",
                        backend=self.describe(), operation="transaction",
                    ) from e
                raise
        finally:
            self.leave()
            if not committed:
                _redo(batch.on_abort)
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
        except lmdb.Error as e:
            raise lmdb_error(e, self.path, "transaction") from e
        finally:
            self.leave()
        used = (info["last_pgno"] + 1) * stat["psize"]
        if used * 2 > self._map_size and (
            self.max_map_size is None or self._map_size < self.max_map_size
        ):
            self.grow(self._map_size)

    # ------------------------------------------------------------ closing

    def release(self) -> None:
        """Give back a use from ``open_env``; the last one closes the environment for good.

        The environment stays open while a write batch is open: the next
        ``open_env`` of the database then reuses it.
        """
        _release(self)

    def _close_for_good(self) -> None:
        """Close the environment once no transaction is in flight; never reopen it."""
        with self._cond:
            while self._frozen:
                self._cond.wait()
            self._frozen = True
            try:
                while self._active:
                    self._cond.wait()
                self.released = True
                env, self.env = self.env, None
                if env is not None:
                    env.close()
            finally:
                self._frozen = False
                self._cond.notify_all()

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


def _redo(actions: list[Callable[[], object]]) -> None:
    """Run the ``on_abort`` actions of a batch that did not commit (best effort: it is failing already)."""
    for action in actions:
        try:
            action()
        except Exception:  # (the batch's own error is the one to raise)
            continue


_REGISTRY: dict[tuple[int, int], EnvHandle] = {}
_ALL: weakref.WeakSet[EnvHandle] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()


def open_env(
    path: str, *, map_size: int, max_map_size: int | None, durable: bool, readonly: bool
) -> EnvHandle:
    """The process's handle for the database at ``path`` (opened on first use), with one more use.

    Give the use back with ``EnvHandle.release()``. ``path`` must be a folder
    (or not exist yet): a file there, or above it, is a ValueError.
    """
    path = os.path.abspath(path)
    _make_folder(path, create=not readonly)
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
        else:
            _check_compatible(h, durable=durable, readonly=readonly)
            if max_map_size is not None and (h.max_map_size is None or max_map_size > h.max_map_size):
                h.max_map_size = max_map_size
        h.users += 1
        return h


def _make_folder(path: str, *, create: bool) -> None:
    """Check that ``path`` can be a database folder; make it (and its parents) if ``create``."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"base_dir {path!r} exists and is not a folder")
    if not create:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise ValueError(f"base_dir {path!r} lies under a file, not a folder ({e})") from e
    except OSError as e:
        raise BackendError(
            f"Cannot make the folder of the LMDB database: {e}", backend=f"lmdb:{path}", operation="open"
        ) from e


def _check_compatible(h: EnvHandle, *, durable: bool, readonly: bool) -> None:
    """Raise if ``h``, already open, cannot serve a dict opened with these settings."""
    if h.durable != durable:
        raise ValueError(
            f"The LMDB database {h.path!r} is already open in this process with durable={h.durable}; "
            "durability is a property of the open environment"
        )
    if h.readonly and not readonly:
        raise ValueError(f"The LMDB database {h.path!r} is already open read-only in this process")


def _release(h: EnvHandle) -> None:
    """``EnvHandle.release``'s work, under the registry lock."""
    with _REGISTRY_LOCK:
        h.users -= 1
        if h.users > 0 or h.released or h.batch is not None:
            return  # still in use (or inside a write batch: it stays open, for the next user)
        for ident, other in list(_REGISTRY.items()):
            if other is h:
                del _REGISTRY[ident]
        _ALL.discard(h)
        h._close_for_good()


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
