"""PersistDict: the API of the PersistDict package (0.2), over LmdbDict.

A PersistDict user switches with one line, ``from persidict import
PersistDict``: the constructor takes PersistDict's parameters, keys are any
non-empty ``str``, and a database written by PersistDict 0.2 opens (its
items are copied into ours on first open; see ``PersistDict``).

Storage is LmdbDict's, in three namespaces of one LMDB database:

* ``persist_dict/values/<sha256 of the key>``: the value bytes, as the
  value serializer wrote them (a pickle by default);
* ``persist_dict/keys/<sha256 of the key>``: the key record — creation
  number, creation time and the key as the key serializer wrote it;
* ``persist_dict/info/...``: the creation counter, the marker of the
  one-time ``d(...)`` call and the database's format record.

A write of a new key puts its key record and its value in one transaction,
so every process sees both or neither.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import math
import numbers
import os
import pickle
import struct
import threading
import time
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import attrs
from typing_extensions import TypeVar

from .errors import CorruptValueError

if TYPE_CHECKING:
    from .backends.lmdb import LmdbMetadata
    from .lmdb_dict import LmdbDict

V = TypeVar("V", default=Any)

_log = logging.getLogger("persidict.persist_dict")

_VALUES = ("persist_dict", "values")
_KEYS = ("persist_dict", "keys")
_INFO = ("persist_dict", "info")
_FORMAT = "format"  # info: the format record, written when the database is first opened
_SEQ = "seq"  # info: the last creation number given
_CALLED = "already_called"  # info: the one-time d(...) call was made
_RECORD = struct.Struct("<Qd")  # key record header: creation number, ctime (then a tag byte and the key)
_MIN_BACKGROUND_TIMEOUT = 5.0
_PURGE_CHUNK = 500
_PARSED_LIMIT = 100_000
_MISSING: Any = object()


class AlreadyInitializedError(RuntimeError):
    """``d(...)``, the one-time bulk initialisation, was already called on this database."""


class KeySerializerMismatchError(ValueError):
    """A stored key does not read back with this PersistDict's key serializers.

    Raised instead of hiding the database's items: open it with the key
    serializers it was written with.
    """


@attrs.frozen
class ItemTimes:
    """When an item was created and last used (POSIX times)."""

    ctime: float
    """Creation (the first write since the key was last absent)."""
    atime: float
    """Last access: the last read or write, whichever is later (expiry counts from it)."""


@attrs.frozen
class _SerializerCodec:
    """The value codec of the inner LmdbDict: the user's value serializers (bytes in and out)."""

    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]
    extension: str = "val"

    def encode(self, value: Any) -> bytes:
        """The serializer's bytes of ``value``."""
        return self.dumps(value)

    def decode(self, data: bytes) -> Any:
        """The value of bytes written by ``encode``."""
        return self.loads(data)


@attrs.frozen
class _RawCodec:
    """Bytes stored as they are (key records)."""

    extension: str = "key"

    def encode(self, value: Any) -> bytes:
        """``value``, which is bytes."""
        if not isinstance(value, bytes):
            raise TypeError(f"a key record is bytes, not {type(value).__name__}")
        return value

    def decode(self, data: bytes) -> Any:
        """``data`` itself."""
        return data


def _digest(key: object) -> str:
    """The LmdbDict key of a PersistDict key: the hex sha256 of its UTF-8 (TypeError/ValueError if bad)."""
    if type(key) is not str:
        if not isinstance(key, str):
            raise TypeError(f"PersistDict keys are str, not {type(key).__name__} ({key!r})")
        key = str(key)
    if not key:
        raise ValueError("PersistDict keys are non-empty str: the empty string cannot be a key")
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _expiry_seconds(expiration_days: object) -> float | None:
    """``expiration_days`` (days or a timedelta; None: never) in seconds: positive and finite."""
    if expiration_days is None:
        return None
    if isinstance(expiration_days, datetime.timedelta):
        seconds = expiration_days.total_seconds()
    elif isinstance(expiration_days, numbers.Real) and not isinstance(expiration_days, bool):
        seconds = float(expiration_days) * 86400.0
    else:
        raise TypeError(
            f"expiration_days must be None, a number of days or a datetime.timedelta, not {expiration_days!r}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"expiration_days must be positive and finite (or None: never), not {expiration_days!r}"
        )
    return seconds


