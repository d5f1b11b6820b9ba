"""MutableDictCached and AppendOnlyDictCached: coherence, what is transferred, the PersiDict surface."""

from __future__ import annotations

import copy
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    ConditionalOperationResult,
    ETagConditionFlag,
    ETagIfExists,
    FileDirDict,
    ItemNotAvailableFlag,
    LocalDict,
    MutationPolicyError,
    NonEmptySafeStrTuple,
    PersiDict,
    RetrieveValueFlag,
    SafeStrTuple,
    ValueNotRetrievedFlag,
)
from persidict.backends.base import NotModified, ReadAnswer
from persidict.backends.memory import MemoryBackend
from persidict.wrappers.base import WrapperDict
from persidict.wrappers.cached import AppendOnlyDictCached, MutableDictCached


class CountingBackend(MemoryBackend):
    """A MemoryBackend that counts reads that transferred bytes, and 304-style answers."""

    def __init__(self) -> None:
        super().__init__()
        self.full_reads = 0
        self.not_modified = 0

    def read(self, loc: Any, *, if_none_match: str | None = None) -> ReadAnswer:
        """Count, then read."""
        got = super().read(loc, if_none_match=if_none_match)
        if isinstance(got, NotModified):
            self.not_modified += 1
        elif got is not None:
            self.full_reads += 1
        return got

    def entry(self, loc: Any) -> Any:
        """Count, then read (LocalDict's plain ``d[k]`` reads the entry)."""
        got = super().entry(loc)
        if got is not None:
            self.full_reads += 1
        return got


def _cached(main: LocalDict[Any] | None = None) -> MutableDictCached[Any]:
    return MutableDictCached(
        main_dict=main if main is not None else LocalDict(),
        data_cache=LocalDict(),
        etag_cache=LocalDict(),
    )


# ---------------------------------------------------------------- MutableDictCached: construction


def test_mutable_cache_construction_checks() -> None:
    with pytest.raises(ValueError, match="AppendOnlyDictCached"):
        MutableDictCached(
            main_dict=LocalDict(append_only=True), data_cache=LocalDict(), etag_cache=LocalDict()
        )
    with pytest.raises(ValueError, match="data_cache"):
        MutableDictCached(
            main_dict=LocalDict(), data_cache=LocalDict(append_only=True), etag_cache=LocalDict()
        )
    with pytest.raises(ValueError, match="etag_cache"):
        MutableDictCached(
            main_dict=LocalDict(), data_cache=LocalDict(), etag_cache=LocalDict(append_only=True)
        )
    shared: LocalDict[Any] = LocalDict()
    with pytest.raises(ValueError, match="different stores"):
        MutableDictCached(main_dict=LocalDict(), data_cache=shared, etag_cache=shared)
    with pytest.raises(ValueError, match="different stores"):
        MutableDictCached(
            main_dict=shared, data_cache=LocalDict(**shared.get_params()), etag_cache=LocalDict()
        )
    with pytest.raises(TypeError, match="main_dict"):
        MutableDictCached(main_dict={}, data_cache=LocalDict(), etag_cache=LocalDict())  # type: ignore[arg-type]


# ---------------------------------------------------------------- MutableDictCached: validation


def test_an_unchanged_value_is_not_transferred_again() -> None:
    backend = CountingBackend()
    main: LocalDict[Any] = LocalDict(backend=backend)
    main["k"] = "v"
    c = _cached(main)
    assert c["k"] == "v"
    assert backend.full_reads == 1
    for _ in range(5):
        assert c["k"] == "v"
    assert backend.full_reads == 1 and backend.not_modified == 5


def test_a_write_through_the_cache_is_mirrored() -> None:
    backend = CountingBackend()
    c = _cached(LocalDict(backend=backend))
    c["k"] = [1, 2]
    assert c.data_cache["k"] == [1, 2]
    assert c["k"] == [1, 2] and backend.full_reads == 0  # served from the cache, validated
    assert c.etag("k") == c.main_dict.etag("k")


