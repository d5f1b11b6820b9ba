"""LmdbDict: a PersiDict in one LMDB database — the single-machine speed store.

Every operation is one LMDB transaction: the value and its metadata (ETag,
ctime, mtime) are written together, and the precondition of a conditional
operation is checked inside the write transaction, so conditional operations
and ``transform_item`` are atomic across threads and processes.
``lmdb`` is imported when the first LmdbDict is made.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import math
import numbers
import operator
import os
import pickle
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .backends.base import IF_ABSENT, PreconditionFailed
from .codecs import PICKLE_PROTOCOL, Codec, PickleCodec, TextCodec
from .errors import batch_error
from .flags import DELETE_CURRENT, Joker, ValueType
from .keys import (
    Layout,
    NonEmptyPersiDictKey,
    NonEmptySafeStrTuple,
    PersiDictKey,
    cache_key,
    to_key,
    to_prefix,
)
from .ops.decide import refuse_overwrite
from .ops.run_many import ABSENT, OnDone
from .persi_dict import PLAIN_VALUE_TYPES
from .progress import ProgressOption, Reporter
from .store_dict import StoreDict

if TYPE_CHECKING:
    from .backends.lmdb import LmdbBackend, LmdbMetadata
    from .backends.lmdb_env import EnvHandle



_LKEY_CACHE_LIMIT = 100_000
_VALUE_AT = 32  # where a record's value starts, after its header (and the location a hashed key keeps)
_Resolved = tuple[NonEmptySafeStrTuple, bytes, int]
"""A key of a batch read: (key, LMDB key, where its value starts in its record)."""
_get_ident = threading.get_ident

DEFAULT_MAP_SIZE = 64 * 2**20
"""Initial size of the memory map (64 MiB); it doubles whenever it fills up."""


class LmdbDict(StoreDict[ValueType]):
    """A PersiDict stored in an LMDB database directory ``base_dir``.

    Parameters (keyword-only):

    * ``durable``: sync every commit to disk (False: faster; a system crash
      may lose the last commits, never corrupt the database). A property of
      the environment: all LmdbDicts on one database in a process must agree.
    * ``map_size`` / ``max_map_size``: initial size of the memory map, and a
      cap for its growth (None: no cap). A full map is doubled and the
      transaction retried.
    * ``readonly``: refuse writes (opens the environment read-only if it is
      not already open in this process).
    * ``cache_size``: keep up to this many decoded values in an in-process
      LRU cache. Each read still checks the item's version in LMDB (a short
      read transaction, no copy, no decoding), so a value written by another
      thread or process is never served stale. Cached values are shared
      between reads: treat values read from a cached LmdbDict as immutable
      (mutate a copy and store it).
    * ``track_atime``: record read times. Reads are recorded in memory and
      written in one transaction at most every ``atime_flush_interval``
      seconds or ``atime_flush_reads`` reads, on ``close()`` and at exit.
      See ``metadata(key).atime``.
    * ``ttl`` (seconds) or ``expiration_days``, each a positive finite number
      or a ``datetime.timedelta``: items expire that long after their last
      write; expired items are invisible to every operation.
      ``purge_at_open`` (True, "background" or False) deletes them when the
      database is first opened in a process; ``purge()`` does it on demand.
    * ``clock``: the time source (``time.time``); tests inject their own.
    * ``root_prefix``: the key prefix a subdict lives under.

    ``base_dir`` must be a folder or not exist yet (a file is a ValueError).

    Errors: every failure of LMDB (a full disk, an I/O error, a map that
    cannot grow past ``max_map_size``) raises ``BackendError``, never an
    ``lmdb`` exception; a failed ``transaction()`` or ``update()`` commits
    nothing. A record too short for its header, which only another program
    can write, raises ``CorruptValueError`` naming the key when read (a
    subdict names the key from the dict that opened the database); listings
    that read records (under a ``ttl``, ``keys_and_timestamps``) skip it, and
    the keys-only listing lists it. Opening adopts a map that another process
    grows meanwhile.

    ``close()`` ends the dict, as for a file: every later operation raises
    ``ValueError("I/O operation on a closed LmdbDict ...")``; ``get_params()``,
    ``base_dir`` and the other settings stay readable. It closes the dict's
    subdicts and copies with it (they share one connection); other LmdbDicts
    on the database keep working, and the environment closes when the last
    of them closes.
    """

    _lmdb: LmdbBackend
    _cache: OrderedDict[bytes, tuple[bytes, Any]] | None
    _cache_lock: threading.Lock

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str],
        root_prefix: PersiDictKey = (),
        serialization_format: str | Codec = "pkl",
        append_only: bool = False,
        base_class_for_values: type | None = None,
        durable: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int | None = None,
        readonly: bool = False,
        cache_size: int = 0,
        track_atime: bool = False,
        atime_flush_interval: float = 5.0,
        atime_flush_reads: int = 1000,
        ttl: float | datetime.timedelta | None = None,
        expiration_days: float | datetime.timedelta | None = None,
        purge_at_open: bool | Literal["background"] = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from .backends.lmdb import LmdbBackend, open_env
        from .backends.lmdb_env import QUEUE_LENGTH, QUEUE_VALUE_MAX

        for name, flag in (("durable", durable), ("readonly", readonly), ("track_atime", track_atime)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, not {flag!r}")
        if isinstance(map_size, bool) or not isinstance(map_size, int) or map_size <= 0:
            raise ValueError(f"map_size must be a positive int, not {map_size!r}")
        if max_map_size is not None and (
            isinstance(max_map_size, bool) or not isinstance(max_map_size, int) or max_map_size < map_size
        ):
            raise ValueError(f"max_map_size must be None or an int >= map_size, not {max_map_size!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be a non-negative int, not {cache_size!r}")
        if ttl is not None and expiration_days is not None:
            raise ValueError("Pass ttl (seconds) or expiration_days, not both")
        seconds = _ttl_seconds(ttl, expiration_days)
        if purge_at_open not in (True, False, "background"):
            raise ValueError(f"purge_at_open must be True, False or 'background', not {purge_at_open!r}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, not {clock!r}")
        handle = open_env(
            os.fspath(base_dir),
            map_size=map_size,
            max_map_size=max_map_size,
            durable=durable,
            readonly=readonly,
        )
        try:
            root = tuple(to_prefix(root_prefix))
            backend = LmdbBackend(
                handle,
                clock=clock,
                ttl=seconds,
                readonly=readonly,
                track_atime=track_atime,
                atime_flush_interval=float(atime_flush_interval),
                atime_flush_reads=int(atime_flush_reads),
            )
            self._init_store(
                backend=backend,
                root=root,
                serialization_format=serialization_format,
                append_only=append_only,
                base_class_for_values=base_class_for_values,
            )
            backend.register_format(self._layout.extension)
        except BaseException:
            handle.release()
            raise
        backend.key_of = _key_namer(root, self._layout)
        self._lmdb = backend
        # Bound methods of the hot paths, looked up once.
        self._get_raw = backend.get_raw
        self._exists_raw = backend.exists_raw
        self._list_raw = backend.list_raw
        self._put_raw = backend.put_raw
        self._dump = self._coder.dump
        self._codec_decode = self._coder.codec.decode
        # The plain pickle codec: batches call pickle itself (which also reads views of records).
        self._plain_pickle = type(self._coder.codec) is PickleCodec
        self._text_only = isinstance(self._coder.codec, TextCodec)
        # What __setitem__ needs to queue a write in this thread's transaction (see Batch).
        self._handle: EnvHandle = backend.handle
        self._clock = clock
        self._queue_length = QUEUE_LENGTH
        self._queue_value_max = QUEUE_VALUE_MAX
        self._settings: dict[str, Any] = {
            "atime_flush_interval": float(atime_flush_interval),
            "atime_flush_reads": int(atime_flush_reads),
            "base_dir": handle.path,
            "cache_size": cache_size,
            "clock": clock,
            "durable": durable,
            "expiration_days": None,
            "map_size": map_size,
            "max_map_size": max_map_size,
            "purge_at_open": purge_at_open,
            "readonly": readonly,
            "track_atime": track_atime,
            "ttl": backend.ttl,
        }
        self._cache = OrderedDict() if cache_size > 0 else None
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        if backend.ttl is not None and purge_at_open and not backend.handle.readonly:
            try:
                self._purge_at_open(purge_at_open == "background")
            except BaseException:
                backend.close()  # (gives back its use of the environment)
                raise

    def _purge_at_open(self, background: bool) -> None:
        handle = self._lmdb.handle
        ttl = self._lmdb.ttl
        assert ttl is not None
        if ttl in handle.purged:
            return
        handle.purged.add(ttl)
        if background:
            threading.Thread(target=self._lmdb.purge, name="LmdbDict-purge", daemon=True).start()
        else:
            self._lmdb.purge()

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted: ``type(d)(**d.get_params())`` opens the same database."""
        params = {**self._common_params(), **self._settings, "root_prefix": self._root}
        return dict(sorted(params.items()))

    @property
    def base_dir(self) -> str:
        """The absolute path of the database directory."""
        path: str = self._settings["base_dir"]
        return path

    # ------------------------------------------------------------ hot paths

    def _lkey(self, key: NonEmptySafeStrTuple) -> tuple[bytes, bytes]:
        """The LMDB key of ``key`` (and the location kept for hashed keys), cached."""
        lk = self._lkeys.get(key)
        if lk is None:
            lk = self._lmdb.lmdb_key(self._target(key).loc)
            if len(self._lkeys) >= _LKEY_CACHE_LIMIT:
                self._lkeys.clear()
            self._lkeys[cache_key(key)] = lk
        return lk

    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        """The value stored under ``key``; KeyError when absent."""
        if type(key) is str:  # the hot path: a str key straight to its LMDB key (as in __setitem__)
            return self._get_at(key, (self._lkeys.get(key) or self._lkey_of_str(key))[0])
        return self._get(to_key(key))

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        return self._get_at(key, (self._lkeys.get(key) or self._lkey(key))[0])

    def _get_at(self, key: str | NonEmptySafeStrTuple, lkey: bytes) -> ValueType:
        """The value of ``key``, stored at ``lkey`` (through the cache if there is one)."""
        cache = self._cache
        if cache is not None:
            return self._get_cached(key, lkey, cache)
        data = self._get_raw(lkey)
        if data is None:
            raise KeyError(to_key(key))
        return self._loaded(key, data)

    def _loaded(self, key: str | NonEmptySafeStrTuple, data: bytes) -> ValueType:
        """The value in ``data``, stored under ``key`` (errors name the key and where it is)."""
        try:
            value: ValueType = self._codec_decode(data)
        except Exception:
            k = to_key(key)
            return self._decode(k, self._target(k).loc, data)
        base = self._coder.base_class_for_values
        if base is not None and not isinstance(value, base):
            k = to_key(key)
            return self._decode(k, self._target(k).loc, data)
        return value

    def _get_cached(
        self, key: str | NonEmptySafeStrTuple, lkey: bytes, cache: OrderedDict[bytes, tuple[bytes, Any]]
    ) -> ValueType:
        """The value of ``key`` (at ``lkey``) from the cache if its version is still the stored one."""
        with self._cache_lock:
            hit = cache.get(lkey)
        got = self._lmdb.get_versioned(lkey, None if hit is None else hit[0])
        if got is None:
            with self._cache_lock:
                cache.pop(lkey, None)
            raise KeyError(to_key(key))
        version, data = got
        if data is None:
            assert hit is not None
            with self._cache_lock:
                if lkey in cache:
                    cache.move_to_end(lkey)
            value: ValueType = hit[1]
            return value
        value = self._loaded(key, data)
        with self._cache_lock:
            cache[lkey] = (version, value)
            cache.move_to_end(lkey)
            while len(cache) > self._cache_size:
                cache.popitem(last=False)
        return value

    def _decode(self, key: NonEmptySafeStrTuple, loc: tuple[str, ...], data: bytes) -> ValueType:
        coder = self._coder
        try:
            value: ValueType = coder.codec.decode(data)
        except Exception:
            value = coder.decode(key, data, lambda: self._lmdb.where(loc))
        else:
            base = coder.base_class_for_values
            if base is not None and not isinstance(value, base):
                coder.decode(key, data, lambda: self._lmdb.where(loc))
        return value

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        """Store ``value``; KEEP_CURRENT does nothing, DELETE_CURRENT deletes."""
        if type(value) not in PLAIN_VALUE_TYPES:  # a joker, flag or PersiDict: the general rules
            super().__setitem__(key, value)
        elif type(key) is str and self._plain_puts:
            # The hot path: a str key straight to its LMDB key, the value to bytes.
            lk = self._lkeys.get(key) or self._lkey_of_str(key)
            try:
                data = self._dump(value)
            except Exception:
                self._set(to_key(key), value)  # the error that names the key (or a retry that succeeds)
                return
            h = self._handle
            batch = h.batch
            if (
                batch is not None
                and batch.queue_owner is self._lmdb
                and h.batch_owner == _get_ident()
                and len(data) <= self._queue_value_max
            ):  # inside this thread's transaction: Batch.enqueue's work, without the call
                queue = batch.queue
                queue.append((lk, data, self._clock()))
                if len(queue) >= self._queue_length:
                    batch.flushed()
            else:
                self._put_raw(lk, data)
        else:
            self._set(to_key(key), value)

    def _lkey_of_str(self, key: str) -> tuple[bytes, bytes]:
        """``_lkey`` of a str key, cached under the str too (it hashes apart from the tuple)."""
        lk = self._lkey(to_key(key))
        self._lkeys[key] = lk
        return lk

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        data = self._coder.encode(key, value)
        if self._append_only:
            try:
                self._lmdb.write(self._target(key).loc, data, precondition=IF_ABSENT)
            except PreconditionFailed:
                raise refuse_overwrite(key) from None
            return
        self._put_raw(self._lkeys.get(key) or self._lkey(key), data)

    # ------------------------------------------------------------ batches: one transaction each

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store every (key, value) of a mapping, an iterable of pairs, and ``kwargs``: ``set_many``.

        One transaction: every value is checked and encoded first, then all
        of it is written, or (on an error) none of it. This is the
        bulk-loading path, at close to raw LMDB speed.
        """
        self._write_pairs(_pairs_of(other, kwargs), None)

    def set_many(
        self,
        items: Mapping[Any, ValueType | Joker] | Iterable[tuple[Any, ValueType | Joker]],
        *,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> None:
        """Write many items (a mapping or (key, value) pairs) in one LMDB transaction.

        Every key is normalised, and every value checked and encoded, before
        the first write: a bad item raises and leaves the dict unchanged. A
        key given twice is written once, with its last value; jokers act as in
        ``d[k] = v``. Inside ``transaction()`` the writes join it. Only an
        append-only dict's existing keys can fail on their own (each a
        MutationPolicyError; a BatchError names them when several fail), the
        others being written; any LMDB failure (a full disk) is a BackendError
        and nothing is written. ``max_workers`` is accepted (and checked) for
        the common API: one transaction has one writer. ``progress`` sees
        each item once the transaction has committed.
        """
        self._workers(max_workers)
        self._write_pairs(_pairs_of(items, {}), progress)

    def _write_pairs(self, pairs: Iterable[tuple[Any, Any]], progress: ProgressOption) -> None:
        """``set_many``'s work: encode every pair, then write them in one transaction."""
        self._check_open()
        silent = progress is None or progress is False
        recs, keys, jokers = self._prepared(pairs, want_keys=self._append_only or not silent)
        if silent:
            self._write_prepared(recs, keys, jokers, None)
            return
        with Reporter(progress, total=len(recs), desc="set_many") as rep:
            self._write_prepared(recs, keys, jokers, rep)

    def _write_prepared(
        self,
        recs: dict[tuple[bytes, bytes], Any],
        keys: dict[tuple[bytes, bytes], Any] | None,
        jokers: bool,
        rep: Reporter | None,
    ) -> None:
        """Write what ``_prepared`` made in one transaction; report each item to ``rep`` once committed."""
        if not recs:
            return
        writes: Collection[tuple[tuple[bytes, bytes], bytes]]
        if jokers:
            writes = [(lk, data) for lk, data in recs.items() if not isinstance(data, Joker)]
            deletes = [lk[0] for lk, data in recs.items() if data is DELETE_CURRENT]
        else:
            writes, deletes = recs.items(), []
        written, _ = self._lmdb.put_many(writes, deletes, if_absent=self._append_only)
        failures: list[tuple[object, Exception]] = []
        if self._append_only:
            assert keys is not None
            for (lk, _), ok in zip(writes, written, strict=True):
                if not ok:
                    k = to_key(keys[lk])
                    failures.append((k, refuse_overwrite(k)))
        if rep is not None:
            assert keys is not None
            failed = {k for k, _ in failures}
            for lk in recs:
                k = to_key(keys[lk])
                rep.advance(k, ok=k not in failed)
        if failures:
            raise batch_error("set_many", failures)

    def _prepared(
        self, pairs: Iterable[tuple[Any, Any]], *, want_keys: bool
    ) -> tuple[dict[tuple[bytes, bytes], Any], dict[tuple[bytes, bytes], Any] | None, bool]:
        """Each item's (LMDB key, kept location) -> its encoded value or joker, the last of each key.

        Every key and value is checked here, before anything is written. With
        ``want_keys`` also (LMDB key, kept location) -> the key as given.
        Last, whether some item is a joker (KEEP_CURRENT or DELETE_CURRENT).
        """
        if self._plain_pickle:  # the plain pickle codec: pickle.dumps itself, called from here
            dump: Callable[[Any, int], bytes] = pickle.dumps
            protocol = PICKLE_PROTOCOL
        else:
            dump, protocol = (lambda value, _: self._dump(value)), 0
        plain = PLAIN_VALUE_TYPES if self._coder.base_class_for_values is None and not self._text_only else ()
        recs: dict[tuple[bytes, bytes], Any] = {}
        keys: dict[tuple[bytes, bytes], Any] | None = {} if want_keys else None
        lkey_of = self._lkeys.get
        jokers = False
        for key, value in pairs:
            if type(key) is str:
                lk = lkey_of(key) or self._lkey_of_str(key)
            else:
                k = to_key(key)
                lk = lkey_of(k) or self._lkey(k)
            if type(value) in plain:
                try:
                    data = dump(value, protocol)
                except Exception:
                    data = self._coder.encode(to_key(key), value)  # the error that names the key
            else:
                data = self._payload(key, value)
                jokers = jokers or isinstance(data, Joker)
            recs[lk] = data
            if keys is not None:
                keys[lk] = key
        return recs, keys, jokers

    def _payload(self, key: Any, value: Any) -> Any:
        """What ``set_many`` stores for (``key``, ``value``): the encoded value, or the joker; checked."""
        ((k, v),) = self._checked_items([(key, value)], {})
        return v if isinstance(v, Joker) else self._coder.encode(k, v)

    def _set_serialised_many(
        self, items: list[tuple[NonEmptySafeStrTuple, Any, Any]], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        """Store each (key, value, encoded value) in one transaction (``persidict.copy``'s writer).

        A failure of the transaction (nothing was written) is every item's outcome.
        """
        self._check_open()
        writes = [(self._lkeys.get(k) or self._lkey(k), payload) for k, _, payload in items]
        outcomes: list[Any]
        try:
            written, _ = self._lmdb.put_many(writes, if_absent=self._append_only)
        except Exception as e:
            outcomes = [e] * len(items)
        else:
            outcomes = [
                None if ok else refuse_overwrite(k) for (k, _, _), ok in zip(items, written, strict=True)
            ]
        return _reported(outcomes, on_done)

    def _discard_many(
        self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        """Delete the keys in one transaction: whether each existed.

        A failure of the transaction (any LMDB error: nothing was deleted) is
        raised as it is, not once per key.
        """
        _, deleted = self._lmdb.put_many((), [(self._lkeys.get(k) or self._lkey(k))[0] for k in keys])
        return _reported(list(deleted), on_done)

    def _found_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        with_etags: bool,
        max_workers: int | None,
        progress: ProgressOption,
    ) -> dict[tuple[str, ...], Any]:
        """Read many keys in one LMDB read transaction: ``{key: value}`` of those that exist.

        A consistent snapshot (inside ``transaction()``, it sees the block's
        writes). The keys of the result are NonEmptySafeStrTuples, in the
        order asked. With ``with_etags=True`` each entry is ``(value, etag)``.
        Every key is checked before the first read. Missing (and expired)
        keys are left out; a key whose record cannot be decoded fails on its
        own (CorruptValueError), the others being read: the exception itself
        is raised for one failed key, else a BatchError naming every failed
        key. ``max_workers`` is accepted (and checked) for the common API.
        """
        self._workers(max_workers)
        self._check_open()
        resolved = self._resolved(keys)
        if progress is None or progress is False:
            found, failures = self._read_many(resolved, with_etags)
        else:
            unique = list(dict.fromkeys(k for k, _, _ in resolved))
            with Reporter(progress, total=len(unique), desc="get_many") as rep:
                found, failures = self._read_many(resolved, with_etags)
                for k in unique:
                    rep.advance(k, ok=k not in failures)
        if failures:
            order = dict.fromkeys(k for k, _, _ in resolved if k in failures)
            raise batch_error("get_many", [(k, failures[k]) for k in order])
        return found  # type: ignore[return-value]

    def _get_many(
        self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        """Each key's (value, ETag), ABSENT, or the exception reading it raised: one read transaction."""
        self._check_open()
        resolved = [self._resolved_key(k) for k in keys]
        try:
            found, failures = self._read_many(resolved, True)
        except Exception as e:
            return _reported([e] * len(keys), on_done)
        return _reported([failures.get(k) or found.get(k, ABSENT) for k in keys], on_done)

    def _resolved(self, keys: Iterable[object]) -> list[_Resolved]:
        """(key, LMDB key, where its value starts in its record) of each of ``keys``, all checked first."""
        given = list(keys)
        try:
            return list(map(self._named.__getitem__, given))  # type: ignore[arg-type]  # (str keys read before)
        except (KeyError, TypeError):  # one new, or unhashable (a list of str)
            return [self._resolved_any(key) for key in given]

    def _resolved_any(self, key: object) -> _Resolved:
        """``_resolved_key`` of any key as given (checked)."""
        if type(key) is str:
            return self._named.get(key) or self._name_str(key)
        return self._resolved_key(to_key(key))

    def _resolved_key(self, key: NonEmptySafeStrTuple) -> _Resolved:
        """(``key``, its LMDB key, where its value starts in its record)."""
        lkey, kept = self._lkeys.get(key) or self._lkey(key)
        return key, lkey, _VALUE_AT + len(kept)

    def _name_str(self, key: str) -> _Resolved:
        """``_resolved_key`` of a str key (checked), remembered for batch reads."""
        lkey, kept = self._lkeys.get(key) or self._lkey_of_str(key)
        found = (to_key(key), lkey, _VALUE_AT + len(kept))
        if len(self._named) >= _LKEY_CACHE_LIMIT:
            self._named.clear()
        self._named[key] = found
        return found

    def _read_many(
        self, resolved: list[_Resolved], with_etags: bool
    ) -> tuple[dict[NonEmptySafeStrTuple, Any], dict[NonEmptySafeStrTuple, Exception]]:
        """Read and decode the records of ``resolved`` in one read transaction.

        Returns the values found (``(value, etag)`` with ``with_etags``) and
        the keys that failed, with their exceptions.
        """
        found: dict[NonEmptySafeStrTuple, Any] = {}
        problems: list[tuple[NonEmptySafeStrTuple, bytes, bytes]] = []
        fresh: list[tuple[bytes, bytes, Any]] = []
        backend = self._lmdb
        plain = (
            self._cache is None and backend.ttl is None and not with_etags
            and self._plain_pickle and self._coder.base_class_for_values is None
        )
        if plain:
            backend.read_txn(lambda txn: self._read_plain(txn, resolved, found, problems))
        else:
            backend.read_txn(
                lambda txn: self._read_records(txn, resolved, with_etags, found, problems, fresh),
                buffers=True,
            )
        failures: dict[NonEmptySafeStrTuple, Exception] = {}
        if problems and self._examine(problems, found, failures, with_etags):
            found = {k: found[k] for k, _, _ in resolved if k in found}  # (back in the order asked)
        if fresh:
            self._cache_fill(fresh)
        if backend.tracks_atime:
            backend.touch_many(lkey for k, lkey, _ in resolved if k in found)
        return found, failures

    def _read_plain(
        self,
        txn: Any,
        resolved: list[_Resolved],
        found: dict[NonEmptySafeStrTuple, Any],
        problems: list[tuple[NonEmptySafeStrTuple, bytes, bytes]],
    ) -> None:
        """``_read_many``'s loop for pickles without ttl, cache, class check or ETags: the common case.

        Each value is unpickled straight from the record (a record's value
        starts after its header and, for a hashed key, the location it
        keeps: the ``kept`` of the key's ``lmdb_key``). What ``pickle.loads``
        cannot read goes to ``problems``, for ``_examine`` to decode with the
        codec (joblib's compressed files, whose magic numbers are no pickle
        opcodes, fail here) or to explain (a corrupt record); so do joblib's
        uncompressed files, whose values are joblib's wrappers.
        """
        found.clear()
        problems.clear()
        get = txn.cursor(db=self._handle.vdb).get
        loads = pickle.loads
        for key, lkey, start in resolved:
            rec = get(lkey)
            if rec is not None:
                try:
                    found[key] = loads(rec[start:])
                except Exception:
                    problems.append((key, lkey, bytes(rec)))
        if "joblib.numpy_pickle" in sys.modules and any(  # (unpickling joblib's wrappers imports it)
            t.__module__ == "joblib.numpy_pickle" for t in set(map(type, found.values()))
        ):
            for key, lkey, _ in resolved:
                if key in found and type(found[key]).__module__ == "joblib.numpy_pickle":
                    del found[key]
                    problems.append((key, lkey, bytes(get(lkey))))

    def _read_records(
        self,
        txn: Any,
        resolved: list[_Resolved],
        with_etags: bool,
        found: dict[NonEmptySafeStrTuple, Any],
        problems: list[tuple[NonEmptySafeStrTuple, bytes, bytes]],
        fresh: list[tuple[bytes, bytes, Any]],
    ) -> None:
        """``_read_many``'s loop in general: expiry, the cache, the class of values, ETags, any codec."""
        from .backends.lmdb import HEADER_SIZE, KEPT_AT, KEPT_LENGTH, MTIME, MTIME_AT, VERSION

        found.clear()
        problems.clear()
        fresh.clear()
        backend = self._lmdb
        ttl = backend.ttl
        now = self._clock() if ttl is not None else 0.0
        decode = self._codec_decode
        base = self._coder.base_class_for_values
        views = self._plain_pickle  # (other codecs may need bytes)
        cache = self._cache
        known: dict[bytes, tuple[bytes, Any]] = {}
        if cache is not None:
            with self._cache_lock:
                known = {lkey: hit for _, lkey, _ in resolved if (hit := cache.get(lkey)) is not None}
        prefix = backend.etag_prefix
        vsize = VERSION.size
        get = txn.cursor(db=self._handle.vdb).get
        for key, lkey, _ in resolved:
            rec = get(lkey)
            if rec is None:
                continue
            if len(rec) < HEADER_SIZE:
                problems.append((key, lkey, bytes(rec)))  # too short for a header: corrupt
                continue
            if ttl is not None and now - MTIME.unpack_from(rec, MTIME_AT)[0] > ttl:
                continue
            hit = known.get(lkey)
            if hit is not None and rec[:vsize] == hit[0]:
                value = hit[1]
            else:
                data = rec[HEADER_SIZE + KEPT_LENGTH.unpack_from(rec, KEPT_AT)[0] :]
                try:
                    value = decode(data if views else bytes(data))
                    if base is not None and not isinstance(value, base):
                        raise TypeError
                except Exception:
                    problems.append((key, lkey, bytes(rec)))
                    continue
                if cache is not None:
                    fresh.append((lkey, bytes(rec[:vsize]), value))
            if with_etags:
                txnid, seq = VERSION.unpack_from(rec)
                found[key] = (value, f"{prefix}{txnid}.{seq}")
            else:
                found[key] = value

    def _examine(
        self,
        problems: list[tuple[NonEmptySafeStrTuple, bytes, bytes]],
        found: dict[NonEmptySafeStrTuple, Any],
        failures: dict[NonEmptySafeStrTuple, Exception],
        with_etags: bool,
    ) -> bool:
        """Decode the records (copies) the read loops set aside with the full codec, or find the error.

        Returns whether some were decoded (added to ``found``, after the others).
        """
        from .backends.lmdb import HEADER_SIZE, KEPT_AT, KEPT_LENGTH, VERSION

        decoded = False
        for key, lkey, rec in problems:
            try:
                if len(rec) < HEADER_SIZE:
                    raise self._lmdb.short_record_error(lkey, len(rec))
                data = rec[HEADER_SIZE + KEPT_LENGTH.unpack_from(rec, KEPT_AT)[0] :]
                value = self._decode(key, self._target(key).loc, data)  # raises, naming the key
            except Exception as e:
                failures[key] = e
            else:  # (a codec that takes no views, a joblib file ...)
                decoded = True
                if with_etags:
                    txnid, seq = VERSION.unpack_from(rec)
                    found[key] = (value, f"{self._lmdb.etag_prefix}{txnid}.{seq}")
                else:
                    found[key] = value
        return decoded

    def _cache_fill(self, fresh: list[tuple[bytes, bytes, Any]]) -> None:
        """Cache (LMDB key, version, value) of values just decoded (bounded, as ``_get_cached`` does)."""
        cache = self._cache
        assert cache is not None
        with self._cache_lock:
            for lkey, version, value in fresh:
                cache[lkey] = (version, value)
                cache.move_to_end(lkey)
            while len(cache) > self._cache_size:
                cache.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is stored (a malformed key raises, as it can never be stored)."""
        if type(key) is str:
            return self._exists_raw((self._lkeys.get(key) or self._lkey_of_str(key))[0])
        return self._contains(to_key(key))

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        return self._exists_raw((self._lkeys.get(key) or self._lkey(key))[0])

    def _forget_targets(self) -> None:
        """Also start with empty caches of LMDB keys (a subdict's keys map to others) and listed names."""
        super()._forget_targets()
        # Key (cache_key of a NonEmptySafeStrTuple, or a str key as given) -> (LMDB key, kept location).
        self._lkeys: dict[object, tuple[bytes, bytes]] = {}
        # A str key as given -> (its key, its LMDB key and kept location), for get_many.
        self._named: dict[str, _Resolved] = {}
        # Location bytes relative to the root, as listed -> key; and those that hold no key of this dict.
        self._listed: dict[bytes, NonEmptySafeStrTuple] = {}
        self._foreign: set[bytes] = set()

    def _iter_keys(self) -> Iterator[NonEmptySafeStrTuple]:
        return itertools.chain.from_iterable(self._key_batches())  # (no Python frame per key)

    def _key_batches(self) -> Iterator[list[NonEmptySafeStrTuple]]:
        """This dict's keys, in lists of up to a thousand, each listed in one read transaction."""
        listed = self._listed
        foreign = self._foreign
        for raws in self._lmdb.list_raw_batches(self._root):
            # Names seen before map to their keys in one C loop; others are decoded.
            try:
                ks = list(operator.itemgetter(*raws)(listed)) if len(raws) > 1 else [listed[raws[0]]]
            except KeyError:  # a name not seen yet, or one that holds no key of this dict
                ks = list(filter(None, map(listed.get, raws)))
                if len(ks) + len(foreign.intersection(raws)) < len(raws):
                    ks = self._keys_named(raws)
            yield ks

    def _keys_named(self, raws: list[bytes]) -> list[NonEmptySafeStrTuple]:
        """The keys stored at the listed names ``raws`` (decoded, and remembered in ``_listed``)."""
        listed = self._listed
        foreign = self._foreign
        key_of = self._layout.key_of
        out: list[NonEmptySafeStrTuple] = []
        for raw in raws:
            k = listed.get(raw)
            if k is None:
                if raw in foreign:
                    continue
                k = key_of(raw.decode().split("/"))
                if len(listed) + len(foreign) >= _LKEY_CACHE_LIMIT:
                    listed.clear()
                    foreign.clear()
                if k is None:
                    foreign.add(raw)
                    continue
                listed[raw] = k
            out.append(k)
        return out

    def __len__(self) -> int:
        """The number of items: in constant time for a dict at the root of its database without ``ttl``.

        That dict counts LMDB's records when its serialisation format is the
        only one registered in the database (a database made by this version:
        see ``persidict.backends.lmdb_env.FORMAT``); otherwise, as for a
        subdict or a dict with a ``ttl``, the keys are listed and counted.
        (A record that another program writes into the database at a location
        that holds no key is counted in constant time, not when listed.)
        """
        if not self._root and self._lmdb.ttl is None:
            n = self._lmdb.entry_count(self._layout.extension)
            if n is not None:
                return n
        return sum(map(len, self._key_batches()))

    # ------------------------------------------------------------ LMDB extras

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group this thread's operations on this database into one LMDB write transaction.

        Reads inside the block see its writes; nested blocks (also through
        subdicts or other LmdbDicts on the same database) join the outermost
        one; it commits when the outermost block exits normally and rolls
        back if it raises. Other threads' and processes' writes wait until it
        ends; their reads see the state before it. Do not fork inside it.
        Plain writes inside are queued and written before anything else uses
        the transaction (see ``Batch``): an error they meet, such as a full
        map, may surface at a later operation of the block or at its exit.
        Any LMDB failure (a full map or disk, an I/O error) is a BackendError,
        and once one has happened the block commits nothing: its exit raises
        BackendError even if the block caught the first one.
        """
        self._check_open()
        handle = self._lmdb.handle
        if self._settings["readonly"]:
            from .errors import BackendError

            raise BackendError(
                "The database is read-only", backend=self._lmdb.describe(), operation="transaction"
            )
        handle.begin_batch()
        ok = False
        try:
            yield
            ok = True
        finally:
            handle.end_batch(commit=ok)

    def metadata(self, key: PersiDictKey) -> LmdbMetadata:
        """ETag, ctime, mtime, atime and size of ``key``; KeyError when absent."""
        k = to_key(key)
        meta = self._lmdb.metadata(self._target(k).loc)
        if meta is None:
            raise KeyError(k)
        return meta

    def purge(self, *, progress: ProgressOption = None) -> int:
        """Delete every expired item of the database; return how many were deleted.

        ``progress`` (see persidict.progress) sees each expired record found,
        once its transaction (a thousand records each) has committed; its
        ``key`` is the key of this dict the record holds, or None for a
        record of another format or outside this dict's ``root_prefix``.
        """
        self._check_open()
        if progress is None or progress is False:
            return self._lmdb.purge()
        found = self._lmdb.find_expired()
        with Reporter(progress, total=len(found), desc="purge") as rep:
            return self._lmdb.delete_expired(found, lambda key, _: rep.advance(key))

    def flush(self) -> None:
        """Write the recorded access times now."""
        self._check_open()
        self._lmdb.flush_atimes()

    @property
    def closed(self) -> bool:
        """Whether the dict was closed (by ``close()`` on it, one of its subdicts or copies)."""
        return self._lmdb.closed

    def _check_open(self) -> None:
        if self._lmdb.closed:
            from .backends.lmdb_env import closed_error

            raise closed_error(self.base_dir)

    def close(self) -> None:
        """Write the recorded access times and close the dict; closing again does nothing.

        Every later operation on it (and on its subdicts and copies) raises
        ValueError, as on a closed file. Writes queued in this thread's open
        ``transaction()`` still commit with it. The environment, shared by the
        LmdbDicts on this database in this process, closes with the last of them
        (waiting for transactions in flight). Close a dict once no other thread
        uses it.
        """
        self._lmdb.close()

    def __enter__(self) -> LmdbDict[ValueType]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key_namer(root: tuple[str, ...], layout: Layout) -> Callable[[tuple[str, ...]], object]:
    """The key, under ``root`` in ``layout``, stored at a location (None if none): for error messages."""

    def key_at(loc: tuple[str, ...]) -> object:
        if loc[: len(root)] != root:
            return None
        return layout.key_of(list(loc[len(root) :]))

    return key_at


def _ttl_seconds(ttl: object, expiration_days: object) -> float | None:
    """The ttl in seconds from ``ttl`` or ``expiration_days`` (at most one is given), None for no expiry."""
    if expiration_days is not None:
        return _positive_seconds("expiration_days", expiration_days, 86400.0)
    if ttl is not None:
        return _positive_seconds("ttl", ttl, 1.0)
    return None


def _positive_seconds(name: str, value: object, unit: float) -> float:
    """``value`` (in units of ``unit`` seconds, or a timedelta) in seconds: positive and finite.

    A ValueError (TypeError for a non-number) names the parameter ``name``.
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value) * unit
    else:
        raise TypeError(f"{name} must be a number or a datetime.timedelta, not {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be positive and finite, not {value!r}")
    return seconds


def _pairs_of(other: Any, kwargs: Mapping[str, Any]) -> Iterable[tuple[Any, Any]]:
    """The (key, value) pairs of ``update``'s arguments: a mapping (or duck-typed one) or pairs; kwargs."""
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(other, Mapping):
        pairs = other.items()
    elif hasattr(other, "keys"):
        pairs = ((k, other[k]) for k in other.keys())  # noqa: SIM118 - duck-typed mappings
    else:
        pairs = other
    if kwargs:
        pairs = itertools.chain(pairs, kwargs.items())
    return pairs


def _reported(outcomes: list[Any], on_done: OnDone | None) -> list[Any]:
    """``outcomes``, each told to ``on_done`` (index, outcome) first if it is given."""
    if on_done is not None:
        for i, outcome in enumerate(outcomes):
            on_done(i, outcome)
    return outcomes
