"""LmdbDict's record format: ctimes apart from the records (format 2), older databases upgraded."""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import struct
from pathlib import Path

import lmdb
import pytest

from persidict.errors import BackendError
from persidict.lmdb_dict import LmdbDict

from .lmdb_helpers import Clock, raw_records

_HDR = struct.Struct("<QIddI")  # txnid, write number, ctime, mtime, kept-location length
LONG = ("x" * 250, "y" * 250, "z" * 10)  # stored under a hashed LMDB key
LONG_LOC = b"/".join((b"x" * 250, b"y" * 250, b"z" * 10 + b".pkl"))
LONG_LKEY = b"#" + hashlib.sha256(LONG_LOC).hexdigest().encode()


def _make_format_1(path: Path, fmt: bytes = b"1") -> None:
    """A database as format 1 wrote it: each record's ctime in its header, no ``c`` database."""
    env = lmdb.open(str(path), max_dbs=4)
    v, m = env.open_db(b"v"), env.open_db(b"m")
    env.open_db(b"a")
    with env.begin(write=True) as txn:
        txn.put(b"dbid", b"0badcafe", db=m)
        txn.put(b"format", fmt, db=m)
        txn.put(b"k.pkl", _HDR.pack(5, 0, 100.0, 150.0, 0) + pickle.dumps(42), db=v)
        txn.put(b"s/j.pkl", _HDR.pack(6, 1, 110.0, 160.0, 0) + pickle.dumps("j"), db=v)
        txn.put(LONG_LKEY, _HDR.pack(6, 2, 120.0, 170.0, len(LONG_LOC)) + LONG_LOC + pickle.dumps(7), db=v)
    env.close()


def _ctime_records(path: Path) -> dict[bytes, float]:
    """The ``c`` database, read by another process."""
    return {k: struct.unpack("<d", v)[0] for k, v in raw_records(path, b"c").items()}


def test_a_format_1_database_is_upgraded_when_opened_for_writing(tmp_path: Path) -> None:
    _make_format_1(tmp_path)
    clock = Clock(300.0)
    d = LmdbDict[object](base_dir=tmp_path, durable=False, clock=clock)
    assert dict(d.items()) == {("k",): 42, ("s", "j"): "j", LONG: 7}
    assert [(d.metadata(k).ctime, d.metadata(k).mtime) for k in ("k", ("s", "j"), LONG)] == [
        (100.0, 150.0),
        (110.0, 160.0),
        (120.0, 170.0),
    ]
    d["k"] = 43  # an overwrite keeps the ctime the header held
    assert (d.metadata("k").ctime, d.metadata("k").mtime) == (100.0, 300.0)
    assert _ctime_records(tmp_path) == {b"k.pkl": 100.0, b"s/j.pkl": 110.0, LONG_LKEY: 120.0}
    env = d._lmdb.handle.env
    assert env is not None
    with env.begin() as txn:
        assert txn.get(b"format", db=env.open_db(b"m", txn=txn)) == b"2"


def _make_full_format_1(path: Path, map_size: int) -> int:
    """A format-1 database whose map is full; returns how many records it holds."""
    env = lmdb.open(str(path), max_dbs=4, map_size=map_size)
    v, m = env.open_db(b"v"), env.open_db(b"m")
    env.open_db(b"a")
    env.open_db(b"c")  # (so that opening it creates no database: the upgrade is what needs room)
    with env.begin(write=True) as txn:
        txn.put(b"dbid", b"0badcafe", db=m)
        txn.put(b"format", b"1", db=m)
    n = 0
    with contextlib.suppress(lmdb.MapFullError):
        while True:  # one transaction per record, until the map is full
            with env.begin(write=True) as txn:
                txn.put(b"k%06d.pkl" % n, _HDR.pack(1, 0, 100.0 + n, 200.0, 0) + pickle.dumps(n), db=v)
            n += 1
    env.close()
    return n


def test_the_upgrade_grows_a_full_map(tmp_path: Path) -> None:
    n = _make_full_format_1(tmp_path, 256 * 1024)
    assert n > 100
    d = LmdbDict[int](base_dir=tmp_path, durable=False, map_size=256 * 1024)
    assert d._lmdb.handle.map_size > 256 * 1024 and len(d) == n
    assert d.metadata(f"k{n - 1:06d}").ctime == 100.0 + n - 1


def test_an_upgrade_with_no_room_fails_clearly(tmp_path: Path) -> None:
    _make_full_format_1(tmp_path, 256 * 1024)
    with pytest.raises(BackendError, match=r"map is full \(max_map_size=262144\): no room to upgrade"):
        LmdbDict[int](base_dir=tmp_path, durable=False, map_size=256 * 1024, max_map_size=256 * 1024)
    ro = LmdbDict[int](base_dir=tmp_path, readonly=True)  # (another process would still read it)
    assert ro.metadata("k000000").ctime == 100.0


def test_a_format_1_database_reads_read_only(tmp_path: Path) -> None:
    _make_format_1(tmp_path)
    ro = LmdbDict[object](base_dir=tmp_path, readonly=True)
    assert ro["k"] == 42
    assert (ro.metadata("k").ctime, ro.metadata("k").mtime) == (100.0, 150.0)  # from the header


def test_a_newer_format_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    _make_format_1(tmp_path, fmt=b"3")
    with pytest.raises(BackendError, match=r"record format '3', newer than this persidict reads \(2\)"):
        LmdbDict[object](base_dir=tmp_path)


def test_ctimes_come_and_go_with_their_records(tmp_path: Path) -> None:
    clock = Clock(100.0)
    d = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock, ttl=50.0, purge_at_open=False)
    d["a"], d["b"], d["c"] = 1, 2, 3
    clock.now = 120.0
    d["a"] = 10  # an overwrite does not touch the ctime
    del d["b"]
    d.update({"c": 30, "n": 4})
    assert _ctime_records(tmp_path) == {b"a.pkl": 100.0, b"c.pkl": 100.0, b"n.pkl": 120.0}
    clock.now = 160.0  # "a" and "c" (mtime 120) live, nothing written at 100 is left to expire
    d["b"] = 5
    clock.now = 200.0  # every item but "b" (mtime 160) has expired
    assert d.purge() == 3
    assert _ctime_records(tmp_path) == {b"b.pkl": 160.0}
    clock.now = 300.0
    d["b"] = 6  # "b" expired (mtime 160 + ttl 50 < 300): a new life
    assert d.metadata("b").ctime == 300.0 and _ctime_records(tmp_path) == {b"b.pkl": 300.0}
    d.clear()
    assert _ctime_records(tmp_path) == {}
