"""LmdbDict's store: records in one LMDB environment, each operation one transaction.

Layout of the environment (see ``lmdb_env`` for how it is opened, shared,
grown and carried across ``fork()``, and for the threading model):

* ``v``: location -> record. A location ``("a", "b.pkl")`` is the LMDB key
  ``b"a/b.pkl"``; a key longer than the environment's limit (511 bytes) is
  stored under ``b"#" + sha256`` with the location kept in the record, so
  listing still returns it. A record is a 32-byte header — the version
  (transaction id, write number within it), a ctime slot, mtime, length of
  the kept location — then the kept location, then the value bytes.
* ``c``: location -> creation time, written only when a record is created
  (or an expired one is written anew), so overwriting a record is a single
  ``replace`` that needs no read first; this code leaves the header's ctime
  slot at 0. Format 1 (an older persidict) kept the ctime in the slot and
  wrote no ``c``: a record whose slot is not 0 is such a record, its slot
  holds its ctime, and the first overwrite by this code moves it to ``c``.
  So databases, and processes, of both formats mix: nothing is migrated.
* ``a``: location -> last read time (``track_atime``), written in batches.
* ``m``: the database id (random, made at creation), the format version and
  (format 3) the serialisation formats registered by the dicts that write
  (see ``lmdb_env.FORMAT``): with one format only, a root dict's ``len()``
  is the entry count of ``v``.

ETags are ``"<database id>.<transaction id>.<write number>"``: LMDB gives
every write transaction a new id, so ETags are unique across threads and
processes. A precondition is checked inside the write transaction that
writes, so conditional operations are atomic.

Expiry (``ttl``): a record whose mtime is more than ``ttl`` seconds old is
absent for every read, membership test, listing and precondition; ``purge``
deletes such records.

Errors: every failure of LMDB surfaces as ``BackendError``. A record shorter
than its header (only another program can write one) is present — ``exists``
is True, a write replaces it, a delete removes it — but reading it, its stat,
its metadata or a precondition on it raises ``CorruptValueError`` naming the
key. Listings that read records (``list_stats``, any listing under a ``ttl``,
``purge``) skip it; the keys-only listing (``list_raw`` with no ``ttl``)
reads no record, so it lists its key.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import hashlib
import itertools
import struct
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any, TypeVar

import attrs

try:
    import lmdb
except ImportError as _missing:  # tests/test_extras.py hides lmdb to check this message
    raise ImportError(
        f"LmdbDict needs lmdb ({_missing}): pip install 'persidict[lmdb]'", name=_missing.name
    ) from _missing

from ..errors import BackendError, CorruptValueError
from .base import (
    Capabilities,
    IfAbsent,
    Location,
    NotModified,
    Precondition,
    PreconditionFailed,
    ReadAnswer,
    Stat,
)
from .lmdb_env import FORMAT, FORMATS, Batch, EnvHandle, QueuedRecord, closed_error, lmdb_error, open_env

__all__ = [
    "HEADER_SIZE", "KEPT_AT", "KEPT_LENGTH", "MTIME", "MTIME_AT", "VERSION",
    "LmdbBackend", "LmdbMetadata", "open_env",
]

_T = TypeVar("_T")
_HDR = struct.Struct("<QIddI")  # txnid, write number, ctime slot, mtime, kept-location length
_HDR_SIZE = _HDR.size
_VERSION_SIZE = 12  # txnid + write number: the bytes an ETag is made of
_TIME = struct.Struct("<d")  # a ctime in ``c``, an atime in ``a``
_CTIME_AT = 12
_MTIME_AT = 20
_NO_CTIME = bytes(8)  # the header's ctime slot as this code writes it
_CTIME_HIGH_BYTE = _MTIME_AT - 1  # its sign and exponent: 0 for a slot of 0.0 (and tiny ctimes only)
HEADER_SIZE = _HDR_SIZE
"""Bytes of a record's header; the kept location (if any) and the value follow."""
VERSION = struct.Struct("<QI")
"""A record's version at offset 0: (transaction id, write number), what an ETag is made of."""
MTIME = struct.Struct("<d")
"""A record's mtime, at offset ``MTIME_AT``."""
MTIME_AT = 20
KEPT_LENGTH = struct.Struct("<I")
"""The length of a record's kept location, at offset ``KEPT_AT``."""
KEPT_AT = 28
_LIST_BATCH = 1000
_DELETE_BATCH = 1000
_KEY_CACHE_LIMIT = 100_000
_get_ident = threading.get_ident


@attrs.frozen
class LmdbMetadata:
    """Everything LmdbDict keeps about one item."""

    etag: str
    ctime: float
    """POSIX time of the first write (since the key was last absent)."""
    mtime: float
    """POSIX time of the last write (what ``timestamp()`` returns)."""
    atime: float | None
    """POSIX time of the last read, if reads were tracked (``track_atime``)."""
    size: int
    """Length of the stored value bytes."""


