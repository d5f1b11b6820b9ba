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
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .backends.base import IF_ABSENT, PreconditionFailed
from .codecs import Codec
from .flags import Joker, ValueType
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
from .persi_dict import PLAIN_VALUE_TYPES
from .store_dict import StoreDict

if TYPE_CHECKING:
    from .backends.lmdb import LmdbBackend, LmdbMetadata
    from .backends.lmdb_env import EnvHandle



_LKEY_CACHE_LIMIT = 100_000
_get_ident = threading.get_ident
_UNSEEN: Any = object()

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

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store every (key, value) of a mapping, an iterable of pairs, and ``kwargs``.

        One transaction: all of it is written, or (on an error) none of it.
        This is the bulk-loading path, at close to raw LMDB speed.
        """
        if isinstance(other, Mapping):
            pairs: Iterable[tuple[Any, Any]] = other.items()
        elif hasattr(other, "keys"):
            pairs = ((k, other[k]) for k in other.keys())  # noqa: SIM118 - duck-typed mappings
        else:
            pairs = other
        if kwargs:
            pairs = itertools.chain(pairs, kwargs.items())
        if self._append_only or self._settings["readonly"]:
            with self.transaction():
                for k, v in pairs:
                    self[k] = v
            return
        with self.transaction():
            self._lmdb.put_many_raw(self._encoded(pairs, self._clock()))

    def _encoded(
        self, pairs: Iterable[tuple[Any, Any]], mtime: float
    ) -> Iterator[tuple[tuple[bytes, bytes], bytes, float]]:
        """((LMDB key, kept location), value bytes, ``mtime``) of each pair; jokers are done in place."""
        lkey_of = self._lkeys.get
        dump = self._dump
        base = self._coder.base_class_for_values
        plain = PLAIN_VALUE_TYPES
        for key, value in pairs:
            if type(value) not in plain:
                k = to_key(key)
                if isinstance(value, Joker):
                    super().__setitem__(k, value)
                    continue
                self._check_value(k, value)  # the rules for PersiDicts, flags, base classes
            try:
                if base is not None and not isinstance(value, base):
                    raise TypeError
                data = dump(value)
            except Exception:
                data = self._coder.encode(to_key(key), value)
            if type(key) is str:
                yield lkey_of(key) or self._lkey_of_str(key), data, mtime
            else:
                k = to_key(key)
                yield lkey_of(k) or self._lkey(k), data, mtime

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
        # Location bytes relative to the root, as listed -> key (None: no item of this dict).
        self._listed: dict[bytes, NonEmptySafeStrTuple | None] = {}

    def _iter_keys(self) -> Iterator[NonEmptySafeStrTuple]:
        listed = self._listed
        for raw in self._list_raw(self._root):
            k = listed.get(raw, _UNSEEN)
            if k is _UNSEEN:
                k = self._layout.key_of(raw.decode().split("/"))
                if len(listed) >= _LKEY_CACHE_LIMIT:
                    listed.clear()
                listed[raw] = k
            if k is not None:
                yield k

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

    def purge(self) -> int:
        """Delete every expired item of the database; return how many were deleted."""
        self._check_open()
        return self._lmdb.purge()

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
