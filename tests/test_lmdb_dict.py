"""LmdbDict behaviour: long keys, metadata, expiry, map growth, codecs, cache, transactions."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path
from typing import Any

import attrs
import lmdb
import pytest

from persidict.codecs import Lz4Codec, PickleCodec
from persidict.errors import BackendError, CorruptValueError, MutationPolicyError
from persidict.flags import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE
from persidict.keys import NonEmptySafeStrTuple
from persidict.lmdb_dict import LmdbDict

from .lmdb_helpers import Clock, raw_records, run_python

# ---------------------------------------------------------------- keys and listing


def test_600_byte_key_round_trips_and_is_listed(tmp_path: Path) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    long_key = ("k" * 250, "l" * 250, "m" * 100)
    assert len("/".join(long_key)) > 511
    d[long_key] = "long value"
    d["short"] = "short value"
    assert d[long_key] == "long value"
    assert long_key in d
    assert set(d.keys()) == {NonEmptySafeStrTuple(long_key), NonEmptySafeStrTuple("short")}
    assert len(d) == 2
    sub = d.get_subdict("k" * 250)
    assert list(sub.keys()) == [NonEmptySafeStrTuple(long_key[1:])]
    assert list(d.get_subdict("short").keys()) == []
    # A second dict on the same database (fresh key caches) sees it too.
    again = LmdbDict[Any](base_dir=tmp_path, durable=False)
    assert again[long_key] == "long value"
    assert dict(again.keys_and_timestamps()).keys() == {long_key, ("short",)}
    r = again.set_item_if(long_key, "v2", again.etag(long_key), ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and d[long_key] == "v2"
    del d[long_key]
    assert long_key not in again and list(again.keys()) == [("short",)]
    # The record was hashed: no stored LMDB key is longer than the limit.
    assert all(len(k) <= 511 for k in raw_records(tmp_path))


def test_prefix_listing_is_exact_and_batched(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    with d.transaction():
        for i in range(2500):  # more than one listing batch
            d["p", f"{i:05d}"] = i
        d["pp", "x"] = -1  # shares the byte prefix "p" but not the key prefix
        d["p"] = -2
    sub = d.get_subdict("p")
    assert len(sub) == 2500
    assert sorted(sub.keys())[:2] == [("00000",), ("00001",)]
    assert sum(sub.values()) == sum(range(2500))
    assert len(d) == 2502


def test_listings_follow_other_writers_and_their_cache_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import persidict.lmdb_dict as lmdb_dict

    monkeypatch.setattr(lmdb_dict, "_LKEY_CACHE_LIMIT", 10)
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    d.update({f"k{i}": i for i in range(25)})
    assert len(d) == 25 and len(d._listed) <= 10
    other = LmdbDict[int](base_dir=tmp_path, durable=False)
    other["new"], other["s", "t_u"] = 1, 2
    del other["k3"]
    json = LmdbDict[int](base_dir=tmp_path, durable=False, serialization_format="json")
    json["j"] = 3  # another format: no item of d
    expected = {(f"k{i}",) for i in range(25) if i != 3} | {("new",), ("s", "t_u")}
    assert set(d) == expected and set(d) == expected  # (a cold and a warm pass)
    assert len(d._listed) <= 10
    assert list(d.get_subdict("s")) == [("t_u",)] and list(json) == [("j",)]


def test_params_round_trip_and_subdicts(tmp_path: Path) -> None:
    clock = Clock()
    d = LmdbDict[Any](base_dir=tmp_path, durable=False, cache_size=3, ttl=60.0, clock=clock)
    sub = d.get_subdict(("a", "b"))
    sub["c"] = 1
    params = sub.get_params()
    assert list(params) == sorted(params)
    assert params["root_prefix"] == ("a", "b") and params["base_dir"] == str(tmp_path)
    again = LmdbDict[Any](**params)
    assert again == sub and again["c"] == 1 and d["a", "b", "c"] == 1
    assert type(d)(**d.get_params()) == d
    clone = pickle.loads(pickle.dumps(LmdbDict[Any](base_dir=tmp_path, durable=False)))
    assert clone["a", "b", "c"] == 1
    days = LmdbDict[Any](base_dir=tmp_path, durable=False, expiration_days=2)
    assert days.get_params()["ttl"] == 2 * 86400.0


def test_same_database_through_another_path_shares_the_environment(tmp_path: Path) -> None:
    real = tmp_path / "db"
    d = LmdbDict[int](base_dir=real, durable=False)
    d["x"] = 1
    link = tmp_path / "link"
    link.symlink_to(real)
    other = LmdbDict[int](base_dir=link, durable=False)
    assert other._lmdb.handle is d._lmdb.handle
    assert other["x"] == 1
    with pytest.raises(ValueError, match="durable"):
        LmdbDict[int](base_dir=link, durable=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"map_size": 0},
        {"map_size": 2**20, "max_map_size": 2**10},
        {"cache_size": -1},
        {"ttl": 1, "expiration_days": 1},
        {"ttl": -5},
        {"purge_at_open": "sometimes"},
        {"durable": "yes"},
    ],
)
def test_bad_parameters_are_rejected(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        LmdbDict[Any](base_dir=tmp_path, **kwargs)


# ---------------------------------------------------------------- metadata


def test_ctime_mtime_and_etags(tmp_path: Path) -> None:
    clock = Clock(100.0)
    d = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock)
    d["k"] = 1
    first = d.metadata("k")
    clock.now = 200.0
    d["k"] = 2
    second = d.metadata("k")
    assert (first.ctime, first.mtime) == (100.0, 100.0)
    assert (second.ctime, second.mtime) == (100.0, 200.0)
    assert d.timestamp("k") == 200.0
    assert first.etag != second.etag == d.etag("k")
    assert second.atime is None and second.size == len(pickle.dumps(2, protocol=5))
    del d["k"]
    clock.now = 300.0
    d["k"] = 3
    assert d.metadata("k").ctime == 300.0  # a new item after deletion
    with pytest.raises(KeyError):
        d.metadata("absent")


def test_atime_survives_reopening(tmp_path: Path) -> None:
    run_python(
        f"""
        from persidict.lmdb_dict import LmdbDict
        now = [100.0]
        d = LmdbDict(base_dir={str(tmp_path)!r}, track_atime=True, clock=lambda: now[0])
        d["read"] = 1
        d["unread"] = 2
        now[0] = 250.0
        assert d["read"] == 1
        assert d.metadata("read").atime == 250.0  # recorded in memory, not yet flushed
        # no close(): the at-exit flush must write it
        """
    )
    d = LmdbDict[int](base_dir=tmp_path)
    meta = d.metadata("read")
    assert (meta.ctime, meta.mtime, meta.atime) == (100.0, 100.0, 250.0)
    assert d.metadata("unread").atime is None


def test_atime_flushes_in_batches(tmp_path: Path) -> None:
    clock = Clock(10.0)
    d = LmdbDict[int](
        base_dir=tmp_path, durable=False, track_atime=True, atime_flush_reads=3, clock=clock,
        atime_flush_interval=1000.0,
    )
    d["a"] = 1
    other = LmdbDict[int](base_dir=tmp_path, durable=False)  # sees only what is flushed
    clock.now = 20.0
    d["a"]
    d["a"]
    assert other.metadata("a").atime is None
    clock.now = 30.0
    d["a"]  # the third read flushes
    assert other.metadata("a").atime == 30.0
    clock.now = 40.0
    d["a"]
    d.close()
    assert other.metadata("a").atime == 40.0


# ---------------------------------------------------------------- expiry


def test_expired_entries_stay_invisible_after_reopening(tmp_path: Path) -> None:
    run_python(
        f"""
        from persidict.lmdb_dict import LmdbDict
        now = [1000.0]
        d = LmdbDict(base_dir={str(tmp_path)!r}, ttl=500, clock=lambda: now[0])
        d["old"] = "o"
        d["sub", "old"] = "so"
        now[0] = 1400.0
        d["new"] = "n"
        assert len(d) == 3
        """
    )
    clock = Clock(1600.0)  # "old" is 600 s old, "new" 200 s
    raw = LmdbDict[str](base_dir=tmp_path)
    d = LmdbDict[str](base_dir=tmp_path, ttl=500, clock=clock, purge_at_open=False)
    assert "old" not in d and d.get("old") is None
    assert list(d.keys()) == [("new",)] and len(d) == 1
    assert list(d.get_subdict("sub").keys()) == []
    with pytest.raises(KeyError):
        d.etag("old")
    r = d.setdefault_if("old", "fresh", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and d["old"] == "fresh"
    assert d.metadata("old").ctime == 1600.0  # a new item, not the expired one
    assert ("sub", "old") in raw  # without ttl, the expired record is still there ...
    assert d.purge() == 1  # ... until purged
    assert ("sub", "old") not in raw
    clock.now = 10_000.0
    assert len(d) == 0 and not d
    reopened = LmdbDict[str](base_dir=tmp_path, ttl=500, clock=clock)  # purges at open
    assert len(reopened) == 0
    assert len(raw) == 0


def test_purge_in_background(tmp_path: Path) -> None:
    clock = Clock(0.0)
    d = LmdbDict[int](base_dir=tmp_path, durable=False, ttl=10, clock=clock)
    for i in range(50):
        d[str(i)] = i
    clock.now = 100.0
    LmdbDict[int](base_dir=tmp_path, durable=False, ttl=5, clock=clock, purge_at_open="background")
    raw = LmdbDict[int](base_dir=tmp_path, durable=False)
    for _ in range(1000):
        if len(raw) == 0:
            break
        threading.Event().wait(0.01)
    assert len(raw) == 0


# ---------------------------------------------------------------- map size


def test_writes_continue_past_the_initial_map_size(tmp_path: Path) -> None:
    d = LmdbDict[bytes](base_dir=tmp_path, durable=False, map_size=256 * 1024)
    blob = os.urandom(10_000)
    for i in range(300):  # ~3 MB through a 256 KiB map
        d[str(i)] = blob
    with d.transaction():  # a transaction grows the map before it starts if it is half full
        for i in range(300, 320):
            d[str(i)] = blob
    assert len(d) == 320 and d["299"] == blob
    assert d._lmdb.handle.map_size >= 4 * 2**20


def test_max_map_size_is_a_hard_limit(tmp_path: Path) -> None:
    d = LmdbDict[bytes](base_dir=tmp_path, durable=False, map_size=256 * 1024, max_map_size=512 * 1024)
    with pytest.raises(BackendError, match="full"):
        for i in range(200):
            d[str(i)] = os.urandom(10_000)
    assert d._lmdb.handle.map_size == 512 * 1024
    assert len(d) > 20  # what fitted is there


def test_map_full_inside_a_transaction_rolls_back_then_grows(tmp_path: Path) -> None:
    d = LmdbDict[bytes](base_dir=tmp_path, durable=False, map_size=256 * 1024)
    # (queued writes meet the full map when the block exits, others inside it)
    with pytest.raises(BackendError, match=r"run (it|the transaction) again"), d.transaction():
        for i in range(100):
            d[str(i)] = os.urandom(10_000)
    assert len(d) == 0 and d._lmdb.handle.map_size == 512 * 1024
    attempt = 0
    for attempt in range(5):  # noqa: B007 - each failed attempt doubles the map
        try:
            with d.transaction():
                for i in range(100):
                    d[str(i)] = os.urandom(10_000)
            break
        except BackendError:
            assert len(d) == 0
    assert attempt > 0 and len(d) == 100


def test_map_full_swallowed_inside_a_transaction_still_fails_at_exit(tmp_path: Path) -> None:
    d = LmdbDict[bytes](base_dir=tmp_path, durable=False, map_size=256 * 1024)
    with pytest.raises(BackendError, match="nothing was committed"), d.transaction():
        d["small"] = b"1"
        try:
            for i in range(100):
                d[str(i)] = os.urandom(10_000)
        except BackendError:
            pass  # the block goes on and exits normally
    assert len(d) == 0


def test_map_grown_by_another_process_is_adopted(tmp_path: Path) -> None:
    d = LmdbDict[bytes](base_dir=tmp_path, durable=False, map_size=256 * 1024)
    d["first"] = b"1"
    run_python(
        f"""
        import os
        from persidict.lmdb_dict import LmdbDict
        d = LmdbDict(base_dir={str(tmp_path)!r}, durable=False, map_size=256 * 1024)
        for i in range(300):
            d[str(i)] = os.urandom(10_000)
        """
    )
    assert len(d) == 301 and len(d["299"]) == 10_000
    d["after"] = b"2"
    assert d["after"] == b"2"


# ---------------------------------------------------------------- codecs


@attrs.frozen
class XorCodec:
    """An encryption-like codec (XOR with a key stream) around another codec."""

    key: bytes
    inner: Any = attrs.field(factory=PickleCodec)

    @property
    def extension(self) -> str:
        return f"{self.inner.extension}.xor"

    def _xor(self, data: bytes) -> bytes:
        stream = (self.key * (len(data) // len(self.key) + 1))[: len(data)]
        return bytes(a ^ b for a, b in zip(data, stream, strict=True))

    def encode(self, value: Any) -> bytes:
        return self._xor(self.inner.encode(value))

    def decode(self, data: bytes) -> Any:
        return self.inner.decode(self._xor(data))


def test_composed_encryption_like_codec(tmp_path: Path) -> None:
    codec = Lz4Codec(XorCodec(b"s3cret"))
    d = LmdbDict[Any](base_dir=tmp_path, durable=False, serialization_format=codec)
    secret = {"password": "hunter2" * 10}
    d["a"] = secret
    assert d["a"] == secret and d.serialization_format is codec
    assert list(d.keys()) == [("a",)]
    assert all(b"hunter2" not in v for v in raw_records(tmp_path).values())
    wrong = LmdbDict[Any](
        base_dir=tmp_path, durable=False, serialization_format=Lz4Codec(XorCodec(b"wrong!"))
    )
    with pytest.raises(CorruptValueError, match=r"key NonEmptySafeStrTuple\('a'\)"):
        wrong["a"]
    # A dict with another format does not see these items at all.
    assert list(LmdbDict[Any](base_dir=tmp_path, durable=False).keys()) == []


@attrs.frozen
class FailingCodec:
    """A codec whose encoder and decoder fail."""

    extension: str = "bad"

    def encode(self, value: Any) -> bytes:
        if value == "ok":
            return b"ok"
        raise RuntimeError("encoder exploded")

    def decode(self, data: bytes) -> Any:
        raise RuntimeError("decoder exploded")


def test_failing_codecs_name_the_key(tmp_path: Path) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False, serialization_format=FailingCodec())
    with pytest.raises(ValueError, match=r"key NonEmptySafeStrTuple\('x', 'y'\).*encoder exploded"):
        d["x", "y"] = "boom"
    d["x", "y"] = "ok"
    with pytest.raises(CorruptValueError, match=r"key NonEmptySafeStrTuple\('x', 'y'\).*decoder exploded"):
        d["x", "y"]
    d["s"] = "ok"
    named = r"key NonEmptySafeStrTuple\('s'\) stored at lmdb:.*/s\.bad .*decoder exploded"
    with pytest.raises(CorruptValueError, match=named):
        d["s"]  # (the str-key read path names the key and where it is too)
    plain = LmdbDict[Any](base_dir=tmp_path, durable=False)
    with pytest.raises(TypeError, match=r"key NonEmptySafeStrTuple\('lock'\)"):
        plain["lock"] = threading.Lock()


# ---------------------------------------------------------------- cache


def test_cache_is_never_stale_across_processes(tmp_path: Path) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, cache_size=2)
    d["a"] = [1]
    first = d["a"]
    assert d["a"] is first  # served from the cache: shared, treat as immutable
    run_python(
        f"""
        from persidict.lmdb_dict import LmdbDict
        LmdbDict(base_dir={str(tmp_path)!r})["a"] = [2]
        """
    )
    assert d["a"] == [2]
    d["b"], d["c"] = [3], [4]
    assert (d["b"], d["c"], d["a"]) == ([3], [4], [2])
    assert len(d._cache or {}) == 2
    del d["a"]
    with pytest.raises(KeyError) as e:
        d["a"]
    assert e.value.args == (("a",),)


def test_cached_reads_by_any_spelling_and_through_subdicts(tmp_path: Path) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False, cache_size=8)
    d["s", "k"] = [1]
    sub = d.get_subdict("s")
    first = sub["k"]
    assert d["s", "k"] is first and sub[("k",)] is first  # one entry, whatever the spelling
    d["k"] = [0]  # the parent's own "k" is another item
    assert d["k"] == [0] and sub["k"] is first
    with d.transaction():
        sub["k"] = [2]  # queued; the cached read sees it
        assert d["s", "k"] == [2]
    assert sub["k"] == [2] and sub["k"] is d["s", "k"]


# ---------------------------------------------------------------- transactions, read-only


def test_transaction_commits_once_and_reads_its_writes(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    d["x"] = 0
    seen_by_other_thread: list[int] = []
    with d.transaction():
        d["x"] = 1
        d["y"] = d["x"] + 1
        sub = d.get_subdict("s")
        assert isinstance(sub, LmdbDict)
        with sub.transaction():  # nested, through a subdict: joins
            sub["z"] = 3
            d.transform_item("x", lambda v: v + 10)
        t = threading.Thread(target=lambda: seen_by_other_thread.append(d["x"]))
        t.start()
        t.join()
        assert d["x"] == 11 and sorted(d.keys()) == [("s", "z"), ("x",), ("y",)]
    assert seen_by_other_thread == [0]  # other threads read the committed state
    assert (d["x"], d["y"], d["s", "z"]) == (11, 2, 3)
    etags = {d.etag(k) for k in d}
    assert len(etags) == 3  # one transaction, distinct ETags


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    d["x"] = 0
    with pytest.raises(RuntimeError, match="oops"), d.transaction():
        d["x"] = 1
        del d["x"]
        d["y"] = 2
        raise RuntimeError("oops")
    assert dict(d.items()) == {("x",): 0}


def test_read_only(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"Cannot open|no LmdbDict"):
        LmdbDict[int](base_dir=tmp_path / "missing", readonly=True)
    LmdbDict[int](base_dir=tmp_path)["a"] = 1
    ro = LmdbDict[int](base_dir=tmp_path, readonly=True)
    assert ro["a"] == 1 and ro.get_params()["readonly"] is True
    with pytest.raises(BackendError, match="read-only"):
        ro["b"] = 2
    with pytest.raises(BackendError, match="read-only"), ro.transaction():
        pass
    # In a process where it is not open yet, the environment opens read-only.
    run_python(
        f"""
        from persidict.lmdb_dict import LmdbDict
        from persidict.errors import BackendError
        ro = LmdbDict(base_dir={str(tmp_path)!r}, readonly=True)
        assert ro["a"] == 1 and len(ro) == 1
        try:
            ro["b"] = 2
        except BackendError:
            pass
        else:
            raise AssertionError("wrote to a read-only database")
        try:
            LmdbDict(base_dir={str(tmp_path)!r})
        except ValueError as e:
            assert "read-only" in str(e)
        else:
            raise AssertionError("opened read-write over a read-only environment")
        """
    )


def test_append_only(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False, append_only=True)
    d["a"] = 1
    with pytest.raises(MutationPolicyError):
        d["a"] = 2
    with pytest.raises(MutationPolicyError):
        del d["a"]
    assert d["a"] == 1


def test_lmdb_errors_become_backend_errors(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    d["a"] = 1
    backend = d._lmdb
    err = backend._error(lmdb.Error("boom"), "read", ("a",))
    assert isinstance(err, BackendError) and "boom" in str(err) and err.backend == f"lmdb:{tmp_path}"


def test_update_is_one_transaction(tmp_path: Path) -> None:
    from persidict.flags import DELETE_CURRENT, KEEP_CURRENT

    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    d["keep"], d["gone"] = 1, 2
    d.update({"a": 1, ("b", "c"): [2], "keep": KEEP_CURRENT, "gone": DELETE_CURRENT}, z=26)
    assert dict(d.items()) == {("a",): 1, ("b", "c"): [2], ("keep",): 1, ("z",): 26}
    d.update([("p", 1), ("q", 2)])
    assert d["q"] == 2
    with pytest.raises(TypeError, match=r"NonEmptySafeStrTuple\('bad'\)"):
        d.update({"x": 1, "bad": threading.Lock(), "y": 2})
    assert "x" not in d and "y" not in d  # all or nothing
    with pytest.raises(TypeError, match="PersiDict"):
        d.update({"x": 1, "nested": d})
    assert "x" not in d
    typed = LmdbDict[int](base_dir=tmp_path, durable=False, base_class_for_values=int, root_prefix="t")
    with pytest.raises(TypeError, match="instance of int"):
        typed.update({"ok": 1, "no": "str"})
    assert len(typed) == 0


def test_the_items_of_one_update_share_one_mtime(tmp_path: Path) -> None:
    """They commit together; a later write moves on."""
    clock = Clock(100.0)
    d = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock)
    d["a"] = 0
    clock.now = 110.0

    def ticking() -> Any:
        for i, key in enumerate(("a", "b", "c")):
            clock.now += 1.0  # the clock moves while the items are produced
            yield key, i

    d.update(ticking())  # every item is encoded first, then written: at 113
    assert {d.timestamp(k) for k in "abc"} == {d.metadata("a").mtime} == {113.0}  # when written
    assert d.metadata("a").ctime == 100.0 and d.metadata("b").ctime == 113.0
    clock.now = 120.0
    d["b"] = 5
    assert d.timestamp("b") == 120.0 and d.timestamp("c") == 113.0


def test_str_and_tuple_spellings_of_a_key_are_one_item(tmp_path: Path) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    d["a"] = 1  # the str fast path caches "a" beside ("a",)
    assert d[("a",)] == 1 and d[NonEmptySafeStrTuple("a")] == 1
    d[("a",)] = 2
    assert d["a"] == 2
    d.update({"a": 3, ("a",): 4})
    assert d["a"] == 4 and len(d) == 1
    sub = d.get_subdict("s")
    sub["a"] = 5  # a subdict's "a" is another LMDB key
    assert d["a"] == 4 and d["s", "a"] == 5
    for bad in ("", "a b", ".."):
        with pytest.raises(ValueError, match="Invalid key component"):
            d[bad] = 1
        with pytest.raises(ValueError, match="Invalid key component"):
            d.update({bad: 1})
        with pytest.raises(ValueError, match="Invalid key component"):
            d[bad]
        with pytest.raises(ValueError, match="Invalid key component"):
            _ = bad in d
    assert len(d) == 2
    with pytest.raises(KeyError) as e:
        d["missing"]
    assert e.value.args == (("missing",),) and "missing" not in d and ("missing",) not in d
    other = LmdbDict[Any](base_dir=tmp_path, durable=False)  # str keys it never wrote
    assert other["a"] == 4 and "a" in other and other.get("a") == 4
    cached = LmdbDict[Any](base_dir=tmp_path, durable=False, cache_size=4)
    assert cached["a"] == 4 and cached[("a",)] == 4 and "a" in cached


def test_write_numbers_stay_unique_after_a_refused_update(tmp_path: Path) -> None:
    d = LmdbDict[Any](base_dir=tmp_path, durable=False)
    with d.transaction():
        d.update({"a": 1, "b": 2})
        with pytest.raises(TypeError):
            d.update([("c", 3), ("bad", threading.Lock())])  # everything is encoded before a write
        assert "c" not in d  # (inside the block too: nothing of the refused update was written)
        d["d"] = 4
        d.update({"e": 5})
    etags = {k: d.etag(k) for k in ("a", "b", "d", "e")}
    assert len(set(etags.values())) == 4, etags
    assert "c" not in d


@pytest.mark.parametrize("bulk", [False, True])
def test_ctime_survives_overwrites_inside_a_transaction_until_expiry(tmp_path: Path, bulk: bool) -> None:
    clock = Clock(100.0)
    d = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock, ttl=50.0, purge_at_open=False)

    def put(key: str, value: int) -> None:
        if bulk:
            d.update({key: value})
        else:
            d[key] = value

    with d.transaction():
        put("k", 1)
        clock.now = 120.0
        put("k", 2)  # overwrite within the lifetime: ctime stays
        assert (d.metadata("k").ctime, d.metadata("k").mtime) == (100.0, 120.0)
        clock.now = 200.0
        put("k", 3)  # the item had expired (mtime 120 + ttl 50 < 200): a new life
        assert (d.metadata("k").ctime, d.metadata("k").mtime) == (200.0, 200.0)
    assert d["k"] == 3