class LmdbBackend:
    """A Backend over an LMDB environment; see the module docstring."""

    capabilities = Capabilities(atomic_preconditions=True, unique_etags=True, persistent=True)

    def __init__(
        self,
        handle: EnvHandle,
        *,
        clock: Callable[[], float],
        ttl: float | None,
        readonly: bool,
        track_atime: bool,
        atime_flush_interval: float,
        atime_flush_reads: int,
    ) -> None:
        self._h = handle
        self.key_of: Callable[[Location], object] | None = None
        """The key stored at a location (None if none), for error messages; unset: name the location."""
        self._closed = False
        self._clock = clock
        self._ttl = ttl
        self._readonly = readonly or handle.readonly
        self._track_atime = track_atime and not self._readonly
        self._flush_interval = atime_flush_interval
        self._flush_reads = atime_flush_reads
        self._keys: dict[Location, tuple[bytes, bytes]] = {}
        self._atimes: dict[bytes, float] = {}
        self._n_reads = 0
        self._last_flush = clock()
        self._flush_lock = threading.Lock()
        self._etag_prefix = handle.dbid + "."
        if self._track_atime:
            _TRACKING.add(self)

    # ------------------------------------------------------------ basics

    @property
    def handle(self) -> EnvHandle:
        """The process-wide environment handle."""
        return self._h

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def close(self) -> None:
        """Write the recorded read times, then refuse every operation (``closed_error``); idempotent.

        Its writes queued in this thread's transaction are written into it
        first (they commit with it). The environment closes when the last
        backend on it closes (see ``EnvHandle.release``).
        """
        if self._closed:
            return
        h = self._h
        try:
            self._flush_own_queue()
            self.flush_atimes()
        finally:
            self._closed = True
            _TRACKING.discard(self)
            self._atimes = {}
            self._h = h.released_copy()
            h.release()

    def _flush_own_queue(self) -> None:
        """Write this backend's records queued in this thread's batch, and give up the queue."""
        h = self._h
        batch = h.batch
        if batch is not None and h.batch_owner == _get_ident() and batch.queue_owner is self:
            batch.flushed()
            batch.queue_owner = None
            batch.queue_writer = None

    @property
    def ttl(self) -> float | None:
        """Seconds after its last write when an item expires (None: never)."""
        return self._ttl

    def describe(self) -> str:
        """``lmdb:<path>``."""
        return self._h.describe()

    def where(self, loc: Location) -> str:
        """``lmdb:<path>/<location>``."""
        return f"{self.describe()}/{'/'.join(loc)}"

    def __repr__(self) -> str:
        return f"LmdbBackend({self._h.path!r})"

    def lmdb_key(self, loc: Location) -> tuple[bytes, bytes]:
        """LMDB key of ``loc`` and the location bytes kept in its record (hashed keys only)."""
        return self._key(loc)

    def _key(self, loc: Location) -> tuple[bytes, bytes]:
        """LMDB key of ``loc`` and the location bytes kept in the record (hashed keys only)."""
        k = self._keys.get(loc)
        if k is None:
            raw = "/".join(loc).encode()
            if len(raw) > self._h.max_key_size:
                k = (b"#" + hashlib.sha256(raw).hexdigest().encode(), raw)
            else:
                k = (raw, b"")
            if len(self._keys) >= _KEY_CACHE_LIMIT:
                self._keys.clear()
            self._keys[loc] = k
        return k

    @property
    def etag_prefix(self) -> str:
        """What every ETag of this database starts with: ``"<database id>."``."""
        return self._etag_prefix

    def short_record_error(self, lkey: bytes, size: int) -> CorruptValueError:
        """The error for the record at ``lkey``, ``size`` bytes: too short for its header."""
        return self._short_record(lkey, struct.error(f"{size} bytes, fewer than {_HDR_SIZE}"), size)

    def _etag(self, rec: Any) -> str:
        txnid, seq = struct.unpack_from("<QI", rec)
        return f"{self._etag_prefix}{txnid}.{seq}"

    def _live(self, rec: Any, now: float) -> bool:
        """Whether ``rec`` has not expired (a record too short for its mtime is live: present)."""
        ttl = self._ttl
        try:
            return ttl is None or now - _TIME.unpack_from(rec, _MTIME_AT)[0] <= ttl
        except struct.error:
            return True

    def _stat_of(self, rec: Any) -> Stat:
        txnid, seq, _, mtime, kept = _HDR.unpack_from(rec)
        return Stat(f"{self._etag_prefix}{txnid}.{seq}", mtime, len(rec) - _HDR_SIZE - kept)

    def _error(self, e: lmdb.Error, operation: str, loc: object = None) -> BackendError:
        return lmdb_error(e, self._h.path, operation, loc)

    def _short_record(
        self, lkey: bytes | None, e: struct.error, size: int | None = None
    ) -> CorruptValueError:
        """The error for the record at ``lkey`` (``size`` bytes): too short for its header (``e``)."""
        if lkey is None:  # (every caller that parses one record passes its key)
            return CorruptValueError(
                f"A record is too short for its header: {e}", backend=self.describe(), operation="read"
            )
        text = lkey.decode(errors="replace")
        loc = tuple(text.split("/"))
        key = self.key_of(loc) if self.key_of is not None and not lkey.startswith(b"#") else None
        where = f"{self.describe()}/{text}"
        if size is None:
            try:
                size = self._read(lambda txn: len(txn.get(lkey, b"", db=self._h.vdb)), buffers=True)
            except Exception:
                size = 0
        return CorruptValueError(
            f"Cannot read the value of key {key if key is not None else text!r} stored at {where} "
            f"({size} bytes): the record is shorter than the {_HDR_SIZE}-byte header LmdbDict writes "
            "(another program wrote it)",
            backend=where,
            operation="read",
            key=key if key is not None else text,
        )

    # ------------------------------------------------------------ transactions

    def _read(
        self, fn: Callable[[lmdb.Transaction[Any]], _T], buffers: bool = False, lkey: bytes | None = None
    ) -> _T:
        """Run ``fn`` in a short read transaction (or in this thread's batch).

        ``lkey``: the LMDB key of the record ``fn`` parses, named if it is too short.
        """
        h = self._h
        batch = h.batch
        if batch is not None and h.batch_owner == _get_ident():
            try:
                return fn(batch.flushed())
            except lmdb.Error as e:
                raise self._batch_error(batch, e, "read", lkey) from e
            except struct.error as e:
                raise self._short_record(lkey, e) from e
        while True:
            env = h.enter()
            short = None
            try:
                with env.begin(buffers=buffers) as txn:  # type: ignore[call-overload]
                    return fn(txn)
            except lmdb.MapResizedError:
                pass
            except lmdb.Error as e:
                raise self._error(e, "read", lkey) from e
            except struct.error as e:
                short = e
            finally:
                h.leave()
            if short is not None:  # (named once the transaction has ended: naming reads the record)
                raise self._short_record(lkey, short) from short
            h.adopt()

    def _batch_error(self, batch: Batch, e: lmdb.Error, operation: str, lkey: bytes | None) -> BackendError:
        """``e``, met inside ``batch``, which can then no longer commit."""
        batch.failed = str(e)
        return self._error(e, operation, lkey)

    def _batch_map_full(self, batch: Batch) -> BackendError:
        batch.map_full = True
        return BackendError(
            "The LMDB map filled up inside a transaction: nothing will be committed; "
            "the map grows when the transaction block exits, then run it again",
            backend=self.describe(), operation="write",
        )

    def _write(
        self, fn: Callable[[lmdb.Transaction[Any], int, int], _T], lkey: bytes | None = None
    ) -> _T:
        """Run ``fn(txn, txnid, write_number)`` in one write transaction; grow the map as needed.

        ``lkey``: the LMDB key of the record ``fn`` parses, named if it is too short.
        """
        h = self._h
        batch = h.batch
        if batch is not None and h.batch_owner == _get_ident():
            try:
                txn = batch.flushed()
                return fn(txn, batch.txnid, batch.next_seq())
            except lmdb.MapFullError:
                raise self._batch_map_full(batch) from None
            except lmdb.Error as e:
                raise self._batch_error(batch, e, "write", lkey) from e
            except struct.error as e:
                raise self._short_record(lkey, e) from e
        if self._readonly:
            if self._closed:
                raise closed_error(h.path)
            raise BackendError("The database is read-only", backend=self.describe(), operation="write")
        while True:
            env = h.enter()
            size = h.map_size
            resized = False
            short = None
            try:
                txn = env.begin(write=True, buffers=True)
                try:
                    result = fn(txn, txn.id(), 0)
                    txn.commit()
                except BaseException:
                    txn.abort()
                    raise
                return result
            except lmdb.MapFullError:
                pass
            except lmdb.MapResizedError:
                resized = True
            except lmdb.Error as e:
                raise self._error(e, "write", lkey) from e
            except struct.error as e:
                short = e
            finally:
                h.leave()
            if short is not None:
                raise self._short_record(lkey, short) from short
            if resized:
                h.adopt()
            else:
                h.grow(size)

    # ------------------------------------------------------------ Backend protocol

    def stat(self, loc: Location) -> Stat | None:
        """Metadata at ``loc``."""
        lkey = self._key(loc)[0]
        h = self._h

        def do(txn: lmdb.Transaction[Any]) -> Stat | None:
            rec = txn.get(lkey, db=h.vdb)
            if rec is None or not self._live(rec, self._clock()):
                return None
            return self._stat_of(rec)

        return self._read(do, buffers=True, lkey=lkey)

    def exists(self, loc: Location) -> bool:
        """Whether ``loc`` holds a live record."""
        return self.exists_raw(self._key(loc)[0])

    def exists_raw(self, lkey: bytes) -> bool:
        """Whether an LMDB key from ``lmdb_key`` holds a live record."""
        h = self._h

        def do(txn: lmdb.Transaction[Any]) -> bool:
            rec = txn.get(lkey, db=h.vdb)
            return rec is not None and (self._ttl is None or self._live(rec, self._clock()))

        return self._read(do, buffers=True, lkey=lkey)

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """Bytes and stat at ``loc``."""
        lkey = self._key(loc)[0]
        h = self._h

        def do(txn: lmdb.Transaction[Any]) -> ReadAnswer:
            rec = txn.get(lkey, db=h.vdb)
            if rec is None or not self._live(rec, self._clock()):
                return None
            stat = self._stat_of(rec)
            if if_none_match is not None and stat.etag == if_none_match:
                return NotModified(stat)
            return bytes(rec[len(rec) - stat.size :]), stat

        got = self._read(do, lkey=lkey)
        if got is not None and self._track_atime:
            self._touch(lkey)
        return got

    def get_bytes(self, loc: Location) -> bytes | None:
        """The value bytes at ``loc``, or None."""
        return self.get_raw(self._key(loc)[0])

    def get_raw(self, lkey: bytes) -> bytes | None:
        """The value bytes at an LMDB key from ``lmdb_key`` (the ``d[key]`` hot path), or None."""
        h = self._h
        batch = h.batch
        if batch is not None and h.batch_owner == _get_ident():
            try:
                rec = batch.flushed().get(lkey, db=h.vdb)
            except lmdb.Error as e:
                raise self._batch_error(batch, e, "read", lkey) from e
        else:
            while True:
                env = h.enter()
                try:
                    with env.begin() as txn:
                        rec = txn.get(lkey, db=h.vdb)
                    break
                except lmdb.MapResizedError:
                    pass
                except lmdb.Error as e:
                    raise self._error(e, "read", lkey) from e
                finally:
                    h.leave()
                h.adopt()
        if rec is None:
            return None
        if self._ttl is not None and not self._live(rec, self._clock()):
            return None
        try:
            kept = _HDR.unpack_from(rec)[4]
        except struct.error as e:
            raise self._short_record(lkey, e, len(rec)) from e
        if self._track_atime:
            self._touch(lkey)
        return bytes(rec[_HDR_SIZE + kept :])

    def get_versioned(self, lkey: bytes, known: bytes | None) -> tuple[bytes, bytes | None] | None:
        """(version, value bytes) at an LMDB key from ``lmdb_key`` (bytes None: the version is ``known``)."""
        h = self._h

        def do(txn: lmdb.Transaction[Any]) -> tuple[bytes, bytes | None] | None:
            rec = txn.get(lkey, db=h.vdb)
            if rec is None or (self._ttl is not None and not self._live(rec, self._clock())):
                return None
            version = bytes(rec[:_VERSION_SIZE])
            if version == known:
                return version, None
            kept = _HDR.unpack_from(rec)[4]
            return version, bytes(rec[_HDR_SIZE + kept :])

        got = self._read(do, buffers=True, lkey=lkey)
        if got is not None and self._track_atime:
            self._touch(lkey)
        return got

    def _check(self, loc: Location, rec: Any, precondition: Precondition) -> None:
        if isinstance(precondition, IfAbsent):
            ok = rec is None
        else:
            assert precondition is not None
            ok = rec is not None and self._etag(rec) == precondition.etag
        if not ok:
            raise PreconditionFailed(loc, precondition)

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat:
        """Store bytes (value and metadata in one transaction); check the precondition inside it."""
        lkey, kept = self._key(loc)
        h = self._h

        def do(txn: lmdb.Transaction[Any], txnid: int, seq: int) -> Stat:
            cur = txn.cursor(db=h.vdb)
            if precondition is not None:
                old = cur.get(lkey)
                if old is not None and not self._live(old, self._clock()):
                    old = None  # expired: absent
                self._check(loc, old, precondition)
            now = self._clock()
            self._write_records(txn, cur, txnid, seq - 1, (((lkey, kept), data, now),))
            return Stat(f"{self._etag_prefix}{txnid}.{seq}", now, len(data))

        return self._write(do, lkey)

    def put(self, loc: Location, data: bytes) -> None:
        """Unconditional write."""
        self.put_raw(self._key(loc), data)

    def put_raw(self, lk: tuple[bytes, bytes], data: bytes) -> None:
        """Unconditional write at ``lk``, an (LMDB key, kept location) pair from ``lmdb_key`` (hot path).

        Inside this thread's batch the record is queued (see ``Batch``).
        """
        h = self._h
        batch = h.batch
        if batch is None or h.batch_owner != _get_ident():
            self._write(  # (the clock is read inside the transaction: mtimes follow the commits)
                lambda txn, txnid, seq: self._write_records(
                    txn, txn.cursor(db=h.vdb), txnid, seq - 1, ((lk, data, self._clock()),)
                )
            )
        else:
            batch.enqueue(self, self._write_batch, (lk, data, self._clock()))

    def put_many_raw(self, items: Iterable[QueuedRecord]) -> int:
        """Write ((LMDB key, kept location), value bytes, mtime) records inside this thread's batch."""
        h = self._h
        batch = h.batch
        if batch is None or h.batch_owner != _get_ident():
            raise RuntimeError("put_many_raw() runs inside LmdbDict.transaction()")
        batch.flushed()
        return self._write_batch(batch, items)

    def _write_batch(self, batch: Batch, items: Iterable[QueuedRecord]) -> int:
        """Write records into this thread's batch (its queue writer); return how many."""
        try:
            return self._write_records(batch.txn, batch.cursor, batch.txnid, batch.seq, items, batch)
        except lmdb.MapFullError:
            raise self._batch_map_full(batch) from None
        except lmdb.Error as e:
            raise self._batch_error(batch, e, "write", None) from e

    def _write_records(
        self,
        txn: lmdb.Transaction[Any],
        cur: lmdb.Cursor[Any],
        txnid: int,
        after: int,
        items: Iterable[QueuedRecord],
        batch: Batch | None = None,
    ) -> int:
        """The writer of records: through ``cur``, a cursor of the records in ``txn``; return how many.

        Records take the write numbers after ``after``; a ``batch``'s counter
        follows them, whatever stops the loop. A new record (or one written
        after it expired) gets its ctime in ``c``; an overwrite leaves the
        ctime alone, but moves a format-1 record's ctime from its header into ``c``.
        """
        ttl = self._ttl
        seq = after
        pack = _HDR.pack
        replace = cur.replace
        try:
            for (lkey, kept), data, now in items:
                seq += 1
                if kept:
                    old = replace(lkey, pack(txnid, seq, 0.0, now, len(kept)) + kept + data)
                else:
                    old = replace(lkey, pack(txnid, seq, 0.0, now, 0) + data)
                try:
                    if old is None or (ttl is not None and now - _TIME.unpack_from(old, _MTIME_AT)[0] > ttl):
                        txn.put(lkey, _TIME.pack(now), db=self._h.cdb)
                    elif old[_CTIME_AT:_MTIME_AT] != _NO_CTIME:  # a format-1 record: its ctime to ``c``
                        self._keep_ctime(txn, lkey, old, now)
                except struct.error:  # a record too short for its header replaced: a new life
                    txn.put(lkey, _TIME.pack(now), db=self._h.cdb)
        finally:
            if batch is not None:
                batch.seq = seq  # write numbers stay unique in the batch, whatever stopped the loop
        return seq - after

    def _keep_ctime(self, txn: lmdb.Transaction[Any], lkey: bytes, old: Any, now: float) -> None:
        """Move a replaced format-1 record's ctime to ``c`` (``now`` if ``old`` is too short for one)."""
        ctime = bytes(old[_CTIME_AT:_MTIME_AT]) if len(old) >= _HDR_SIZE else _TIME.pack(now)
        txn.put(lkey, ctime, db=self._h.cdb)

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Remove ``loc`` (and its access time); check the precondition in the same transaction."""
        lkey = self._key(loc)[0]
        h = self._h

        def do(txn: lmdb.Transaction[Any], txnid: int, seq: int) -> bool:
            old = txn.get(lkey, db=h.vdb)
            if old is None:
                if precondition is not None:
                    self._check(loc, None, precondition)
                return False
            live = self._ttl is None or self._live(old, self._clock())
            if precondition is not None:
                self._check(loc, old if live else None, precondition)
            txn.delete(lkey, db=h.vdb)
            txn.delete(lkey, db=h.cdb)
            txn.delete(lkey, db=h.adb)
            return live

        deleted = self._write(do, lkey)
        self._atimes.pop(lkey, None)
        return deleted

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Delete many locations, up to a thousand per transaction."""

        def flush(lkeys: list[bytes]) -> int:
            for lkey in lkeys:
                self._atimes.pop(lkey, None)
            return sum(self._write(lambda txn, txnid, seq: self._delete_in(txn, lkeys, self._clock())))

        total = 0
        pending: list[bytes] = []
        for loc in locs:
            pending.append(self._key(loc)[0])
            if len(pending) >= _DELETE_BATCH:
                total += flush(pending)
                pending = []
        if pending:
            total += flush(pending)
        return total

    def _delete_in(self, txn: lmdb.Transaction[Any], lkeys: Iterable[bytes], now: float) -> list[bool]:
        """Delete the records at ``lkeys`` (and their ctimes and atimes) in ``txn``: whether each was live."""
        h = self._h
        vdb, cdb, adb = h.vdb, h.cdb, h.adb
        ttl = self._ttl
        out: list[bool] = []
        for lkey in lkeys:
            old = txn.get(lkey, db=vdb)
            if old is None:
                out.append(False)
                continue
            out.append(ttl is None or self._live(old, now))
            txn.delete(lkey, db=vdb)
            txn.delete(lkey, db=cdb)
            txn.delete(lkey, db=adb)
        return out

    # ------------------------------------------------------------ batches

    def read_txn(self, fn: Callable[[lmdb.Transaction[Any]], _T], *, buffers: bool = False) -> _T:
        """Run ``fn(txn)`` in one read transaction, or in this thread's batch (errors as BackendError).

        ``fn`` finds the records database at ``handle.vdb``. With ``buffers``
        the values it gets are valid only until its next use of the transaction.
        """
        return self._read(fn, buffers)

    def put_many(
        self,
        records: Collection[tuple[tuple[bytes, bytes], bytes]],
        deletes: Sequence[bytes] = (),
        *,
        if_absent: bool = False,
    ) -> tuple[list[bool], list[bool]]:
        """Write ``records`` ((LMDB key, kept location), value bytes), delete ``deletes``: ONE transaction.

        The transaction is this thread's batch if it has one, else a write
        transaction of its own (retried as a whole after the map grows). The
        records share one mtime, read inside the transaction; no two of them
        (or of the deletes) may share an LMDB key. ``if_absent``: a record is
        written only where no live record is (append-only dicts). Returns
        whether each record was written, and whether each deleted key held a
        live record. Any LMDB failure is a BackendError, and nothing is written.
        """
        h = self._h
        batch = h.batch
        if batch is not None and h.batch_owner == _get_ident():
            txn = batch.flushed()
            try:
                done = self._put_many_in(
                    txn, batch.cursor, batch.txnid, batch.seq, records, deletes, if_absent, batch
                )
            except lmdb.MapFullError:
                raise self._batch_map_full(batch) from None
            except lmdb.Error as e:
                raise self._batch_error(batch, e, "write", None) from e
        else:
            done = self._write(
                lambda txn, txnid, seq: self._put_many_in(
                    txn, txn.cursor(db=h.vdb), txnid, seq - 1, records, deletes, if_absent
                )
            )
        for lkey in deletes:
            self._atimes.pop(lkey, None)
        return done

    def _put_many_in(
        self,
        txn: lmdb.Transaction[Any],
        cur: lmdb.Cursor[Any],
        txnid: int,
        after: int,
        records: Collection[tuple[tuple[bytes, bytes], bytes]],
        deletes: Sequence[bytes],
        if_absent: bool,
        batch: Batch | None = None,
    ) -> tuple[list[bool], list[bool]]:
        """``put_many``'s work in ``txn`` (``cur``: a cursor on its records; write numbers past ``after``)."""
        now = self._clock()
        if if_absent:
            ttl = self._ttl
            get = cur.get
            written = []
            for (lkey, _), _ in records:
                old = get(lkey)
                written.append(old is None or (ttl is not None and not self._live(old, now)))
            records = [rec for rec, ok in zip(records, written, strict=True) if ok]
        else:
            written = [True] * len(records)
        self._write_bulk(txn, cur, txnid, after, records, now, batch)
        return written, self._delete_in(txn, deletes, now) if deletes else []

    def _write_bulk(
        self,
        txn: lmdb.Transaction[Any],
        cur: lmdb.Cursor[Any],
        txnid: int,
        after: int,
        records: Iterable[tuple[tuple[bytes, bytes], bytes]],
        now: float,
        batch: Batch | None = None,
    ) -> None:
        """``_write_records`` of records that share one mtime, ``now`` (a ``batch``'s counter follows).

        The bulk writer (``update``, ``set_many``): its loop does the least
        per record, and leaves the rare cases (a record replaced after it
        expired, a format-1 record) to ``_write_records``'s rules.
        """
        pack = _HDR.pack
        mtime_of = _TIME.unpack_from
        replace = cur.replace
        ttl = self._ttl
        seq = after
        created: list[bytes] = []
        new = created.append
        rare: list[tuple[bytes, Any]] = []
        try:
            for (lkey, kept), data in records:
                seq += 1
                if kept:
                    old = replace(lkey, pack(txnid, seq, 0.0, now, len(kept)) + kept + data)
                else:
                    old = replace(lkey, pack(txnid, seq, 0.0, now, 0) + data)
                if old is None:
                    new(lkey)
                elif (
                    len(old) < _HDR_SIZE
                    or old[_CTIME_HIGH_BYTE]  # its header's ctime slot is not 0: a format-1 record
                    or (ttl is not None and now - mtime_of(old, _MTIME_AT)[0] > ttl)  # expired
                ):
                    rare.append((lkey, bytes(old)))
        finally:
            if batch is not None:
                batch.seq = seq  # write numbers stay unique in the batch, whatever stopped the loop
        self._after_bulk(txn, created, rare, now)

    def _after_bulk(
        self,
        txn: lmdb.Transaction[Any],
        created: builtins.list[bytes],
        rare: builtins.list[tuple[bytes, Any]],
        now: float,
    ) -> None:
        """The ctimes of a bulk write: ``now`` for the records ``created``; ``rare`` ones by the rules."""
        cdb = self._h.cdb
        ttl = self._ttl
        ctime = _TIME.pack(now)
        if created:
            txn.cursor(db=cdb).putmulti(zip(created, repeat(ctime)))
        for lkey, old in rare:
            try:
                if ttl is not None and now - _TIME.unpack_from(old, _MTIME_AT)[0] > ttl:
                    txn.put(lkey, ctime, db=cdb)  # written after it expired: a new life
                elif old[_CTIME_AT:_MTIME_AT] != _NO_CTIME:
                    self._keep_ctime(txn, lkey, old, now)
            except struct.error:  # a record too short for its header replaced: a new life
                txn.put(lkey, ctime, db=cdb)

    # ------------------------------------------------------------ serialisation formats, counting

    def register_format(self, extension: str) -> None:
        """Record in the database that records of ``extension`` may be written (see ``lmdb_env.FORMAT``).

        Once per database and format: the handle remembers the formats it
        found registered. Inside this thread's batch the registration joins
        it, and is written again should the batch not commit.
        """
        h = self._h
        if self._readonly or extension in h.formats:
            return
        ext = extension.encode()

        def registered(txn: lmdb.Transaction[Any]) -> set[bytes]:
            got = txn.get(FORMATS, db=h.mdb)
            return set(bytes(got).split(b"\n")) if got else set()

        def add(txn: lmdb.Transaction[Any], txnid: int, seq: int) -> set[bytes]:
            known = registered(txn)
            if ext not in known:
                known.add(ext)
                txn.put(FORMATS, b"\n".join(sorted(known)), db=h.mdb)
            return known

        known = self._read(registered)
        if ext not in known:
            batch = h.batch
            known = self._write(add)
            if batch is not None and h.batch_owner == _get_ident():
                batch.on_abort.append(lambda: self._write(add))
                return  # (not known to be registered until the batch commits)
        h.formats = frozenset(x.decode() for x in known)

    def entry_count(self, extension: str) -> int | None:
        """The number of records, if every record is an item in format ``extension``; else None.

        That is so when the database is of format 3 (every writer registers
        its formats) and ``extension`` is the only format registered.
        """
        h = self._h
        if h.format != FORMAT:
            return None
        ext = extension.encode()

        def count(txn: lmdb.Transaction[Any]) -> int | None:
            got = txn.get(FORMATS, db=h.mdb)
            if got is None or bytes(got) != ext:
                return None
            entries: int = txn.stat(h.vdb)["entries"]
            return entries

        return self._read(count)

    # ------------------------------------------------------------ listing

    def _scan(self, prefix: Location, with_records: bool) -> Iterator[tuple[bytes, Any]]:
        """(location bytes relative to ``prefix``, stat or None) of the live records, read in batches.

        For listings that must read the records: their stats, or their mtimes under a ttl.
        A record too short for its header is skipped (see the module docstring).
        """
        p = ("/".join(prefix) + "/").encode() if prefix else b""
        cut = len(p)
        h = self._h
        ttl = self._ttl
        start = p or b"$"  # hashed keys ("#...") sort first; they are scanned below
        done = False

        def batch(txn: lmdb.Transaction[Any]) -> list[tuple[bytes, Any]]:
            nonlocal start, done
            out: list[tuple[bytes, Any]] = []
            cur = txn.cursor(db=h.vdb)
            if not cur.set_range(start):
                done = True
                return out
            now = self._clock()
            for k, rec in cur.iternext():
                k = bytes(k)
                if not k.startswith(p):
                    done = True
                    return out
                if len(rec) < _HDR_SIZE:
                    continue  # a record too short for its header (see the module docstring)
                if ttl is not None and now - _TIME.unpack_from(rec, _MTIME_AT)[0] > ttl:
                    continue
                out.append((k[cut:], self._stat_of(rec) if with_records else None))
                if len(out) >= _LIST_BATCH:
                    start = k + b"\x00"
                    return out
            done = True
            return out

        while not done:
            yield from self._read(batch, buffers=True)
        yield from self._scan_hashed(p, with_records)

    def _scan_hashed(self, p: bytes, with_records: bool) -> Iterator[tuple[bytes, Any]]:
        """``_scan`` of the records stored under hashed keys (their locations are in the records)."""
        h = self._h
        ttl = self._ttl
        cut = len(p)

        def all_hashed(txn: lmdb.Transaction[Any]) -> list[tuple[bytes, Any]]:
            out: list[tuple[bytes, Any]] = []
            cur = txn.cursor(db=h.vdb)
            if not cur.set_range(b"#"):
                return out
            now = self._clock()
            for k, rec in cur.iternext():
                if k[:1] != b"#":
                    break
                if len(rec) < _HDR_SIZE:
                    continue  # a record too short for its header (see the module docstring)
                _, _, _, mtime, kept = _HDR.unpack_from(rec)
                if ttl is not None and now - mtime > ttl:
                    continue
                loc = bytes(rec[_HDR_SIZE : _HDR_SIZE + kept])
                if loc.startswith(p):
                    out.append((loc[cut:], self._stat_of(rec) if with_records else None))
            return out

        yield from self._read(all_hashed, buffers=True)

    def list_raw(self, prefix: Location) -> Iterator[bytes]:
        """Locations under ``prefix``, relative to it, as bytes (``b"a/b.pkl"``), streamed in batches.

        With no ``ttl`` no record is read: a record too short for its header is listed.
        """
        for raws in self.list_raw_batches(prefix):
            yield from raws

    def list_raw_batches(self, prefix: Location) -> Iterator[list[bytes]]:
        """``list_raw`` in lists of up to a thousand locations, each read in one transaction."""
        if self._ttl is not None:
            raws: list[bytes] = []
            for raw, _ in self._scan(prefix, False):
                raws.append(raw)
                if len(raws) >= _LIST_BATCH:
                    yield raws
                    raws = []
            if raws:
                yield raws
            return
        # Keys only: no record is touched.
        p = ("/".join(prefix) + "/").encode() if prefix else b""
        cut = len(p)
        h = self._h
        start = p or b"$"  # hashed keys ("#...") sort first; they are scanned below
        done = False

        def batch(txn: lmdb.Transaction[Any]) -> list[bytes]:
            nonlocal start, done
            cur = txn.cursor(db=h.vdb)
            if not cur.set_range(start):
                done = True
                return []
            keys = list(itertools.islice(cur.iternext(values=False), _LIST_BATCH))
            if keys and type(keys[0]) is not bytes:  # (a batch's transaction hands out memoryviews)
                keys = list(map(bytes, keys))
            if len(keys) < _LIST_BATCH:
                done = True
            if p and keys and not keys[-1].startswith(p):
                done = True
                keys = [k for k in keys if k.startswith(p)]
            if keys:
                start = keys[-1] + b"\x00"
            return [k[cut:] for k in keys] if cut else keys

        while not done:
            raws = self._read(batch)
            if raws:
                yield raws
        hashed = [raw for raw, _ in self._scan_hashed(p, False)]
        if hashed:
            yield hashed

    def list(self, prefix: Location) -> Iterator[Location]:
        """Locations under ``prefix``, relative to it, streamed in batches."""
        for raw in self.list_raw(prefix):
            yield tuple(raw.decode().split("/"))

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Locations under ``prefix`` with their stats."""
        for raw, stat in self._scan(prefix, True):
            yield tuple(raw.decode().split("/")), stat

    # ------------------------------------------------------------ metadata, atime, expiry

    def metadata(self, loc: Location) -> LmdbMetadata | None:
        """ctime, mtime, atime, ETag and size at ``loc`` (None when absent)."""
        lkey = self._key(loc)[0]
        h = self._h

        def do(txn: lmdb.Transaction[Any]) -> LmdbMetadata | None:
            rec = txn.get(lkey, db=h.vdb)
            if rec is None or not self._live(rec, self._clock()):
                return None
            txnid, seq, ctime, mtime, kept = _HDR.unpack_from(rec)
            if ctime == 0.0 and h.cdb is not None:  # (else a format-1 record: the ctime is here)
                c = txn.get(lkey, db=h.cdb)
                if c is not None and len(c) == _TIME.size:  # (else not ours: no ctime known)
                    ctime = _TIME.unpack_from(c)[0]
            a = txn.get(lkey, db=h.adb) if h.adb is not None else None
            atime = None if a is None or len(a) != _TIME.size else _TIME.unpack_from(a)[0]
            return LmdbMetadata(
                etag=f"{self._etag_prefix}{txnid}.{seq}",
                ctime=ctime,
                mtime=mtime,
                atime=atime,
                size=len(rec) - _HDR_SIZE - kept,
            )

        meta = self._read(do, buffers=True, lkey=lkey)
        pending = self._atimes.get(lkey)
        if meta is not None and pending is not None and (meta.atime is None or pending > meta.atime):
            meta = attrs.evolve(meta, atime=pending)
        return meta

    @property
    def tracks_atime(self) -> bool:
        """Whether reads are recorded (``track_atime`` on a writable database)."""
        return self._track_atime

    def touch_many(self, lkeys: Iterable[bytes]) -> None:
        """Record a read of each LMDB key (with ``track_atime``; call it outside any read transaction)."""
        if self._track_atime:
            for lkey in lkeys:
                self._touch(lkey)

    def _touch(self, lkey: bytes) -> None:
        now = self._clock()
        self._atimes[lkey] = now
        self._n_reads += 1
        if self._n_reads >= self._flush_reads or now - self._last_flush >= self._flush_interval:
            self.flush_atimes()

    def flush_atimes(self) -> int:
        """Write the recorded read times in one transaction; return how many were written."""
        h = self._h
        if h.batch is not None and h.batch_owner == _get_ident():
            return 0  # inside this thread's batch: flush later
        if not self._flush_lock.acquire(blocking=False):
            return 0  # another thread is flushing
        try:
            pending, self._atimes = self._atimes, {}
            self._n_reads = 0
            self._last_flush = self._clock()
            if not pending:
                return 0

            def do(txn: lmdb.Transaction[Any], txnid: int, seq: int) -> int:
                n = 0
                for lkey, t in pending.items():
                    if txn.get(lkey, db=h.vdb) is not None:
                        old = txn.get(lkey, db=h.adb)
                        if old is None or len(old) != _TIME.size or _TIME.unpack_from(old)[0] < t:
                            txn.put(lkey, _TIME.pack(t), db=h.adb)
                            n += 1
                return n

            return self._write(do)
        finally:
            self._flush_lock.release()

    def purge(self) -> int:
        """Delete every expired record; return how many were deleted."""
        return self.delete_expired(self.find_expired())

    def find_expired(self) -> builtins.list[tuple[bytes, object]]:
        """(LMDB key, its key as ``key_of`` names it, or None) of each expired record, read in batches.

        Empty without a ``ttl`` or on a read-only database.
        """
        ttl = self._ttl
        if ttl is None or self._readonly:
            return []
        h = self._h
        expired: list[tuple[bytes, object]] = []
        start = b""
        done = False

        def scan(txn: lmdb.Transaction[Any]) -> None:
            nonlocal start, done
            found: list[tuple[bytes, Any]] = []
            cur = txn.cursor(db=h.vdb)
            if not cur.set_range(start):
                done = True
            else:
                now = self._clock()
                for n, (k, rec) in enumerate(cur.iternext(), 1):
                    if len(rec) >= _HDR_SIZE and now - _HDR.unpack_from(rec)[3] > ttl:
                        kept = _HDR.unpack_from(rec)[4]
                        found.append((bytes(k), bytes(rec[_HDR_SIZE : _HDR_SIZE + kept]) if kept else None))
                    if n >= _LIST_BATCH:
                        start = bytes(k) + b"\x00"
                        break
                else:
                    done = True
            expired.extend((lkey, self._key_named(loc or lkey)) for lkey, loc in found)

        while not done:
            self._read(scan, buffers=True)
        return expired

    def _key_named(self, loc: bytes) -> object:
        """The key at location ``loc`` as ``key_of`` names it (None if none, or no namer)."""
        if self.key_of is None:
            return None
        return self.key_of(tuple(loc.decode(errors="replace").split("/")))

    def delete_expired(
        self,
        found: builtins.list[tuple[bytes, object]],
        on_done: Callable[[object, bool], object] | None = None,
    ) -> int:
        """Delete the records of ``found`` (from ``find_expired``) that are still expired; return how many.

        Up to a thousand per transaction; ``on_done(key, deleted)`` is called
        for each, after its transaction has committed.
        """
        ttl = self._ttl
        if ttl is None or self._readonly:
            return 0
        h = self._h
        total = 0
        for i in range(0, len(found), _DELETE_BATCH):
            chunk = found[i : i + _DELETE_BATCH]

            def do(
                txn: lmdb.Transaction[Any],
                txnid: int,
                seq: int,
                chunk: builtins.list[tuple[bytes, object]] = chunk,
            ) -> builtins.list[bool]:
                deleted: builtins.list[bool] = []
                now = self._clock()
                for lkey, _ in chunk:
                    rec = txn.get(lkey, db=h.vdb)
                    gone = rec is not None and len(rec) >= _HDR_SIZE and now - _HDR.unpack_from(rec)[3] > ttl
                    if gone:
                        txn.delete(lkey, db=h.vdb)
                        txn.delete(lkey, db=h.cdb)
                        txn.delete(lkey, db=h.adb)
                    deleted.append(gone)
                return deleted

            deleted = self._write(do)
            total += sum(deleted)
            if on_done is not None:
                for (_, key), gone in zip(chunk, deleted, strict=True):
                    on_done(key, gone)
        return total


_TRACKING: weakref.WeakSet[LmdbBackend] = weakref.WeakSet()


@atexit.register
def _flush_all_atimes() -> None:
    for backend in list(_TRACKING):
        with contextlib.suppress(Exception):  # best effort at exit
            backend.flush_atimes()