def test_a_write_by_someone_else_is_seen_on_the_next_read() -> None:
    main: LocalDict[Any] = LocalDict()
    c = _cached(main)
    c["k"] = 1
    assert c["k"] == 1
    main["k"] = 2  # behind the cache's back
    assert c["k"] == 2
    other = _cached(LocalDict(**main.get_params()))  # a second cached view, its own caches
    other["k"] = 3
    assert c["k"] == 3 and c.get("k") == 3 and c.get_with_etag("k").new_value == 3
    del main["k"]
    assert not _has(c, "k") and c.get("k") is None
    with pytest.raises(KeyError):
        c["k"]
    assert not _has(c.etag_cache, "k") and not _has(c.data_cache, "k")


def test_a_tampered_cache_copy_is_not_served() -> None:
    c = _cached()
    c["k"] = "truth"
    assert c["k"] == "truth"
    c.data_cache["k"] = "garbage"  # the etag entry no longer names this copy
    assert c["k"] == "truth"
    del c.data_cache["k"]
    assert c["k"] == "truth"
    c.etag_cache["k"] = "not an entry"
    assert c["k"] == "truth"


def test_interleaved_cache_fills_never_pair_a_value_with_the_wrong_version() -> None:
    """Two fillers (threads) interleave: B caches v2, A caches v1, A pairs e1, B pairs e2."""
    from persidict.wrappers.cached import _pair

    main: LocalDict[Any] = LocalDict()
    c = _cached(main)
    main["k"] = 1
    e1 = main.etag("k")
    main["k"] = 2
    e2 = main.etag("k")
    copy_b = c.data_cache.set_item_if("k", value=2, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG)
    copy_a = c.data_cache.set_item_if("k", value=1, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG)
    c.etag_cache["k"] = _pair(e1, str(copy_a.resulting_etag))
    c.etag_cache["k"] = _pair(e2, str(copy_b.resulting_etag))
    # The cache now says "version e2" but holds v1: the copy's own ETag exposes it.
    assert c.data_cache["k"] == 1
    assert c["k"] == 2


def _has(d: Any, key: object) -> bool:
    """``key in d`` (typed loosely: a PersiDict accepts str and tuple keys)."""
    return key in d


def test_conditional_operations_keep_the_caches_coherent() -> None:
    main: LocalDict[Any] = LocalDict()
    c = _cached(main)
    c["k"] = 1
    tag = c.etag("k")
    r = c.set_item_if("k", value=2, expected_etag=tag, condition=ETAG_IS_THE_SAME)
    assert r.value_was_mutated and c["k"] == 2 == main["k"]
    c.transform_item("k", lambda v: v + 1)
    assert c["k"] == 3 == main["k"]
    c.set_item_if("k", value=DELETE_CURRENT, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG)
    assert not _has(c, "k") and not _has(c.data_cache, "k")
    assert c.setdefault("k", 9) == 9 and c["k"] == 9 == main["k"]
    r = c.get_item_if(
        "k", expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE
    )
    assert r.new_value == 9 and r.actual_etag == main.etag("k")
    assert c.discard_if("k", expected_etag=main.etag("k"), condition=ETAG_IS_THE_SAME).value_was_mutated
    assert not _has(c, "k") and not _has(c.etag_cache, "k")
    c["a"] = 1
    c.clear()
    assert len(c) == 0 and len(c.data_cache) == 0 and len(c.etag_cache) == 0


_ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "main_set", "del", "main_del", "read", "transform", "set_if", "main_clear"]),
        st.sampled_from(["a", "b", ("c", "d")]),
        st.integers(0, 3),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=_ops)
def test_reads_always_agree_with_the_main_dict(ops: list[tuple[str, Any, int]]) -> None:
    """Writes through the cache and behind its back, in any order: a read never returns a stale value."""
    main: LocalDict[int] = LocalDict()
    c: MutableDictCached[int] = MutableDictCached(
        main_dict=main, data_cache=LocalDict(), etag_cache=LocalDict()
    )
    for op, k, v in ops:
        if op == "set":
            c[k] = v
        elif op == "main_set":
            main[k] = v
        elif op == "del":
            c.discard(k)
        elif op == "main_del":
            main.discard(k)
        elif op == "transform":

            def add(cur: Any, v: int = v) -> Any:
                return v if cur is ITEM_NOT_AVAILABLE else cur + v

            c.transform_item(k, add)
        elif op == "set_if":
            c.set_item_if(k, value=v, expected_etag=ITEM_NOT_AVAILABLE, condition=ETAG_IS_THE_SAME)
        elif op == "main_clear":
            main.clear()
        else:
            c.get(k)
        for key in ["a", "b", ("c", "d")]:
            assert c.get(key) == main.get(key)