def _check_pair(kind: str, serializer: object, unserializer: object) -> None:
    """Both serializers of a kind are callables, or both None."""
    for name, f in ((f"{kind}_serializer", serializer), (f"{kind}_unserializer", unserializer)):
        if f is not None and not callable(f):
            raise TypeError(f"{name} must be callable or None, not {f!r}")
    if (serializer is None) != (unserializer is None):
        raise ValueError(f"Pass both {kind}_serializer and {kind}_unserializer, or neither")


def _check_settings(
    verbose: object, background_thread: object, key_size_limit: object, caching: object, name: object
) -> None:
    """TypeError / ValueError for a constructor setting of the wrong kind."""
    for flag_name, flag in (("verbose", verbose), ("caching", caching)):
        if not isinstance(flag, bool):
            raise TypeError(f"{flag_name} must be a bool, not {flag!r}")
    if not (background_thread is True or background_thread is False or background_thread == "disabled"):
        raise ValueError(f"background_thread must be True, False or 'disabled', not {background_thread!r}")
    if isinstance(key_size_limit, bool) or not isinstance(key_size_limit, int) or key_size_limit <= 0:
        raise ValueError(f"key_size_limit must be a positive int, not {key_size_limit!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {name!r}")


def _timeout(background_timeout: object) -> float:
    """``background_timeout`` in seconds, at least 5."""
    if isinstance(background_timeout, bool) or not isinstance(background_timeout, numbers.Real):
        raise TypeError(f"background_timeout must be a number of seconds, not {background_timeout!r}")
    seconds = float(background_timeout)
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(
            f"background_timeout must be a positive number of seconds, not {background_timeout!r}"
        )
    return max(seconds, _MIN_BACKGROUND_TIMEOUT)


class _ValuesView(ValuesView[V]):
    """Values in creation order, skipping keys deleted meanwhile."""

    _mapping: PersistDict[V]

    def __iter__(self) -> Iterator[V]:
        for _, value in self._mapping._items():
            yield value


class _ItemsView(ItemsView[str, V]):
    """(key, value) pairs in creation order, skipping keys deleted meanwhile."""

    _mapping: PersistDict[V]

    def __iter__(self) -> Iterator[tuple[str, V]]:
        yield from self._mapping._items()


