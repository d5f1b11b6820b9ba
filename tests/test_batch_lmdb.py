"""LmdbDict's batch operations, one LMDB transaction each, and its constant-time len() (issue 14).

get_many reads in one read transaction, set_many / update write in one write
transaction, discard_many deletes in one; inside ``transaction()`` they join
it. len() of a dict at the root of its database, without ttl, is LMDB's entry
count when its format is the only one registered in the database.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import persidict
from persidict import DELETE_CURRENT, KEEP_CURRENT, BatchError, MutationPolicyError, ProgressEvent
from persidict.backends.lmdb_env import FORMAT, FORMATS
from persidict.codecs import TextCodec
from persidict.errors import BackendError, CorruptValueError
from persidict.flags import ITEM_NOT_AVAILABLE
from persidict.keys import NonEmptySafeStrTuple
from persidict.lmdb_dict import LmdbDict

from .lmdb_helpers import Clock, put_raw_record, raw_records, run_python, start_python

LONG = ("x" * 250, "y" * 250, "z" * 10)  # stored under a hashed LMDB key


def _items(n: int = 20) -> dict[Any, Any]:
    """Keys of every shape: str, tuples (subdict paths), a long (hashed) key."""
    items: dict[Any, Any] = {f"k{i}": {"i": i, "s": "v" * i} for i in range(n)}
    items[("p", "q")] = [1, 2]
    items[LONG] = "long"
    return items


def _as_key(k: Any) -> tuple[str, ...]:
    return (k,) if isinstance(k, str) else tuple(k)


@pytest.fixture
def d(tmp_path: Path) -> LmdbDict[Any]:
    return LmdbDict[Any](base_dir=tmp_path, durable=False)


class _Transactions:
    """Counts the LMDB transactions of a database (each is bracketed by ``EnvHandle.enter``)."""

    def __init__(self, d: LmdbDict[Any], monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        handle = d._lmdb.handle
        enter = handle.enter

        def counting() -> Any:
            self.count += 1
            return enter()

        monkeypatch.setattr(handle, "enter", counting)

    def during(self, fn: Callable[[], object]) -> int:
        """How many transactions ``fn`` runs."""
        before = self.count
        fn()
        return self.count - before


# ---------------------------------------------------------------- batch ops equal single ops


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"cache_size": 8},
        {"ttl": 1000.0},
        {"track_atime": True},
        {"serialization_format": "json"},
        {"root_prefix": ("sub", "dir")},
    ],
    ids=str,
)
def test_batch_operations_equal_single_ones(tmp_path: Path, options: dict[str, Any]) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False, **options)
    single = LmdbDict[Any](base_dir=tmp_path / "single", durable=False, **options)
    items = _items()
    d.set_many(items)
    for k, v in items.items():
        single[k] = v
    assert sorted(d.keys()) == sorted(single.keys()) and len(d) == len(single) == len(items)
    asked = [*items, "missing", ("p", "missing")]
    got = d.get_many(asked)
    assert got == {_as_key(k): d[k] for k in items}
    assert list(got) == [_as_key(k) for k in items]  # in the order asked
    assert got == single.get_many(asked)
    with_etags = d.get_many(asked, with_etags=True)
    assert with_etags == {_as_key(k): (d[k], d.etag(k)) for k in items}
    assert d.get_many(asked) == d.get_many(asked)  # (through the cache, when there is one)
    doomed = ["k1", ("p", "q"), LONG, "missing", "k1"]
    assert d.discard_many(doomed) == 3 == sum(single.discard(k) for k in dict.fromkeys(doomed))
    assert sorted(d.keys()) == sorted(single.keys())
    d.update({"k2": "new", ("p", "r"): 5}, k3="kw")
    assert (d["k2"], d["p", "r"], d["k3"]) == ("new", 5, "kw")


def test_keys_of_the_result_are_keys(d: LmdbDict[Any]) -> None:
    d.set_many({"a": 1, ("b", "c"): 2})
    got = d.get_many(["a", ("b", "c"), ("a",), "a"])
    assert list(got) == [("a",), ("b", "c")]
    assert all(type(k).__name__ == "NonEmptySafeStrTuple" for k in got)
    assert d.get_many([]) == {} and d.discard_many([]) == 0
    d.set_many({})  # nothing to write: no error


def test_set_many_keeps_the_last_value_of_a_key_and_obeys_jokers(d: LmdbDict[Any]) -> None:
    d.set_many({"keep": 1, "gone": 2, "back": 3})
    d.set_many(
        [
            ("a", 1), (("a",), 2),  # one key, two spellings: the last value
            ("keep", 10), ("keep", KEEP_CURRENT),  # the last is KEEP_CURRENT: unchanged
            ("gone", DELETE_CURRENT),
            ("back", DELETE_CURRENT), ("back", 30),  # the last is a value: written
        ]
    )
    assert dict(d.items()) == {("a",): 2, ("keep",): 1, ("back",): 30}


def test_bad_input_writes_nothing(d: LmdbDict[Any]) -> None:
    d["z"] = 0
    bad_batches: list[Any] = [
        {"a": 1, "bad": threading.Lock()},  # cannot be pickled
        {"a": 1, "nested": d},  # a PersiDict
        [("a", 1), ("not a key", 2)],
        [("a", 1), (5, 2)],
        [("a", 1), ("b", ITEM_NOT_AVAILABLE)],
    ]
    for bad in bad_batches:
        with pytest.raises((TypeError, ValueError)):
            d.set_many(bad)
        with pytest.raises((TypeError, ValueError)):
            d.update(bad)
        assert dict(d.items()) == {("z",): 0}
    typed = LmdbDict[int](base_dir=d.base_dir, durable=False, base_class_for_values=int, root_prefix="t")
    with pytest.raises(TypeError, match="instance of int"):
        typed.set_many({"ok": 1, "no": "str"})  # type: ignore[arg-type]
    text = LmdbDict[str](base_dir=d.base_dir, durable=False, serialization_format="txt", root_prefix="x")
    with pytest.raises(TypeError, match="str values only"):
        text.update({"ok": "s", "no": 5})
    assert len(typed) == 0 and len(text) == 0


def test_append_only_refuses_existing_keys_and_writes_the_others_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ao = LmdbDict[Any](base_dir=tmp_path, durable=False, append_only=True)
    txns = _Transactions(ao, monkeypatch)
    assert txns.during(lambda: ao.set_many({"a": 1, "b": 2, ("c", "d"): 3})) == 1
    with pytest.raises(MutationPolicyError):  # one failed key: its own exception
        ao.set_many({"a": 10, "n1": 4})
    with pytest.raises(BatchError) as e:
        ao.update({"a": 10, "n2": 5, ("c", "d"): 30, "n3": 6})
    assert e.value.keys == [("a",), ("c", "d")]
    assert all(isinstance(x, MutationPolicyError) for x in e.value.exceptions)
    assert dict(ao.items()) == {("a",): 1, ("b",): 2, ("c", "d"): 3, ("n1",): 4, ("n2",): 5, ("n3",): 6}
    ao.set_many([("twice", 1), ("twice", 2)])  # a key given twice is written once, with its last value
    assert ao["twice"] == 2
    with pytest.raises(MutationPolicyError):  # DELETE_CURRENT is refused before anything is written
        ao.set_many({"n4": 1, "a": DELETE_CURRENT})
    assert "n4" not in ao
    with pytest.raises(MutationPolicyError):
        ao.discard_many(["a"])


def test_an_expired_item_of_an_append_only_dict_may_be_written_again(tmp_path: Path) -> None:
    clock = Clock(100.0)
    ao = LmdbDict[Any](base_dir=tmp_path, durable=False, append_only=True, ttl=10.0, clock=clock)
    ao.set_many({"a": 1})
    clock.now = 200.0
    ao.set_many({"a": 2})
    assert ao["a"] == 2 and ao.metadata("a").ctime == 200.0


def test_values_in_other_pickle_forms_and_codecs_that_take_bytes_only(tmp_path: Path) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    d["new"] = {"x": 1}
    old = pickle.dumps({"y": 2}, protocol=0)  # no 0x80: read through the codec's own path
    d._put_raw(d._lkey(NonEmptySafeStrTuple("old")), old)
    assert d.get_many(["new", "old"]) == {("new",): {"x": 1}, ("old",): {"y": 2}}
    assert list(d.get_many(["old", "new"])) == [("old",), ("new",)]

    class Upper(TextCodec):
        """A user codec that needs bytes (a memoryview has no ``decode``)."""

        def decode(self, data: bytes) -> Any:
            return data.decode().upper()

    u = LmdbDict[str](base_dir=tmp_path / "u", durable=False, serialization_format=Upper())
    u.set_many({"a": "x", "b": "y"})
    assert u.get_many(["a", "b"]) == {("a",): "X", ("b",): "Y"} == dict(u.items())


# ---------------------------------------------------------------- one transaction each


def test_each_batch_operation_is_one_transaction(d: LmdbDict[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    txns = _Transactions(d, monkeypatch)
    items = _items(50)
    assert txns.during(lambda: d.set_many(items)) == 1
    assert txns.during(lambda: d.update(items, extra=1)) == 1
    assert txns.during(lambda: d.update({"j": 1, "extra": DELETE_CURRENT, "k0": KEEP_CURRENT})) == 1
    assert txns.during(lambda: d.get_many(list(items))) == 1
    assert txns.during(lambda: d.get_many(list(items), with_etags=True)) == 1
    assert txns.during(lambda: d.discard_many(list(items))) == 1
    assert txns.during(lambda: len(d)) == 1  # the entry count


def test_another_process_never_sees_half_a_batch(tmp_path: Path) -> None:
    n = 300  # (under a thousand: the watcher's listing of the keys is one read transaction too)
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    watcher = start_python(
        f"""
        import sys
        from persidict.lmdb_dict import LmdbDict
        d = LmdbDict(base_dir={str(tmp_path)!r}, durable=False)
        keys = [f"k{{i}}" for i in range({n})]
        seen = set()
        print("ready", flush=True)
        while True:
            seen.add(len(d))
            seen.add(len(d.get_many(keys)))
            seen.add(sum(1 for _ in d))
            if "stop" in d:
                break
        print(sorted(seen), flush=True)
        """
    )
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == "ready"
    items = {f"k{i}": i for i in range(n)}
    for _ in range(30):
        d.set_many(items)
        d.discard_many(list(items))
        d.update(items)
        d.discard_many(list(items))
    d.set_many(items)
    d["stop"] = True
    out, err = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, err
    seen = set(eval(out.strip().splitlines()[-1]))
    assert seen <= {0, n, n + 1}, f"saw partial batches: {sorted(seen)}"


def test_batches_join_a_transaction(d: LmdbDict[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    d["old"] = 0
    with pytest.raises(RuntimeError), d.transaction():
        d["queued"] = 1  # a queued write, seen by the batch read below
        d.set_many({"a": 1, "b": 2})
        assert d.get_many(["a", "b", "queued", "old"]) == {("a",): 1, ("b",): 2, ("queued",): 1, ("old",): 0}
        assert d.discard_many(["old", "a"]) == 2
        assert len(d) == 2 and "old" not in d
        raise RuntimeError("roll back")
    assert dict(d.items()) == {("old",): 0}  # nothing of the block was committed
    txns = _Transactions(d, monkeypatch)

    def block() -> None:
        with d.transaction():
            d.set_many({"a": 1})
            d.update({"b": 2})
            d.get_many(["a", "b"])
            d.discard_many(["old"])
            assert len(d) == 2

    assert txns.during(block) == 2  # the block's write transaction (and the map check before it)
    assert dict(d.items()) == {("a",): 1, ("b",): 2}
    etags = d.get_many(["a", "b"], with_etags=True)
    assert etags[("a",)][1] != etags[("b",)][1]  # write numbers stay unique within the transaction


def test_a_full_map_writes_nothing(tmp_path: Path) -> None:
    d = LmdbDict[bytes](base_dir=tmp_path, durable=False, map_size=256 * 1024, max_map_size=512 * 1024)
    d["small"] = b"s"
    with pytest.raises(BackendError, match="full"):
        d.set_many({f"k{i}": bytes(20_000) for i in range(40)})
    assert list(d.keys()) == [("small",)] and len(d) == 1
    d.set_many({f"k{i}": bytes(20_000) for i in range(15)})  # (the map grew to its maximum)
    assert len(d) == 16


# ---------------------------------------------------------------- partial failures


def test_a_corrupt_record_fails_its_key_only(d: LmdbDict[Any]) -> None:
    d.set_many({"a": 1, "b": 2, "c": 3, ("s", "x"): 4})
    put_raw_record(Path(d.base_dir), b"b.pkl", b"\x01\x02junk")  # too short for a header
    with pytest.raises(CorruptValueError) as e:
        d.get_many(["a", "b", "c"])
    assert e.value.key == ("b",)
    record = raw_records(Path(d.base_dir))[b"s/x.pkl"]
    put_raw_record(Path(d.base_dir), b"s/x.pkl", record[:32] + b"\x80\x05not a pickle")
    with pytest.raises(BatchError) as group:
        d.get_many(["a", ("s", "x"), "b", "c"], with_etags=True)
    assert group.value.keys == [("s", "x"), ("b",)]
    assert all(isinstance(x, CorruptValueError) for x in group.value.exceptions)
    assert "('s', 'x')" in str(group.value.failures[("s", "x")])
    assert d.get_many(["a", "c"]) == {("a",): 1, ("c",): 3}  # the others read
    dst = LmdbDict[Any](base_dir=Path(d.base_dir) / "copy", durable=False)
    summary = persidict.copy(d, dst, errors="skip")
    assert (summary.copied, summary.failed) == (2, 2) and dict(dst.items()) == {("a",): 1, ("c",): 3}
    assert d.discard_many(["b", ("s", "x")]) == 2  # corrupt records are present: deleted


# ---------------------------------------------------------------- progress


def test_progress_sees_every_item_after_the_commit(d: LmdbDict[Any]) -> None:
    events: list[ProgressEvent] = []
    writes: list[Any] = []

    def note(e: ProgressEvent) -> None:
        events.append(e)
        d[f"seen{len(events)}"] = 1  # a write of our own: the batch's transaction is over
        writes.append(e.key)

    def run() -> None:
        d.set_many({"a": 1, ("b", "c"): 2}, progress=note)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the progress callback waited for the batch's own transaction"
    assert [(tuple(e.key), e.done, e.total, e.ok) for e in events] == [
        (("a",), 1, 2, True),
        (("b", "c"), 2, 2, True),
    ]
    assert d["seen2"] == 1
    events.clear()
    got = d.get_many(["a", "missing", ("b", "c")], progress=events.append)
    assert len(got) == 2 and [tuple(e.key) for e in events] == [("a",), ("missing",), ("b", "c")]
    events.clear()
    assert d.discard_many(["a", "missing"], progress=events.append) == 1
    assert [e.done for e in events] == [1, 2]


def test_progress_of_refused_and_corrupt_items(tmp_path: Path) -> None:
    ao = LmdbDict[Any](base_dir=tmp_path, durable=False, append_only=True)
    ao["a"] = 1
    events: list[ProgressEvent] = []
    with pytest.raises(MutationPolicyError):
        ao.set_many({"a": 2, "b": 3}, progress=events.append)
    assert {tuple(e.key): e.ok for e in events} == {("a",): False, ("b",): True}
    put_raw_record(tmp_path, b"b.pkl", b"")
    events.clear()
    with pytest.raises(CorruptValueError):
        ao.get_many(["a", "b"], progress=events.append)
    assert {tuple(e.key): e.ok for e in events} == {("a",): True, ("b",): False}
    with pytest.raises(TypeError, match="progress"):
        ao.set_many({"c": 1}, progress="yes")  # type: ignore[arg-type]
    assert "c" not in ao  # (checked before anything is written)


def test_purge_reports_every_expired_item(tmp_path: Path) -> None:
    clock = Clock(100.0)
    d = LmdbDict[Any](base_dir=tmp_path, durable=False, ttl=10.0, clock=clock, purge_at_open=False)
    d.set_many({"a": 1, ("s", "b"): 2, LONG: 3, "live": 4})
    json = LmdbDict[Any](
        base_dir=tmp_path, durable=False, ttl=10.0, clock=clock, serialization_format="json",
        purge_at_open=False,
    )
    json["j"] = 5
    clock.now = 105.0
    d["live"] = 40
    clock.now = 112.0
    events: list[ProgressEvent] = []
    assert d.purge(progress=events.append) == 4
    keys = [None if e.key is None else tuple(e.key) for e in events]
    assert sorted(keys, key=str) == sorted([("a",), ("s", "b"), LONG, None], key=str)  # (None: json's)
    assert [e.done for e in events] == [1, 2, 3, 4] and {e.total for e in events} == {4}
    assert d.purge(progress=events.append) == 0
    assert dict(d.items()) == {("live",): 40}
    assert LmdbDict[Any](base_dir=tmp_path, durable=False).purge(progress=events.append) == 0  # no ttl


def test_clear_with_progress_is_one_transaction(d: LmdbDict[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    d.set_many(_items(30))
    events: list[ProgressEvent] = []
    txns = _Transactions(d, monkeypatch)
    n = txns.during(lambda: d.clear(progress=events.append))
    assert len(d) == 0 and len(events) == 32
    assert n <= 3  # the listing (one read per thousand keys and one for hashed keys), one write


def test_max_workers_is_checked_and_one_by_default(d: LmdbDict[Any]) -> None:
    assert d._default_workers() == 1
    for call in (
        lambda: d.set_many({"a": 1}, max_workers=0),
        lambda: d.get_many(["a"], max_workers=0),
        lambda: d.discard_many(["a"], max_workers=0),
    ):
        with pytest.raises(ValueError, match="max_workers"):
            call()
    d.set_many({"a": 1}, max_workers=8)
    assert d.get_many(["a"], max_workers=8) == {("a",): 1}


# ---------------------------------------------------------------- len()


def _no_listing(d: LmdbDict[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any listing of ``d``'s records fail: len() must count without one."""

    def refuse(prefix: Any) -> Iterator[list[bytes]]:
        raise AssertionError("len() listed the records")

    monkeypatch.setattr(d._lmdb, "list_raw_batches", refuse)