def test_threads_sharing_the_caches_never_read_a_stale_value() -> None:
    main: LocalDict[int] = LocalDict()
    c: MutableDictCached[int] = MutableDictCached(
        main_dict=main, data_cache=LocalDict(), etag_cache=LocalDict()
    )
    c["k"] = 0
    committed = [0]
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        for i in range(1, 400):
            (c if i % 2 else main)["k"] = i  # through the cache, and behind its back
            committed[0] = i
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            floor = committed[0]
            got = c["k"]
            if got < floor:
                errors.append(f"read {got} after {floor} was committed")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert c["k"] == 399


def _ping_pong(base_dir: str, mine: str, other: str, counters: Any, n: int) -> None:
    """Write ``mine`` = 1..n; after each write check the other process's key is never stale."""
    c: MutableDictCached[int] = MutableDictCached(
        main_dict=FileDirDict(base_dir=base_dir, durable=False),
        data_cache=LocalDict(),
        etag_cache=LocalDict(),
    )
    me, them = (0, 1) if mine == "p0" else (1, 0)
    for i in range(1, n + 1):
        c[mine] = i
        counters[me] = i
        floor = counters[them]
        got = c.get(other, 0)
        if got < floor:
            raise AssertionError(f"{mine}: read {other}={got} after {floor} was written")


def test_two_processes_never_read_a_stale_value(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    counters = ctx.Array("q", 2)
    n = 150
    procs = [
        ctx.Process(target=_ping_pong, args=(str(tmp_path), "p0", "p1", counters, n)),
        ctx.Process(target=_ping_pong, args=(str(tmp_path), "p1", "p0", counters, n)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path)
    assert d["p0"] == n and d["p1"] == n


# ---------------------------------------------------------------- MutableDictCached: the surface


def test_mutable_cache_params_equality_repr_subdicts() -> None:
    c: MutableDictCached[int] = MutableDictCached(
        main_dict=LocalDict(), data_cache=LocalDict(), etag_cache=LocalDict()
    )
    params = c.get_params()
    assert list(params) == ["data_cache", "etag_cache", "main_dict"]
    assert MutableDictCached(**params) == c and copy.copy(c) == c
    assert repr(c).startswith("MutableDictCached(data_cache=LocalDict(")
    c["x", "y"] = 1
    c.main_dict["x", "z"] = 2
    sub = c.get_subdict("x")
    assert isinstance(sub, MutableDictCached)
    assert sub["y"] == 1 and sub["z"] == 2 and sorted(sub.keys()) == [("y",), ("z",)]
    c.main_dict["x", "y"] = 5
    assert sub["y"] == 5
    assert list(c.subdicts()) == ["x"] and isinstance(c.subdicts()["x"], MutableDictCached)
    assert MutableDictCached(**sub.get_params()) == sub


# ---------------------------------------------------------------- AppendOnlyDictCached


def _ao(main: LocalDict[Any] | None = None) -> AppendOnlyDictCached[Any]:
    return AppendOnlyDictCached(
        main_dict=main if main is not None else LocalDict(append_only=True),
        data_cache=LocalDict(append_only=True),
    )


def test_append_only_cache_construction_checks() -> None:
    with pytest.raises(ValueError, match="main_dict"):
        AppendOnlyDictCached(main_dict=LocalDict(), data_cache=LocalDict(append_only=True))
    same: LocalDict[Any] = LocalDict(append_only=True)
    with pytest.raises(ValueError, match="different stores"):
        AppendOnlyDictCached(main_dict=same, data_cache=same)
    with pytest.raises(ValueError, match="data_cache"):
        AppendOnlyDictCached(main_dict=LocalDict(append_only=True), data_cache=LocalDict())


def test_append_only_cache_over_files(tmp_path: Path) -> None:
    """An append-only FileDirDict cached in an append-only LocalDict."""
    main: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path / "data"), append_only=True)
    c: AppendOnlyDictCached[Any] = AppendOnlyDictCached(
        main_dict=main, data_cache=LocalDict(append_only=True)
    )
    assert c.append_only and c.data_cache.append_only
    c["k"] = {"v": 1}
    assert c["k"] == {"v": 1} and c.data_cache["k"] == {"v": 1} and main["k"] == {"v": 1}
    main["m"] = 2  # written behind the cache: a miss reads through and fills it
    assert c["m"] == 2 and c.data_cache["m"] == 2
    assert c.setdefault("m", 3) == 2
    with pytest.raises(MutationPolicyError):
        c["k"] = 2
    with pytest.raises(MutationPolicyError):
        del c["k"]
    assert c["k"] == {"v": 1} and sorted(c.keys()) == [("k",), ("m",)]
    assert AppendOnlyDictCached(**c.get_params()) == c
    sub = c.get_subdict("x")
    assert isinstance(sub, AppendOnlyDictCached) and sub.data_cache.append_only


