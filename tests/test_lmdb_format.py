"""LmdbDict's record format: ctimes apart from the records (format 2), mixed with format 1 as it is."""

from __future__ import annotations

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


def test_a_format_1_database_is_used_as_it_is(tmp_path: Path) -> None:
    _make_format_1(tmp_path)
    clock = Clock(300.0)
    d = LmdbDict[object](base_dir=tmp_path, durable=False, clock=clock)
    assert dict(d.items()) == {("k",): 42, ("s", "j"): "j", LONG: 7}
    assert [(d.metadata(k).ctime, d.metadata(k).mtime) for k in ("k", ("s", "j"), LONG)] == [
        (100.0, 150.0),
        (110.0, 160.0),
        (120.0, 170.0),
    ]
    assert _ctime_records(tmp_path) == {}  # nothing migrated
    d["k"] = 43  # an overwrite keeps the ctime the header held (moved to c)
    d.update({("s", "j"): "j2", LONG: 8})  # (the batch path too)
    d["new"] = 1
    assert [d.metadata(k).ctime for k in ("k", ("s", "j"), LONG, "new")] == [100.0, 110.0, 120.0, 300.0]
    assert d.metadata("k").mtime == 300.0
    moved = {b"k.pkl": 100.0, b"s/j.pkl": 110.0, LONG_LKEY: 120.0, b"new.pkl": 300.0}
    assert _ctime_records(tmp_path) == moved
    env = d._lmdb.handle.env
    assert env is not None
    with env.begin() as txn:
        assert txn.get(b"format", db=env.open_db(b"m", txn=txn)) == b"1"


def test_records_of_an_older_writer_mix_with_ours(tmp_path: Path) -> None:
    """A format-1 writer deletes without touching c and writes the ctime into the header."""
    clock = Clock(100.0)
    d = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock)
    d["k"] = 1  # ours: ctime 100 in c
    env = d._lmdb.handle.env
    assert env is not None
    v = env.open_db(b"v")
    with env.begin(write=True) as txn:  # the older writer deletes "k" and writes it anew at 200
        txn.delete(b"k.pkl", db=v)
        txn.put(b"k.pkl", _HDR.pack(txn.id(), 0, 200.0, 200.0, 0) + pickle.dumps(2), db=v)
    assert (d["k"], d.metadata("k").ctime) == (2, 200.0)  # not the stale 100 left in c
    clock.now = 300.0
    d["k"] = 3
    assert (d.metadata("k").ctime, d.metadata("k").mtime) == (200.0, 300.0)
    with env.begin(write=True) as txn:  # the older writer overwrites ours: it keeps the slot's 0
        txn.put(b"k.pkl", _HDR.pack(txn.id(), 0, 0.0, 400.0, 0) + pickle.dumps(4), db=v)
    assert (d["k"], d.metadata("k").ctime, d.metadata("k").mtime) == (4, 200.0, 400.0)


def test_a_format_1_database_reads_read_only(tmp_path: Path) -> None:
    _make_format_1(tmp_path)
    ro = LmdbDict[object](base_dir=tmp_path, readonly=True)
    assert ro["k"] == 42
    assert (ro.metadata("k").ctime, ro.metadata("k").mtime) == (100.0, 150.0)  # from the header


def test_a_newer_format_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    _make_format_1(tmp_path, fmt=b"4")
    with pytest.raises(BackendError, match=r"record format '4', newer than this persidict reads \(3\)"):
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