def test_len_of_a_root_dict_is_the_entry_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    d.set_many(_items(10))
    d["s", "t", "u"] = 1
    expected = len(list(d))
    _no_listing(d, monkeypatch)
    assert len(d) == expected == 13
    del d["k0"]
    assert len(d) == 12
    with d.transaction():
        d["in", "block"] = 1
        assert len(d) == 13
    run_python(  # another process writes and deletes
        f"""
        from persidict.lmdb_dict import LmdbDict
        d = LmdbDict(base_dir={str(tmp_path)!r}, durable=False)
        d.update({{"o1": 1, "o2": 2}})
        d.discard("k1")
        """
    )
    assert len(d) == 14
    assert d._lmdb.entry_count("pkl") == 14


def test_len_of_subdicts_formats_and_ttl_counts_only_their_items(tmp_path: Path) -> None:
    clock = Clock(100.0)
    root = LmdbDict[Any](base_dir=tmp_path, durable=False, clock=clock)
    root.set_many({"a": 1, ("s", "b"): 2, ("s", "t", "c"): 3, LONG: 4})
    sub = root.get_subdict("s")
    assert len(sub) == 2 and len(sub.get_subdict("t")) == 1
    assert len(root) == 4 and root._lmdb.entry_count("pkl") == 4
    json = LmdbDict[Any](base_dir=tmp_path, durable=False, serialization_format="json")
    json.set_many({"j": 1, ("s", "j"): 2})  # records of another format in the same database
    assert root._lmdb.entry_count("pkl") is None  # two formats registered: listed and counted
    assert len(root) == 4 and len(json) == 2 and len(sub) == 2
    ttl = LmdbDict[Any](base_dir=tmp_path, durable=False, ttl=10.0, clock=clock, purge_at_open=False)
    clock.now = 105.0
    root["fresh"] = 5
    clock.now = 111.0
    assert len(ttl) == 1 and len(root) == 5  # expired items are counted only without ttl