class CountingValueReads(WrapperDict[Any]):
    """A pass-through wrapper that counts the reads returning a value (whatever the store)."""

    def __init__(self, wrapped: PersiDict[Any]) -> None:
        self._wrapped = wrapped
        self.value_reads = 0

    def get_params(self) -> dict[str, Any]:
        """The wrapped dict."""
        return {"wrapped": self._wrapped}

    def _subdict(self, prefix: SafeStrTuple) -> CountingValueReads:
        return CountingValueReads(self._wrapped._subdict(prefix))

    def _get(self, key: NonEmptySafeStrTuple) -> Any:
        self.value_reads += 1
        return self._wrapped._get(key)

    def _get_item_if(
        self,
        key: NonEmptySafeStrTuple,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[Any]:
        res = self._wrapped._get_item_if(key, expected_etag, condition, retrieve)
        if not isinstance(res.new_value, ItemNotAvailableFlag | ValueNotRetrievedFlag):
            self.value_reads += 1
        return res


def test_append_only_cache_trusts_cached_values() -> None:
    store: LocalDict[Any] = LocalDict(append_only=True)
    store["k"] = "v"
    main = CountingValueReads(store)
    c: AppendOnlyDictCached[Any] = AppendOnlyDictCached(
        main_dict=main, data_cache=LocalDict(append_only=True)
    )
    assert c["k"] == "v" and main.value_reads == 1  # a miss reads through
    assert c.data_cache["k"] == "v"
    for _ in range(5):
        assert c["k"] == "v" and _has(c, "k")
    assert main.value_reads == 1  # no validation at all
    r = c.get_item_if(
        "k", expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE
    )
    assert r.new_value == "v" and r.actual_etag == store.etag("k") and main.value_reads == 1
    with pytest.raises(KeyError):
        c["missing"]


def test_append_only_cache_writes_go_to_main_then_cache() -> None:
    c = _ao()
    c["k"] = 1
    assert c.main_dict["k"] == 1 and c.data_cache["k"] == 1
    with pytest.raises(MutationPolicyError):
        c["k"] = 2
    assert c["k"] == 1 and c.data_cache["k"] == 1
    assert c.setdefault("s", 3) == 3 and c.data_cache["s"] == 3
    c.transform_item("t", lambda cur: 4)
    assert c.data_cache["t"] == 4 and c["t"] == 4
    with pytest.raises(MutationPolicyError):
        del c["k"]


def test_append_only_cache_params_equality_subdicts() -> None:
    c: AppendOnlyDictCached[int] = _ao()
    assert list(c.get_params()) == ["data_cache", "main_dict"]
    assert AppendOnlyDictCached(**c.get_params()) == c
    c["x", "y"] = 1
    sub = c.get_subdict("x")
    assert isinstance(sub, AppendOnlyDictCached) and sub["y"] == 1
    assert AppendOnlyDictCached(**sub.get_params()) == sub
    assert "AppendOnlyDictCached(" in repr(c)
