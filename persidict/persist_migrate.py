"""Reading a database written by PersistDict 0.2 (for ``PersistDict``'s migration).

PersistDict 0.2 keeps three named databases in its LMDB environment
(observed from its files, not from its code):

* ``PersistDict_values``: LMDB key (base64 of a pickled ``str``, the hex
  sha256 of the original key) -> the value bytes (a pickle by default);
* ``PersistDict_metadata``: the same LMDB key -> zlib-compressed YAML with
  ``ctime``, ``atime`` (naive local timestamps) and ``fullkey`` (the
  original key);
* ``PersistDict_info``: name -> zlib-compressed YAML scalar
  (``already_called``, ``ctime``, ``version`` ...).

``read_persistdict_0_2`` reads all of it inside a transaction of ours; it
never writes to those databases. YAML is read with PyYAML's safe loader
(``pip install 'persidict[persistdict]'``), imported only when such a
database is met.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import lmdb

VALUES_DB = b"PersistDict_values"
METADATA_DB = b"PersistDict_metadata"
INFO_DB = b"PersistDict_info"

_log = logging.getLogger("persidict.persist_dict")


@attrs.frozen
class OldItem:
    """One item of a PersistDict 0.2 database."""

    key: str
    value: bytes
    """The stored value bytes, as they are (a pickle with PersistDict's defaults)."""
    ctime: float
    """POSIX time of creation."""
    atime: float
    """POSIX time of the last access PersistDict recorded."""


@attrs.frozen
class OldDatabase:
    """Everything read from a PersistDict 0.2 database."""

    items: tuple[OldItem, ...]
    """The items, oldest first."""
    already_called: bool
    """Whether its one-time ``d(...)`` initialisation was used."""
    version: str | None
    """The PersistDict version that wrote it, if recorded."""
    skipped: int
    """Records that could not be read (no metadata, no value, or unreadable metadata)."""


def has_persistdict_0_2(txn: lmdb.Transaction[Any]) -> bool:
    """Whether the environment of ``txn`` holds PersistDict 0.2's values and metadata databases."""
    return txn.get(VALUES_DB) is not None and txn.get(METADATA_DB) is not None


def read_persistdict_0_2(
    env: lmdb.Environment,
    txn: lmdb.Transaction[Any],
    key_unserializer: Callable[[Any], str] | None = None,
) -> OldDatabase:
    """Read every item of the PersistDict 0.2 databases in ``env``, within ``txn`` (a write transaction).

    ``key_unserializer`` turns a stored ``fullkey`` that is not a ``str``
    back into the key. Records without metadata, value or a usable key are
    skipped (and logged), not fatal: their keys cannot be known.
    """
    yaml = _yaml()
    values = env.open_db(VALUES_DB, txn=txn, create=False)
    metadata = env.open_db(METADATA_DB, txn=txn, create=False)
    items: list[OldItem] = []
    skipped = 0
    for lkey, blob in txn.cursor(db=metadata):
        value = txn.get(bytes(lkey), db=values)
        item = None
        if value is not None:
            item = _item(yaml, bytes(lkey), bytes(blob), bytes(value), key_unserializer)
        if item is None:
            skipped += 1
        else:
            items.append(item)
    skipped += _orphan_values(txn, values, metadata)
    info = _info(yaml, env, txn)
    items.sort(key=lambda it: (it.ctime, it.key))
    return OldDatabase(
        items=tuple(items),
        already_called=info.get("already_called") is True,
        version=None if info.get("version") is None else str(info["version"]),
        skipped=skipped,
    )


def _yaml() -> Any:
    """The ``yaml`` module (PyYAML), with a clear error when it is missing."""
    try:
        return importlib.import_module("yaml")  # (by name: no type stubs needed)
    except ImportError as e:  # pragma: no cover - PyYAML comes with the extra
        raise ImportError(
            "Opening a PersistDict 0.2 database needs PyYAML to read its metadata: "
            "pip install 'persidict[persistdict]'"
        ) from e


def _item(
    yaml: Any, lkey: bytes, blob: bytes, value: bytes, key_unserializer: Callable[[Any], str] | None
) -> OldItem | None:
    """The item of one metadata record (None, logged, if it cannot be read)."""
    try:
        meta = yaml.safe_load(zlib.decompress(blob))
        key = meta["fullkey"]
        if not isinstance(key, str) and key_unserializer is not None:
            key = key_unserializer(key)
        if not isinstance(key, str) or not key:
            raise TypeError(f"the key {key!r} is not a non-empty str")
        ctime = _posix(meta.get("ctime"), None)
        atime = _posix(meta.get("atime"), ctime)
    except Exception as e:
        _log.warning(
            "PersistDict 0.2 record %r skipped: unreadable metadata (%s: %s)",
            lkey, type(e).__name__, e
        )
        return None
    return OldItem(key=key, value=value, ctime=ctime, atime=max(atime, ctime))


def _posix(stamp: object, default: float | None) -> float:
    """A YAML timestamp (naive: local time) as POSIX time; ``default`` if absent."""
    if isinstance(stamp, datetime.datetime):
        return stamp.timestamp()  # (naive datetimes are local time, as PersistDict wrote them)
    if isinstance(stamp, datetime.date):
        return datetime.datetime(stamp.year, stamp.month, stamp.day).timestamp()
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp)
    if stamp is None and default is not None:
        return default
    raise TypeError(f"unreadable timestamp {stamp!r}")


def _orphan_values(txn: lmdb.Transaction[Any], values: Any, metadata: Any) -> int:
    """How many values have no metadata record (their keys are unknown: they cannot be migrated)."""
    n = 0
    for lkey in txn.cursor(db=values).iternext(values=False):
        if txn.get(bytes(lkey), db=metadata) is None:
            n += 1
    if n:
        _log.warning("%d PersistDict 0.2 values have no metadata (no key): not migrated", n)
    return n


def _info(yaml: Any, env: lmdb.Environment, txn: lmdb.Transaction[Any]) -> dict[str, Any]:
    """The scalars of ``PersistDict_info`` (empty if it is absent); unreadable ones are left out."""
    if txn.get(INFO_DB) is None:
        return {}
    db = env.open_db(INFO_DB, txn=txn, create=False)
    out: dict[str, Any] = {}
    for name, blob in txn.cursor(db=db):
        try:
            out[bytes(name).decode()] = yaml.safe_load(zlib.decompress(bytes(blob)))
        except Exception as e:
            _log.warning("PersistDict 0.2 info %r unreadable (%s: %s)", bytes(name), type(e).__name__, e)
    return out
