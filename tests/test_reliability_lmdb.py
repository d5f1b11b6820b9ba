"""LmdbDict under hostile conditions: a full disk, records written by other programs, map growth
racing opens, bad expiry settings, a file for a folder, use after close (issue 13, item 7).

Every failure is one of our errors (BackendError, CorruptValueError, ValueError), never an
``lmdb`` or ``struct`` exception.
"""

from __future__ import annotations

import datetime
import math
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict.errors import BackendError, CorruptValueError
from persidict.flags import ANY_ETAG, ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE, ETagValue
from persidict.lmdb_dict import LmdbDict

from .lmdb_helpers import put_raw_record, raw_records, run_python, start_python

# ---------------------------------------------------------------- a full disk


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for the test (root only: skipped, saying why, where mounting is impossible)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True
        )
    except OSError as e:
        pytest.skip(f"cannot mount a 2 MB tmpfs to fill up (no mount command: {e})")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs to fill up (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _plain(d: LmdbDict[Any], keys: list[str], value: bytes) -> None:
    for k in keys:
        d[k] = value


def _update(d: LmdbDict[Any], keys: list[str], value: bytes) -> None:
    d.update({k: value for k in keys})


def _transaction(d: LmdbDict[Any], keys: list[str], value: bytes) -> None:
    with d.transaction():
        for k in keys:
            d[k] = value


WRITERS: dict[str, Callable[[LmdbDict[Any], list[str], bytes], None]] = {
    "plain writes": _plain,
    "update()": _update,
    "transaction()": _transaction,
}


@pytest.mark.parametrize("fill", list(WRITERS))
def test_a_full_disk_gives_backend_errors_and_the_dict_stays_readable(tiny_disk: Path, fill: str) -> None:
    d = LmdbDict[Any](base_dir=tiny_disk / "db")
    written: dict[str, bytes] = {}
    errors: list[BaseException] = []
    for i in range(400):
        keys = [f"k{i}"] if fill == "plain writes" else [f"k{i}_{j}" for j in range(3)]
        value = os.urandom(20_000)
        try:
            WRITERS[fill](d, keys, value)
        except Exception as e:
            errors.append(e)
            assert not any(k in d for k in keys), "a failed write left some of its items"
            if len(errors) >= 5:
                break
        else:
            written.update(dict.fromkeys(keys, value))
    assert errors, "the 2 MB disk never filled up"
    # On the full disk, a value larger than what is left fails on every path.
    big = os.urandom(1_500_000)
    for name, write in WRITERS.items():
        try:
            write(d, ["big"], big)
        except Exception as e:
            errors.append(e)
        else:
            raise AssertionError(f"{name} of 1.5 MB succeeded on a full 2 MB disk")
    for err in errors:
        assert isinstance(err, BackendError), f"{type(err).__module__}.{type(err).__name__}: {err}"
        assert err.backend == f"lmdb:{tiny_disk / 'db'}"
    # Everything written before is still there, nothing else.
    assert len(d) == len(written)
    assert all(d[k] == v for k, v in written.items())
    assert sorted(k[0] for k in d) == sorted(written)
    d.close()


# ---------------------------------------------------------------- records written by another program


def test_a_short_record_written_by_another_program_is_a_corrupt_value(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    d.update({"a": 1, "b": 2, "c": 3})
    d["sub", "x"] = 4
    assert b"b.pkl" in raw_records(tmp_path)  # the LMDB key of "b" in this dict's layout
    put_raw_record(tmp_path, b"b.pkl", b"\x01\x02junk")
    put_raw_record(tmp_path, b"sub/x.pkl", b"")
    cached = LmdbDict[int](base_dir=tmp_path, durable=False, cache_size=10)
    reads: dict[str, Callable[[], object]] = {
        "d[k]": lambda: d["b"],
        "get": lambda: d.get("b"),
        "d[k] through a cache": lambda: cached["b"],
        "timestamp": lambda: d.timestamp("b"),
        "etag": lambda: d.etag("b"),
        "metadata": lambda: d.metadata("b"),
        "get_item_if": lambda: d.get_item_if("b", ITEM_NOT_AVAILABLE, ANY_ETAG),
        "set_item_if": lambda: d.set_item_if("b", 7, ETagValue("some etag"), ETAG_IS_THE_SAME),
        "transform_item": lambda: d.transform_item("b", lambda v: 9),
        "inside a transaction": lambda: _read_in_transaction(d, "b"),
    }
    for name, read in reads.items():
        with pytest.raises(CorruptValueError) as e:
            read()
        assert e.value.key == ("b",), name
        assert "'b'" in str(e.value) and "b.pkl" in str(e.value) and "6 bytes" in str(e.value), name
    with pytest.raises(CorruptValueError, match=r"'sub', 'x'"):
        d.get_subdict("sub")["x"]
    # Iteration goes on past them: the keys-only listing lists them (it reads no record) ...
    assert _keys(d) == [("a",), ("b",), ("c",), ("sub", "x")]
    assert "b" in d
    # ... listings that read records skip them, as does a dict with a ttl.
    assert sorted(tuple(k) for k, _ in d.keys_and_timestamps()) == [("a",), ("c",)]
    expiring = LmdbDict[int](base_dir=tmp_path, durable=False, ttl=3600, purge_at_open=False)
    assert _keys(expiring) == [("a",), ("c",)]
    assert dict(expiring.items()) == {("a",): 1, ("c",): 3}
    assert expiring.purge() == 0 and "b" in expiring
    assert d["a"] == 1 and d["c"] == 3
    # A write replaces such a record (with a new ctime), a delete removes it.
    d["b"] = 5
    assert d["b"] == 5 and d.metadata("b").ctime == d.metadata("b").mtime
    put_raw_record(tmp_path, b"b.pkl", b"\x00" * 21)  # (a ttl reads its mtime at bytes 20-27)
    expiring["b"] = 6
    assert expiring["b"] == 6 and d.metadata("b").ctime > 0
    del d["sub", "x"]
    assert ("sub", "x") not in d and _keys(d) == [("a",), ("b",), ("c",)]


def _keys(d: LmdbDict[Any]) -> list[tuple[str, ...]]:
    return sorted(tuple(k) for k in d)


def _read_in_transaction(d: LmdbDict[int], key: str) -> int:
    with d.transaction():
        return d[key]


def test_junk_in_the_ctime_and_atime_tables_is_ignored(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False, track_atime=True, atime_flush_reads=1)
    d["a"] = 1
    put_raw_record(tmp_path, b"a.pkl", b"xy", db=b"c")
    put_raw_record(tmp_path, b"a.pkl", b"xyz", db=b"a")
    meta = d.metadata("a")
    assert meta.ctime == 0.0 and meta.atime is None  # unknown, not an error
    assert d["a"] == 1  # (records the read time over the junk)
    assert d.metadata("a").atime is not None


# ---------------------------------------------------------------- map growth racing opens


def test_opening_while_another_process_grows_the_map(tmp_path: Path) -> None:
    base = str(tmp_path / "db")
    done = tmp_path / "done"
    LmdbDict[Any](base_dir=base, map_size=2**20, durable=False)["x"] = 1
    grower = start_python(
        f"""
        import os, pathlib
        from persidict.lmdb_dict import LmdbDict
        d = LmdbDict(base_dir={base!r}, map_size=2**20, durable=False)
        try:
            for i in range(40):
                d[f"big{{i}}"] = os.urandom(2**20)  # the map doubles again and again
        finally:
            pathlib.Path({str(done)!r}).touch()
        """
    )
    openers = [
        start_python(
            f"""
            import os, time
            from persidict.lmdb_dict import LmdbDict
            opens = 0
            deadline = time.time() + 60
            while not os.path.exists({str(done)!r}) and time.time() < deadline:
                try:
                    d = LmdbDict(base_dir={base!r}, map_size=2**20, durable=False)
                    assert d["x"] == 1 and len(d) >= 1
                    d.close()  # the last user: the next open opens the environment anew
                except Exception as e:
                    print("FAILED", type(e).__module__, type(e).__name__, e)
                    raise SystemExit(1)
                opens += 1
            print("opens", opens)
            """
        )
        for _ in range(4)
    ]
    _, grower_err = grower.communicate(timeout=120)
    assert grower.returncode == 0, grower_err
    for opener in openers:
        out, err = opener.communicate(timeout=120)
        assert opener.returncode == 0, out + err
        assert "opens" in out and "MapResized" not in out + err
    d = LmdbDict[Any](base_dir=base, durable=False)
    assert len(d) == 41


# ---------------------------------------------------------------- parameters


BAD_DURATIONS: list[object] = [
    math.nan,
    math.inf,
    -math.inf,
    0,
    0.0,
    -1,
    -0.5,
    datetime.timedelta(0),
    datetime.timedelta(seconds=-1),
]


@pytest.mark.parametrize("name", ["ttl", "expiration_days"])
@pytest.mark.parametrize("value", BAD_DURATIONS, ids=repr)
def test_ttl_and_expiration_days_refuse_nan_infinity_and_non_positive(
    tmp_path: Path, name: str, value: object
) -> None:
    kwargs: dict[str, Any] = {name: value}
    with pytest.raises(ValueError, match=name):
        LmdbDict[Any](base_dir=tmp_path, durable=False, **kwargs)


@pytest.mark.parametrize("name", ["ttl", "expiration_days"])
def test_ttl_and_expiration_days_refuse_non_numbers(tmp_path: Path, name: str) -> None:
    for value in ("60", True, [60]):
        kwargs: dict[str, Any] = {name: value}
        with pytest.raises(TypeError, match=name):
            LmdbDict[Any](base_dir=tmp_path, durable=False, **kwargs)


def test_ttl_and_expiration_days_accept_a_timedelta(tmp_path: Path) -> None:
    now = [1_000_000.0]
    d = LmdbDict[int](
        base_dir=tmp_path, durable=False, ttl=datetime.timedelta(minutes=1), clock=lambda: now[0]
    )
    assert d.get_params()["ttl"] == 60.0
    d["a"] = 1
    now[0] += 59
    assert d["a"] == 1
    now[0] += 2
    assert "a" not in d
    days = LmdbDict[int](base_dir=tmp_path, durable=False, expiration_days=datetime.timedelta(days=2))
    assert days.get_params()["ttl"] == 2 * 86400.0
    assert LmdbDict[int](**days.get_params()).get_params() == days.get_params()


def test_a_base_dir_that_is_a_file_is_a_value_error(tmp_path: Path) -> None:
    f = tmp_path / "a file"
    f.write_text("not a database")
    for readonly in (False, True):
        with pytest.raises(ValueError, match="not a folder"):
            LmdbDict[Any](base_dir=f, readonly=readonly)
    with pytest.raises(ValueError, match="under a file"):
        LmdbDict[Any](base_dir=f / "db")
    assert f.read_text() == "not a database"


# ---------------------------------------------------------------- close


CLOSED_OPERATIONS: dict[str, Callable[[LmdbDict[Any]], object]] = {
    "d[k]": lambda d: d["a"],
    "d[k] = v": lambda d: d.__setitem__("a", 2),
    "d[new] = v": lambda d: d.__setitem__("new", 2),
    "k in d": lambda d: "a" in d,
    "del d[k]": lambda d: d.__delitem__("a"),
    "len": len,
    "iter": list,
    "items": lambda d: list(d.items()),
    "get": lambda d: d.get("a"),
    "setdefault": lambda d: d.setdefault("z", 1),
    "pop": lambda d: d.pop("a", None),
    "update": lambda d: d.update({"b": 1}),
    "clear": lambda d: d.clear(),
    "timestamp": lambda d: d.timestamp("a"),
    "etag": lambda d: d.etag("a"),
    "get_item_if": lambda d: d.get_item_if("a", ITEM_NOT_AVAILABLE, ANY_ETAG),
    "set_item_if": lambda d: d.set_item_if("a", 3, ITEM_NOT_AVAILABLE, ANY_ETAG),
    "setdefault_if": lambda d: d.setdefault_if("q", 3, ITEM_NOT_AVAILABLE, ANY_ETAG),
    "discard_if": lambda d: d.discard_if("a", ITEM_NOT_AVAILABLE, ANY_ETAG),
    "transform_item": lambda d: d.transform_item("a", lambda v: 1),
    "keys_and_timestamps": lambda d: list(d.keys_and_timestamps()),
    "random_key": lambda d: d.random_key(),
    "metadata": lambda d: d.metadata("a"),
    "transaction": lambda d: d.transaction().__enter__(),
    "purge": lambda d: d.purge(),
    "flush": lambda d: d.flush(),
    "a subdict": lambda d: d.get_subdict("s")["x"],
}


@pytest.mark.parametrize("options", [{}, {"ttl": 100.0, "cache_size": 4, "track_atime": True}], ids=str)
def test_every_operation_on_a_closed_dict_raises(tmp_path: Path, options: dict[str, Any]) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False, **options)
    d["a"] = 1
    d["s", "x"] = 2
    d["a"]
    params = d.get_params()
    d.close()
    d.close()  # idempotent
    assert d.closed
    for name, op in CLOSED_OPERATIONS.items():
        with pytest.raises(ValueError, match=r"I/O operation on a closed LmdbDict") as e:
            op(d)
        assert str(tmp_path) in str(e.value), name
    assert d.get_params() == params and d.base_dir == str(tmp_path)
    assert dict(LmdbDict[Any](**params).items()) == {("a",): 1, ("s", "x"): 2}  # nothing changed


def test_close_closes_subdicts_and_copies_but_not_other_dicts(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    other = LmdbDict[int](base_dir=tmp_path, durable=False)
    sub = d.get_subdict("s")
    assert isinstance(sub, LmdbDict)
    d["s", "x"] = 1
    sub.close()
    assert d.closed and sub.closed and not other.closed
    with pytest.raises(ValueError, match="closed"):
        d["s", "x"]
    assert other["s", "x"] == 1
    other["y"] = 2
    assert LmdbDict[int](base_dir=tmp_path, durable=False)["y"] == 2


def test_the_environment_closes_with_the_last_dict(tmp_path: Path) -> None:
    first = LmdbDict[int](base_dir=tmp_path, durable=False)
    second = LmdbDict[int](base_dir=tmp_path, durable=False)
    first["a"] = 1
    first.close()
    with pytest.raises(ValueError, match="durable"):  # still open, by second
        LmdbDict[int](base_dir=tmp_path, durable=True)
    second.close()
    # Closed for good: a new dict opens the database anew, with other settings if it likes.
    again = LmdbDict[int](base_dir=tmp_path, durable=True)
    assert again["a"] == 1
    with pytest.raises(ValueError, match="closed"):
        first["a"]
    again.close()


def test_closing_inside_a_transaction_commits_its_queued_writes(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    other = LmdbDict[int](base_dir=tmp_path, durable=False)
    with other.transaction():
        d["a"] = 1  # queued in the transaction
        d.close()
        with pytest.raises(ValueError, match="closed"):
            d["b"] = 2  # not queued through the closed dict
        other["c"] = 3
    assert dict(other.items()) == {("a",): 1, ("c",): 3}


def test_a_closed_dict_stays_closed_in_a_forked_child(tmp_path: Path) -> None:
    proc = run_python(
        f"""
        import os
        from persidict.lmdb_dict import LmdbDict
        d = LmdbDict(base_dir={str(tmp_path)!r}, durable=False)
        live = LmdbDict(base_dir={str(tmp_path / "other")!r}, durable=False)
        d["a"] = 1
        d.close()
        pid = os.fork()
        if pid == 0:
            try:
                d["a"]
                os._exit(3)
            except ValueError:
                pass
            live["x"] = 1
            os._exit(0 if live["x"] == 1 else 4)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.stdout.strip() == "0"