class PersistDict(MutableMapping[str, V]):
    """A persistent dict with PersistDict's API, stored by LmdbDict in ``database_path``.

    Parameters (PersistDict's):

    * ``database_path``: the database folder (made if absent).
    * ``expiration_days``: items not read or written for this many days (a
      number or a ``timedelta``; None: never) are gone for every process;
      ``background_thread`` decides when they are deleted from the file.
    * ``verbose``: log what happens at INFO level instead of DEBUG, on the
      ``persidict.persist_dict`` logger (nothing is printed).
    * ``background_thread``: True deletes expired items in a background
      thread at open, False before the constructor returns, "disabled" not
      at open (``purge()`` does it on demand; expired items stay invisible).
    * ``key_serializer`` / ``key_unserializer``: applied to the stored copy
      of each key (it may return str or bytes, e.g. to encrypt keys at rest);
      give both or neither. Reopening with other ones raises
      ``KeySerializerMismatchError`` instead of losing the items.
    * ``value_serializer`` / ``value_unserializer``: value -> bytes -> value
      (pickle by default); give both or neither.
    * ``key_size_limit``: accepted and kept for compatibility; every key is
      stored under its sha256, so keys of any length work whatever it is.
    * ``caching``: keep the 128 last used values decoded in memory. Each read
      still checks the stored version, so a value written by another process
      is never served stale. Cached values are shared between reads: treat
      them as immutable.
    * ``background_timeout``: how long ``close()`` waits for the background
      thread (seconds, at least 5).
    * ``name``: the name in log messages (default: the folder's name).

    Extras: ``durable`` (LmdbDict's: sync each commit) and ``clock`` (the
    time source, for tests), keyword-only.

    Keys are any non-empty ``str`` (any characters, any length; a non-str is
    a TypeError, ``""`` a ValueError, for every operation); ``keys()`` lists
    them as given, in creation order (an overwrite keeps a key's place).
    ``metadata(key)`` gives its creation and last access times. Every
    operation acts on the database, so several instances, in one process or
    in several, see each other's writes at once.

    Opening a folder written by PersistDict 0.2 copies its items (keys,
    values, creation and access times, and whether ``d(...)`` was called)
    into this format, once; PersistDict 0.2's own databases in the folder are
    left untouched (see the README section "For PersistDict users").
    """

    def __init__(
        self,
        database_path: str | os.PathLike[str],
        expiration_days: float | datetime.timedelta | None = None,
        verbose: bool = False,
        background_thread: bool | Literal["disabled"] = True,
        key_serializer: Callable[[str], str | bytes] | None = None,
        key_unserializer: Callable[[Any], str] | None = None,
        value_serializer: Callable[[V], bytes] | None = None,
        value_unserializer: Callable[[bytes], V] | None = None,
        key_size_limit: int = 511,
        caching: bool = True,
        background_timeout: float = 30.0,
        name: str | None = None,
        *,
        durable: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(database_path, str | os.PathLike):
            raise TypeError(f"database_path must be a str or a path, not {database_path!r}")
        ttl = _expiry_seconds(expiration_days)
        _check_settings(verbose, background_thread, key_size_limit, caching, name)
        _check_pair("key", key_serializer, key_unserializer)
        _check_pair("value", value_serializer, value_unserializer)
        path = Path(os.path.abspath(os.fspath(database_path)))
        self._settings: dict[str, Any] = {
            "database_path": path,
            "expiration_days": expiration_days,
            "verbose": verbose,
            "background_thread": background_thread,
            "key_serializer": key_serializer,
            "key_unserializer": key_unserializer,
            "value_serializer": value_serializer,
            "value_unserializer": value_unserializer,
            "key_size_limit": key_size_limit,
            "caching": caching,
            "background_timeout": _timeout(background_timeout),
            "name": path.name if name is None else name,
            "durable": durable,
            "clock": clock,
        }
        self._ttl = ttl
        self._clock = clock
        self._dumps: Callable[[Any], bytes] = pickle.dumps if value_serializer is None else value_serializer
        self._key_serializer = key_serializer
        self._key_unserializer = key_unserializer
        self._level = logging.INFO if verbose else logging.DEBUG
        self._thread: threading.Thread | None = None
        # Digest -> (key record, creation number, key): records already read back and checked.
        self._parsed: dict[str, tuple[bytes, int, str]] = {}
        self._open_stores(path, value_unserializer, caching, durable, clock)
        try:
            self._prepare_database()
            self._check_stored_key()
            self._purge_at_open(background_thread)
        except BaseException:
            self.close()
            raise

    def _open_stores(
        self,
        path: Path,
        value_unserializer: Callable[[bytes], Any] | None,
        caching: bool,
        durable: bool,
        clock: Callable[[], float],
    ) -> None:
        """Open the three LmdbDicts (values, key records, info) on the database."""
        from .lmdb_dict import LmdbDict

        loads = pickle.loads if value_unserializer is None else value_unserializer
        codec = _SerializerCodec(self._dumps, loads)
        common: dict[str, Any] = {"base_dir": path, "durable": durable, "clock": clock}
        self._values: LmdbDict[Any] = LmdbDict(
            root_prefix=_VALUES,
            serialization_format=codec,
            cache_size=128 if caching else 0,
            track_atime=True,
            **common,
        )
        try:
            self._keyrecs: LmdbDict[bytes] = LmdbDict(
                root_prefix=_KEYS, serialization_format=_RawCodec(), **common
            )
            try:
                self._info: LmdbDict[Any] = LmdbDict(root_prefix=_INFO, **common)
            except BaseException:
                self._keyrecs.close()
                raise
        except BaseException:
            self._values.close()
            raise

    # ------------------------------------------------------------ settings

    @property
    def database_path(self) -> Path:
        """The database folder (absolute)."""
        path: Path = self._settings["database_path"]
        return path

    @property
    def expiration_days(self) -> float | datetime.timedelta | None:
        """Days without a read or write after which an item expires (None: never)."""
        days: float | datetime.timedelta | None = self._settings["expiration_days"]
        return days

    @property
    def verbose(self) -> bool:
        """Whether messages are logged at INFO (else DEBUG) level."""
        return bool(self._settings["verbose"])

    @property
    def background_thread(self) -> bool | Literal["disabled"]:
        """When expired items are deleted at open: True (in a thread), False (at once), "disabled"."""
        value: bool | Literal["disabled"] = self._settings["background_thread"]
        return value

    @property
    def key_serializer(self) -> Callable[[str], str | bytes] | None:
        """The serializer of the stored copy of each key (None: the key itself)."""
        return self._key_serializer

    @property
    def key_unserializer(self) -> Callable[[Any], str] | None:
        """The inverse of ``key_serializer``."""
        return self._key_unserializer

    @property
    def value_serializer(self) -> Callable[[V], bytes] | None:
        """value -> bytes (None: pickle)."""
        f: Callable[[V], bytes] | None = self._settings["value_serializer"]
        return f

    @property
    def value_unserializer(self) -> Callable[[bytes], V] | None:
        """bytes -> value (None: pickle)."""
        f: Callable[[bytes], V] | None = self._settings["value_unserializer"]
        return f

    @property
    def key_size_limit(self) -> int:
        """Kept for compatibility: keys of any length are stored (under their sha256)."""
        return int(self._settings["key_size_limit"])

    @property
    def caching(self) -> bool:
        """Whether the 128 last used values are kept decoded in memory (never stale)."""
        return bool(self._settings["caching"])

    @property
    def background_timeout(self) -> float:
        """Seconds ``close()`` waits for the background thread (at least 5)."""
        return float(self._settings["background_timeout"])

    @property
    def name(self) -> str:
        """The name in log messages (default: the folder's name)."""
        return str(self._settings["name"])

    def _say(self, message: str, *args: object) -> None:
        """Log ``message`` (%-style ``args``) with this dict's name, at INFO if verbose else DEBUG."""
        if _log.isEnabledFor(self._level):
            _log.log(self._level, "PersistDict %r: " + message, self.name, *args)

    # ------------------------------------------------------------ opening

    def _transaction(self) -> AbstractContextManager[None]:
        """One LMDB write transaction for this thread (nested blocks join it)."""
        return self._values.transaction()

    def _prepare_database(self) -> None:
        """On a database's first open: copy a PersistDict 0.2 database's items, write the format record."""
        if _FORMAT in self._info:
            return
        with self._transaction():
            if _FORMAT in self._info:
                return
            migrated = self._migrate()
            self._info[_FORMAT] = {"format": 1, "created": self._clock(), "migrated_from": migrated}
        if migrated is not None:
            self._say(
                "copied %d items of PersistDict %s at %s",
                migrated["items"], migrated["version"], self.database_path,
            )

    def _migrate(self) -> dict[str, Any] | None:
        """Copy the items of a PersistDict 0.2 database in the folder (inside this thread's transaction)."""
        from .persist_migrate import has_persistdict_0_2, read_persistdict_0_2

        handle = self._values._lmdb.handle
        batch = handle.batch
        assert batch is not None and handle.env is not None  # (inside this thread's transaction)
        txn = batch.flushed()
        if not has_persistdict_0_2(txn):
            return None
        old = read_persistdict_0_2(handle.env, txn, self._key_unserializer)
        seq = self._info.get(_SEQ, 0)
        for item in old.items:
            h = _digest(item.key)
            seq += 1
            self._keyrecs[h] = self._record(seq, item.ctime, item.key)
            # Written with the old access time as its write time: the item's atime (see metadata).
            self._values._lmdb.put_many_raw([(self._lkey(h), item.value, item.atime)])
        self._info[_SEQ] = seq
        if old.already_called:
            self._info[_CALLED] = True
        now = self._clock()
        return {"version": old.version, "items": len(old.items), "skipped": old.skipped, "time": now}

    def _check_stored_key(self) -> None:
        """Read one stored key back: KeySerializerMismatchError at once if the key serializers differ."""
        for k in self._keyrecs:
            h = k[-1]
            rec = self._keyrecs.get(k)
            if rec is not None:
                self._parse(h, rec)
                return

    def _purge_at_open(self, background_thread: bool | Literal["disabled"]) -> None:
        """Delete the expired items now, in a background thread, or not (see ``background_thread``)."""
        if self._ttl is None or background_thread == "disabled":
            return
        if background_thread is False:
            self.purge()
            return
        self._thread = threading.Thread(
            target=self._purge_quietly, name=f"PersistDict-purge-{self.name}", daemon=True
        )
        self._thread.start()

    def _purge_quietly(self) -> None:
        """``purge()`` in the background thread: errors are logged (the dict may be closed meanwhile)."""
        try:
            self.purge()
        except Exception as e:
            self._say("background purge stopped: %s: %s", type(e).__name__, e)

    # ------------------------------------------------------------ records

    def _lkey(self, h: str) -> tuple[bytes, bytes]:
        """The inner LMDB key of the value of digest ``h``."""
        values = self._values
        return values._lkeys.get(h) or values._lkey_of_str(h)

    def _record(self, seq: int, ctime: float, key: str) -> bytes:
        """The key record: creation number, ctime, then the key as the key serializer writes it."""
        stored: object = key if self._key_serializer is None else self._key_serializer(key)
        if isinstance(stored, str):
            payload = b"s" + stored.encode("utf-8", "surrogatepass")
        elif isinstance(stored, bytes | bytearray | memoryview):
            payload = b"b" + bytes(stored)
        else:
            raise TypeError(
                f"key_serializer must return str or bytes, not {type(stored).__name__} (key {key!r})"
            )
        return _RECORD.pack(seq, ctime) + payload

    def _parse(self, h: str, rec: bytes) -> tuple[int, float, str]:
        """(creation number, ctime, key) of the key record ``rec`` stored under digest ``h``."""
        if len(rec) <= _RECORD.size:
            raise CorruptValueError(
                f"The key record {h} is {len(rec)} bytes long, too short to be one",
                backend=self._keyrecs._lmdb.describe(), operation="read",
            )
        seq, ctime = _RECORD.unpack_from(rec)
        tag, payload = rec[_RECORD.size : _RECORD.size + 1], rec[_RECORD.size + 1 :]
        stored: str | bytes = payload.decode("utf-8", "surrogatepass") if tag == b"s" else payload
        try:
            key = stored if self._key_unserializer is None else self._key_unserializer(stored)
        except Exception as e:
            raise self._mismatch(stored, f"key_unserializer raised {type(e).__name__}: {e}") from e
        if not isinstance(key, str) or not key or _digest(key) != h:
            raise self._mismatch(stored, f"it reads back as {key!r}, not the key it was stored under")
        return seq, ctime, key

    def _mismatch(self, stored: str | bytes, why: str) -> KeySerializerMismatchError:
        return KeySerializerMismatchError(
            f"PersistDict {self.name!r} at {self.database_path}: the stored key {stored[:80]!r} does not "
            f"read back with this key_unserializer ({why}). Open the database with the key serializers "
            "it was written with; nothing was changed."
        )

    def _live_meta(self, h: str) -> LmdbMetadata | None:
        """The inner metadata of digest ``h``'s value; None if absent or expired."""
        try:
            meta = self._values.metadata(h)
        except KeyError:
            return None
        if self._ttl is not None and self._expired(meta, self._clock()):
            return None
        return meta

    def _expired(self, meta: LmdbMetadata, now: float) -> bool:
        """Whether an item with this inner metadata was neither read nor written for longer than expiry."""
        assert self._ttl is not None
        last = meta.mtime if meta.atime is None or meta.atime < meta.mtime else meta.atime
        return now - last > self._ttl

    def _is_live(self, h: str) -> bool:
        """Whether digest ``h`` holds an item (not expired)."""
        if self._ttl is None:
            return h in self._keyrecs
        return h in self._keyrecs and self._live_meta(h) is not None

    def _records(self) -> list[tuple[int, str, str]]:
        """(creation number, digest, key) of every live item, in creation order."""
        out: list[tuple[int, str, str]] = []
        keyrecs = self._keyrecs
        parsed = self._parsed
        for k in keyrecs:
            rec = keyrecs.get(k)
            if rec is None:
                continue  # deleted meanwhile
            h = k[-1]
            known = parsed.get(h)
            if known is not None and known[0] == rec:
                out.append((known[1], h, known[2]))
                continue
            seq, _, key = self._parse(h, rec)
            if len(parsed) >= _PARSED_LIMIT:
                parsed.clear()
            parsed[h] = (rec, seq, key)
            out.append((seq, h, key))
        out.sort()
        if self._ttl is not None:
            out = [r for r in out if self._live_meta(r[1]) is not None]
        return out

    def _encode(self, key: str, value: Any) -> bytes:
        """The value serializer's bytes of ``value`` (its errors name ``key``)."""
        try:
            data = self._dumps(value)
        except Exception as e:
            e.add_note(f"(serialising the value of PersistDict key {key!r})")
            raise
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError(
                    f"value_serializer must return bytes, not {type(data).__name__} (key {key!r})"
                )
            data = bytes(data)
        return data

    def _write_all(self, entries: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (digest, key, value bytes) entries in one transaction; new keys get key records."""
        with self._transaction():
            now = self._clock()
            first = seq = -1
            for h, key, data in entries:
                if not self._is_live(h):  # new (or expired: created anew)
                    if seq < 0:
                        first = seq = int(self._info.get(_SEQ, 0))
                    seq += 1
                    self._keyrecs[h] = self._record(seq, now, key)
                self._values._lmdb.put_raw(self._lkey(h), data)
            if seq != first:
                self._info[_SEQ] = seq

    def _delete(self, h: str) -> None:
        """Delete the value and key record of digest ``h`` (inside a transaction)."""
        self._values.discard(h)
        self._keyrecs.discard(h)

    # ------------------------------------------------------------ Mapping

    def __getitem__(self, key: str) -> V:
        """The value of ``key``; KeyError when absent (or expired)."""
        h = _digest(key)
        if self._ttl is not None and self._live_meta(h) is None:
            raise KeyError(key)
        try:
            value: V = self._values[h]
        except KeyError:
            raise KeyError(key) from None
        except CorruptValueError as e:
            raise CorruptValueError(
                f"Cannot decode the value of PersistDict key {key!r} (was the database written with other "
                f"value serializers?): {e.message}",
                backend=e.backend, operation="decode", key=key,
            ) from e
        return value

    def __setitem__(self, key: str, value: V) -> None:
        """Store ``value`` under ``key`` (a new key goes last in ``keys()``; an overwrite keeps its place)."""
        h = _digest(key)
        self._write_all(((h, key, self._encode(key, value)),))

    def __delitem__(self, key: str) -> None:
        """Delete ``key``; KeyError when absent (or expired)."""
        h = _digest(key)
        with self._transaction():
            present = h in self._keyrecs
            live = present and self._is_live(h)
            if present:
                self._delete(h)
        if not live:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` holds an item (TypeError for a non-str, ValueError for "")."""
        h = _digest(key)
        if self._ttl is None:
            return h in self._values
        return self._live_meta(h) is not None

    def __iter__(self) -> Iterator[str]:
        """The keys in creation order (a snapshot taken when iteration starts)."""
        return iter([key for _, _, key in self._records()])

    def __reversed__(self) -> Iterator[str]:
        """The keys, newest first."""
        return iter([key for _, _, key in reversed(self._records())])

    def __len__(self) -> int:
        """How many items are stored (not expired)."""
        if self._ttl is None:
            return len(self._keyrecs)
        return len(self._records())

    def _items(self) -> Iterator[tuple[str, V]]:
        """(key, value) in creation order, skipping keys deleted meanwhile."""
        for key in self:
            try:
                yield key, self[key]
            except KeyError:
                continue

    def values(self) -> ValuesView[V]:
        """The values, in creation order of their keys."""
        return _ValuesView(self)

    def items(self) -> ItemsView[str, V]:
        """The (key, value) pairs, in creation order."""
        return _ItemsView(self)

    def __repr__(self) -> str:
        return repr(dict(self._items()))

    def __str__(self) -> str:
        return str(dict(self._items()))

    def copy(self) -> dict[str, V]:
        """A plain dict of the items (a snapshot)."""
        return dict(self._items())

    def __ior__(self, other: Any) -> Self:
        """``d |= other`` updates ``d`` in place."""
        self.update(other)
        return self

    # ------------------------------------------------------------ bulk and atomic operations

    def _entries(self, other: Any, kwargs: Mapping[str, Any]) -> list[tuple[str, str, bytes]]:
        """(digest, key, value bytes) of a mapping, an iterable of pairs and ``kwargs``, checked first."""
        if isinstance(other, Mapping):
            pairs: Iterable[tuple[Any, Any]] = other.items()
        elif hasattr(other, "keys"):
            pairs = ((k, other[k]) for k in other.keys())  # noqa: SIM118 - duck-typed mappings
        else:
            pairs = other
        out = []
        for pair in (*pairs, *kwargs.items()):
            key, value = pair
            out.append((_digest(key), str(key), self._encode(key, value)))
        return out

    def update(self, other: Any = (), /, **kwargs: V) -> None:
        """Store the items of a mapping, an iterable of pairs and ``kwargs``: all, or (on an error) none."""
        self._write_all(self._entries(other, kwargs))

    def __call__(self, other: Any = (), /, **kwargs: V) -> Self:
        """The one-time bulk initialisation: store the items and return the dict.

        Applies once per database, across processes: a later call, here or in
        any process, raises AlreadyInitializedError and stores nothing.
        """
        entries = self._entries(other, kwargs)
        with self._transaction():
            called = bool(self._info.get(_CALLED, False))
            if not called:
                self._write_all(entries)
                self._info[_CALLED] = True
        if called:
            raise AlreadyInitializedError(
                f"PersistDict {self.name!r} at {self.database_path} was already initialised with d(...): "
                "that call applies once per database; use d.update(...) to add items"
            )
        self._say("initialised with %d items", len(entries))
        return self

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``; KeyError if none is given)."""
        h = _digest(key)
        with self._transaction():
            try:
                value = self[key]
            except KeyError:
                value = _MISSING
            else:
                self._delete(h)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return value

    def popitem(self) -> tuple[str, V]:
        """Remove and return the newest (key, value), as ``dict.popitem`` does; KeyError when empty."""
        with self._transaction():
            for _, h, key in reversed(self._records()):
                try:
                    value = self[key]
                except KeyError:
                    continue
                self._delete(h)
                return key, value
        raise KeyError("popitem(): PersistDict is empty")

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``; if absent, store ``default`` first (atomically)."""
        h = _digest(key)
        data = self._encode(key, default)
        with self._transaction():
            try:
                return self[key]
            except KeyError:
                self._write_all(((h, key, data),))
                return default

    def clear(self) -> None:
        """Delete every item (one transaction)."""
        with self._transaction():
            self._values.clear()
            self._keyrecs.clear()

    # ------------------------------------------------------------ times, expiry, closing

    def metadata(self, key: str) -> ItemTimes:
        """When ``key`` was created and last read or written; KeyError when absent (or expired)."""
        h = _digest(key)
        meta = self._live_meta(h)
        rec = self._keyrecs.get(h)
        if meta is None or rec is None:
            raise KeyError(key)
        _, ctime, _ = self._parse(h, rec)
        atime = meta.mtime if meta.atime is None or meta.atime < meta.mtime else meta.atime
        return ItemTimes(ctime=ctime, atime=atime)

    def purge(self) -> int:
        """Delete the expired items from the database now; return how many were deleted."""
        if self._ttl is None:
            return 0
        candidates = [k[-1] for k in self._keyrecs if self._live_meta(k[-1]) is None]
        deleted = 0
        for i in range(0, len(candidates), _PURGE_CHUNK):
            with self._transaction():
                for h in candidates[i : i + _PURGE_CHUNK]:
                    if h in self._keyrecs and self._live_meta(h) is None:  # (still expired)
                        self._delete(h)
                        deleted += 1
        if deleted:
            self._say("deleted %d expired items", deleted)
        return deleted

    def flush(self) -> None:
        """Write the recorded access times now (else within 5 s, at ``close()`` or at exit)."""
        self._values.flush()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._values.closed

    def close(self) -> None:
        """Wait for the background thread (up to ``background_timeout``), save access times, close."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.background_timeout)
        for store in ("_values", "_keyrecs", "_info"):
            inner = self.__dict__.get(store)
            if inner is not None:
                inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # A PersistDict sent to another process reopens the same database.
        return (_reopen, (self._settings,))


def _reopen(settings: dict[str, Any]) -> PersistDict[Any]:
    """Unpickle a PersistDict by opening its database with its settings."""
    return PersistDict(**settings)