def test_the_formats_registered_in_a_database(tmp_path: Path) -> None:
    LmdbDict[Any](base_dir=tmp_path, durable=False)
    meta = raw_records(tmp_path, b"m")
    assert meta[b"format"] == FORMAT == b"3" and meta[FORMATS] == b"pkl"
    root = LmdbDict[Any](base_dir=tmp_path / "b", durable=False)
    with pytest.raises(RuntimeError), root.transaction():
        LmdbDict[Any](base_dir=tmp_path / "b", durable=False, serialization_format="json")["j"] = 1
        raise RuntimeError("the block rolls back: the registration of json is written again")
    assert raw_records(tmp_path / "b", b"m")[FORMATS] == b"json\npkl"
    ro = LmdbDict[Any](base_dir=tmp_path / "b", durable=False, readonly=True, serialization_format="txt")
    assert len(ro) == 0 and raw_records(tmp_path / "b", b"m")[FORMATS] == b"json\npkl"


def test_len_of_older_databases_lists_the_keys(tmp_path: Path) -> None:
    """A database of format 2 (or 1) registered no formats: its records may be of any."""
    run_python(
        f"""
        import lmdb, struct, pickle
        env = lmdb.open({str(tmp_path)!r}, max_dbs=4)
        v, m = env.open_db(b"v"), env.open_db(b"m")
        env.open_db(b"a"), env.open_db(b"c")
        hdr = struct.Struct("<QIddI")
        with env.begin(write=True) as txn:
            txn.put(b"dbid", b"0badcafe", db=m)
            txn.put(b"format", b"2", db=m)
            txn.put(b"a.pkl", hdr.pack(5, 0, 0.0, 150.0, 0) + pickle.dumps(1), db=v)
            txn.put(b"b.json", hdr.pack(5, 1, 0.0, 150.0, 0) + b"2", db=v)
        """
    )
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    assert d._lmdb.entry_count("pkl") is None
    assert len(d) == 1 and list(d) == [("a",)]
    assert raw_records(tmp_path, b"m")[b"format"] == b"2"  # not upgraded


def test_a_database_with_records_but_no_metadata_is_not_format_3(tmp_path: Path) -> None:
    run_python(
        f"""
        import lmdb
        env = lmdb.open({str(tmp_path)!r}, max_dbs=4)
        v = env.open_db(b"v")
        with env.begin(write=True) as txn:
            txn.put(b"junk", b"from another program", db=v)
        """
    )
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    d["a"] = 1
    assert raw_records(tmp_path, b"m")[b"format"] == b"2"
    assert len(d) == 1


def test_batches_of_a_closed_dict_raise_value_error(d: LmdbDict[Any]) -> None:
    d.set_many({"a": 1, "b": 2})
    d.close()
    for call in (
        lambda: d.set_many({"a": 1, "b": 2}),
        lambda: d.update({"a": 1, "b": 2}),
        lambda: d.get_many(["a", "b"]),
        lambda: d.discard_many(["a", "b"]),
        lambda: d.purge(progress=lambda e: None),
        lambda: persidict.copy(d, LmdbDict[Any](base_dir=Path(d.base_dir) / "c", durable=False)),
    ):
        with pytest.raises(ValueError, match="closed LmdbDict"):
            call()
