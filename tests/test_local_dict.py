"""LocalDict: every public method of PersiDict on the in-memory store.

(The model-based test in test_testing_local.py covers random sequences of
the same operations; these are the explicit, readable cases.)
"""

from __future__ import annotations

import copy
import pickle
import random
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import persidict.backends.memory as memory_module
from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    ConcurrencyConflictError,
    ConditionalOperationResult,
    EmptyDict,
    LocalDict,
    MutationPolicyError,
    NonEmptySafeStrTuple,
    OperationResult,
    PersiDict,
)
from persidict.backends.memory import MemoryBackend
from persidict.flags import ETagValue

BOGUS = ETagValue("bogus")
NA = ITEM_NOT_AVAILABLE


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """A fake clock for the memory backend: every write is one second later."""
    now = [1_000_000.0]

    def tick() -> float:
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(memory_module, "time", types.SimpleNamespace(time=tick))
    yield now


def snapshot(d: PersiDict[Any]) -> dict[tuple[str, ...], tuple[Any, str]]:
    """Every item with its ETag: to check that a failed call changed nothing."""
    return {tuple(k): (d[k], d.etag(k)) for k in d}


# ---------------------------------------------------------------- the dict API


def test_basic_dict_api() -> None:
    d: LocalDict[Any] = LocalDict()
    assert len(d) == 0 and not d and list(d) == []
    d["a"] = 1
    d[("b", "c")] = [1, 2]
    d[["d"]] = {"x": 1}
    assert d["a"] == 1 and d["b", "c"] == [1, 2] and d[("d",)] == {"x": 1}
    assert len(d) == 3 and d
    assert "a" in d and ("b", "c") in d and "b" not in d and ("a",) in d
    assert set(d) == {("a",), ("b", "c"), ("d",)}
    assert all(type(k) is NonEmptySafeStrTuple for k in d)
    assert sorted(d.keys()) == [("a",), ("b", "c"), ("d",)]
    assert sorted(map(repr, d.values())) == sorted(map(repr, [1, [1, 2], {"x": 1}]))
    assert dict(d.items()) == {("a",): 1, ("b", "c"): [1, 2], ("d",): {"x": 1}}
    del d["a"]
    assert "a" not in d
    with pytest.raises(KeyError):
        del d["a"]
    with pytest.raises(KeyError):
        d["a"]


def test_values_are_copies() -> None:
    d: LocalDict[list[int]] = LocalDict()
    v = [1]
    d["k"] = v
    v.append(2)
    got = d["k"]
    got.append(3)
    assert d["k"] == [1]


def test_get_and_setdefault() -> None:
    d: LocalDict[Any] = LocalDict()
    marker = object()
    assert d.get("k") is None and d.get("k", marker) is marker
    assert d.setdefault("k", 5) == 5
    assert d.setdefault("k", 6) == 5 and d["k"] == 5
    assert d.get("k", marker) == 5
    assert d.setdefault("n") is None and d["n"] is None


def test_update_and_ior() -> None:
    d: LocalDict[int] = LocalDict()
    d.update({"a": 1, ("b", "c"): 2})
    d.update([("e", 3), (["f", "g"], 4)])
    d.update(h=5)
    d.update({"a": 10}, i=6)
    same = d
    d |= {"j": 7}
    assert same is d
    assert dict(d.items()) == {
        ("a",): 10, ("b", "c"): 2, ("e",): 3, ("f", "g"): 4, ("h",): 5, ("i",): 6, ("j",): 7
    }

    class Duck:
        def keys(self) -> list[str]:
            return ["z"]

        def __getitem__(self, k: str) -> int:
            return 26

    d.update(Duck())
    assert d["z"] == 26


def test_pop_popitem_clear_discard() -> None:
    d: LocalDict[int] = LocalDict()
    d.update({"a": 1, "b": 2, ("c", "d"): 3})
    assert d.pop("a") == 1 and "a" not in d
    assert d.pop("a", 0) == 0
    with pytest.raises(KeyError):
        d.pop("a")
    k, v = d.popitem()
    assert (tuple(k), v) in {(("b",), 2), (("c", "d"), 3)} and k not in d
    assert d.discard("zz") is False
    d["x"] = 9
    assert d.discard("x") is True and "x" not in d
    d["x"] = 9
    assert d.delete_if_exists("x") is True and d.delete_if_exists("x") is False
    d.clear()
    assert len(d) == 0
    with pytest.raises(KeyError):
        d.popitem()


def test_equality() -> None:
    d: LocalDict[int] = LocalDict()
    d["a"] = 1
    assert d == {("a",): 1}
    assert d != {("a",): 2} and d != {} and d != {("a",): 1, ("b",): 2}
    assert d == LocalDict(**d.get_params())
    other: LocalDict[int] = LocalDict()
    other["a"] = 1
    assert d == other  # same items, different stores
    other["a"] = 2
    assert d != other
    with pytest.raises(TypeError):
        hash(d)


def test_repr_and_str() -> None:
    d: LocalDict[int] = LocalDict(serialization_format="json")
    d["a"] = 1
    r = repr(d)
    assert r.startswith("LocalDict(") and "serialization_format='json'" in r and "append_only=False" in r
    assert str(d) == "{NonEmptySafeStrTuple('a'): 1}"


# ---------------------------------------------------------------- ETags and timestamps


def test_etags_are_a_counter_shared_by_subdicts() -> None:
    d: LocalDict[int] = LocalDict()
    d["a"] = 1
    e1 = d.etag("a")
    sub = d.get_subdict("s")
    sub["x"] = 2
    e2 = d.etag(("s", "x"))
    assert sub.etag("x") == e2
    d["a"] = 1  # the same value again still gets a new ETag
    e3 = d.etag("a")
    assert int(e1) < int(e2) < int(e3)
    assert d.get_with_etag("a") == ConditionalOperationResult(True, e3, e3, 1)
    with pytest.raises(KeyError):
        d.etag("zz")
    assert d.get_with_etag("zz") == ConditionalOperationResult(True, NA, NA, NA)


def test_timestamps(clock: list[float]) -> None:
    d: LocalDict[int] = LocalDict()
    d["a"] = 1
    d["b"] = 2
    ta, tb = d.timestamp("a"), d.timestamp("b")
    assert isinstance(ta, float) and ta < tb
    assert dict(d.keys_and_timestamps()) == {("a",): ta, ("b",): tb}
    assert sorted(d.values_and_timestamps()) == [(1, ta), (2, tb)]
    assert sorted(d.items_and_timestamps()) == [(("a",), 1, ta), (("b",), 2, tb)]
    _ = d["a"]  # reading does not touch the timestamp
    assert d.timestamp("a") == ta
    d["a"] = 3
    assert d.timestamp("a") > tb
    with pytest.raises(KeyError):
        d.timestamp("zz")


def test_oldest_and_newest(clock: list[float]) -> None:
    d: LocalDict[str] = LocalDict()
    for name in ["c", "a", "d", "b"]:
        d[name] = name.upper()
    assert d.oldest_keys() == [("c",), ("a",), ("d",), ("b",)]
    assert d.newest_keys() == [("b",), ("d",), ("a",), ("c",)]
    assert d.oldest_keys(max_n=2) == [("c",), ("a",)]
    assert d.newest_keys(2) == [("b",), ("d",)]
    assert d.oldest_values(3) == ["C", "A", "D"]
    assert d.newest_values(max_n=1) == ["B"]
    assert d.newest_values() == ["B", "D", "A", "C"]
    assert d.oldest_keys(0) == [] and d.oldest_keys(100) == d.oldest_keys()
    d["c"] = "C2"
    assert d.newest_keys(1) == [("c",)]
    assert d.oldest_keys(-1) == [] and d.newest_values(-5) == []
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="max_n"):
            d.oldest_keys(bad)  # type: ignore[arg-type]


def test_random_key_is_uniform() -> None:
    d: LocalDict[int] = LocalDict()
    assert d.random_key() is None
    n_keys, draws = 10, 5000
    for i in range(n_keys):
        d[f"k{i}"] = i
    state = random.getstate()
    random.seed(20260401)
    try:
        counts = {k: 0 for k in d}
        for _ in range(draws):
            k = d.random_key()
            assert k is not None and type(k) is NonEmptySafeStrTuple
            counts[k] += 1
    finally:
        random.setstate(state)
    expected = draws / n_keys
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 27.88  # 9 degrees of freedom, p = 0.001
    assert min(counts.values()) > 0


# ---------------------------------------------------------------- conditional operations


def test_get_item_if_retrieve_modes() -> None:
    d: LocalDict[int] = LocalDict()
    d["k"] = 1
    e = d.etag("k")
    r = d.get_item_if("k", e, ETAG_IS_THE_SAME)
    assert r == ConditionalOperationResult(True, e, e, VALUE_NOT_RETRIEVED)  # IF_ETAG_CHANGED
    r = d.get_item_if("k", e, ETAG_IS_THE_SAME, retrieve_value=ALWAYS_RETRIEVE)
    assert r.new_value == 1
    r = d.get_item_if("k", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME, retrieve_value=IF_ETAG_CHANGED)
    assert (r.condition_was_satisfied, r.new_value) == (False, 1)
    r = d.get_item_if("k", ITEM_NOT_AVAILABLE, ETAG_HAS_CHANGED, retrieve_value=NEVER_RETRIEVE)
    assert (r.condition_was_satisfied, r.new_value) == (True, VALUE_NOT_RETRIEVED)
    assert d.get_item_if("k", e, ANY_ETAG, always_retrieve_value=True).new_value == 1
    assert d.get_item_if("k", e, ANY_ETAG, always_retrieve_value=False).new_value is VALUE_NOT_RETRIEVED
    r = d.get_item_if("absent", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME, retrieve_value=ALWAYS_RETRIEVE)
    assert r == ConditionalOperationResult(True, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)


def test_compare_and_swap_loop() -> None:
    d: LocalDict[int] = LocalDict()
    for _ in range(3):
        while True:
            r = d.get_item_if("count", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
            new = 1 if r.new_value is ITEM_NOT_AVAILABLE else r.new_value + 1  # type: ignore[operator]
            r2 = d.set_item_if("count", value=new, condition=ETAG_IS_THE_SAME, expected_etag=r.actual_etag)
            if r2.condition_was_satisfied:
                break
    assert d["count"] == 3


def test_set_item_if() -> None:
    d: LocalDict[int] = LocalDict()
    r = d.set_item_if("k", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.value_was_mutated and r.new_value == 1
    assert r.actual_etag is ITEM_NOT_AVAILABLE and r.resulting_etag == d.etag("k")
    stale = r.resulting_etag
    r = d.set_item_if("k", 2, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)  # insert-only: refused
    assert not r.condition_was_satisfied and not r.value_was_mutated and r.new_value == 1
    d["k"] = 3
    r = d.set_item_if("k", 4, stale, ETAG_IS_THE_SAME)  # lost update prevented
    assert not r.condition_was_satisfied and d["k"] == 3
    r = d.set_item_if("k", 4, stale, ETAG_HAS_CHANGED)
    assert r.condition_was_satisfied and d["k"] == 4 and r.resulting_etag == d.etag("k")


def test_jokers_in_set_item_if() -> None:
    d: LocalDict[int] = LocalDict()
    d["k"] = 1
    e = d.etag("k")
    r = d.set_item_if("k", KEEP_CURRENT, e, ETAG_IS_THE_SAME, retrieve_value=ALWAYS_RETRIEVE)
    assert r == ConditionalOperationResult(True, e, e, 1)
    r = d.set_item_if("k", DELETE_CURRENT, BOGUS, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and "k" in d
    r = d.set_item_if("k", DELETE_CURRENT, e, ETAG_IS_THE_SAME)
    assert r == ConditionalOperationResult(True, e, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
    assert "k" not in d
    r = d.set_item_if("k", DELETE_CURRENT, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert r == ConditionalOperationResult(True, NA, NA, NA)


def test_jokers_in_setitem() -> None:
    d: LocalDict[int] = LocalDict()
    d["k"] = 1
    e = d.etag("k")
    d["k"] = KEEP_CURRENT
    assert d["k"] == 1 and d.etag("k") == e
    d["new"] = KEEP_CURRENT
    assert "new" not in d
    d["k"] = DELETE_CURRENT
    assert "k" not in d
    d["k"] = DELETE_CURRENT  # deleting an absent key is fine
    d.update({"a": 1})
    d.update({"a": DELETE_CURRENT})
    assert "a" not in d


def test_setdefault_if() -> None:
    d: LocalDict[int] = LocalDict()
    r = d.setdefault_if("token", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.value_was_mutated and r.new_value == 1
    e = d.etag("token")
    r = d.setdefault_if("token", 2, ITEM_NOT_AVAILABLE, ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE)
    assert r == ConditionalOperationResult(True, e, e, 1)
    r = d.setdefault_if("other", 2, BOGUS, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and "other" not in d


def test_discard_if() -> None:
    d: LocalDict[int] = LocalDict()
    d["k"] = 1
    e = d.etag("k")
    r = d.discard_if("k", BOGUS, ETAG_IS_THE_SAME)
    assert r == ConditionalOperationResult(False, e, e, VALUE_NOT_RETRIEVED)
    r = d.discard_item_if("k", e, ETAG_IS_THE_SAME)
    assert r == ConditionalOperationResult(True, e, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
    r = d.discard_if("k", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r == ConditionalOperationResult(True, NA, NA, NA)


def test_transform_item() -> None:
    d: LocalDict[int] = LocalDict()
    seen: list[Any] = []

    def inc(v: Any) -> Any:
        seen.append(v)
        return 1 if v is ITEM_NOT_AVAILABLE else v + 1

    r = d.transform_item("n", inc)
    assert r == OperationResult(d.etag("n"), 1) and seen == [ITEM_NOT_AVAILABLE]
    r = d.transform_item("n", inc, n_retries=None)
    assert r.new_value == 2 and seen[-1] == 1
    e = d.etag("n")
    assert d.transform_item("n", lambda v: KEEP_CURRENT) == OperationResult(e, 2)
    assert d.transform_item("n", lambda v: DELETE_CURRENT) == OperationResult(NA, NA)
    assert "n" not in d
    assert d.transform_item("n", lambda v: DELETE_CURRENT) == OperationResult(NA, NA)
    with pytest.raises(TypeError, match="callable"):
        d.transform_item("n", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_retries"):
        d.transform_item("n", inc, n_retries=-1)
    for bad in (1.5, "3", True, [1]):
        with pytest.raises(TypeError, match="n_retries"):
            d.transform_item("n", inc, n_retries=bad)  # type: ignore[arg-type]


def test_transform_retries_then_succeeds() -> None:
    d: LocalDict[int] = LocalDict()
    d["n"] = 0
    interference = [3]

    def inc(v: Any) -> Any:
        if interference[0]:
            interference[0] -= 1
            d["n"] = 100  # a concurrent writer wins this round
        return v + 1

    assert d.transform_item("n", inc, n_retries=3).new_value == 101
    interference[0] = 50
    assert d.transform_item("n", inc, n_retries=None).new_value == 101
    interference[0] = 2
    with pytest.raises(ConcurrencyConflictError):
        d.transform_item("n", inc, n_retries=1)
    assert d["n"] == 100


def test_thread_safe_increments() -> None:
    d: LocalDict[int] = LocalDict()
    d["n"] = 0
    n_threads, per_thread = 8, 100

    def work() -> None:
        for _ in range(per_thread):
            d.transform_item("n", lambda v: v + 1, n_retries=None)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d["n"] == n_threads * per_thread


def test_concurrent_inserts_exactly_one_wins() -> None:
    d: LocalDict[int] = LocalDict()
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def insert(i: int) -> None:
        barrier.wait()
        if d.setdefault_if("once", i, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME).value_was_mutated:
            wins.append(i)

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and d["once"] == wins[0]


# ---------------------------------------------------------------- policies and types


def _mutations(d: PersiDict[Any]) -> dict[str, Callable[[], object]]:
    e = d.etag("k")
    return {
        "overwrite": lambda: d.__setitem__("k", 2),
        "del": lambda: d.__delitem__("k"),
        "del absent": lambda: d.__delitem__("absent"),
        "DELETE_CURRENT": lambda: d.__setitem__("k", DELETE_CURRENT),
        "pop": lambda: d.pop("k"),
        "pop default": lambda: d.pop("absent", None),
        "popitem": d.popitem,
        "clear": d.clear,
        "discard": lambda: d.discard("k"),
        "discard absent": lambda: d.discard("absent"),
        "delete_if_exists": lambda: d.delete_if_exists("k"),
        "set_item_if overwrite": lambda: d.set_item_if("k", 2, e, ETAG_IS_THE_SAME),
        "set_item_if DELETE_CURRENT": lambda: d.set_item_if("k", DELETE_CURRENT, e, ETAG_IS_THE_SAME),
        "discard_if": lambda: d.discard_if("k", e, ETAG_IS_THE_SAME),
        "transform overwrite": lambda: d.transform_item("k", lambda v: v + 1),
        "transform delete": lambda: d.transform_item("k", lambda v: DELETE_CURRENT),
        "update overwrite": lambda: d.update({"k": 5}),
        "subdict delete": lambda: d.get_subdict("s").discard("x"),
    }


MUTATIONS = [
    "overwrite", "del", "del absent", "DELETE_CURRENT", "pop", "pop default", "popitem", "clear",
    "discard", "discard absent", "delete_if_exists", "set_item_if overwrite", "set_item_if DELETE_CURRENT",
    "discard_if", "transform overwrite", "transform delete", "update overwrite", "subdict delete",
]


def test_mutation_list_is_complete() -> None:
    d: LocalDict[int] = LocalDict()
    d["k"] = 1
    assert sorted(_mutations(d)) == sorted(MUTATIONS)


@pytest.mark.parametrize("what", MUTATIONS)
def test_append_only_refuses_every_overwrite_and_delete(what: str) -> None:
    d: LocalDict[int] = LocalDict(append_only=True)
    d["k"] = 1
    d["s", "x"] = 3
    before = snapshot(d)
    with pytest.raises(MutationPolicyError) as e:
        _mutations(d)[what]()
    assert e.value.policy == "append-only" and isinstance(e.value, TypeError)
    assert snapshot(d) == before


def test_append_only_allows_inserts_and_keep_current() -> None:
    d: LocalDict[int] = LocalDict(append_only=True)
    d["a"] = 1
    d.setdefault("b", 2)
    assert d.set_item_if("c", 3, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME).value_was_mutated
    d["a"] = KEEP_CURRENT
    assert d.set_item_if("a", 5, BOGUS, ETAG_IS_THE_SAME).condition_was_satisfied is False
    assert d.transform_item("t", lambda v: 7).new_value == 7
    assert d.append_only and dict(d.items()) == {("a",): 1, ("b",): 2, ("c",): 3, ("t",): 7}


def test_base_class_for_values_on_every_write() -> None:
    d: Any = LocalDict(base_class_for_values=int)  # deliberately written with wrong types
    d["k"] = 1
    before = snapshot(d)
    writes: list[Callable[[], object]] = [
        lambda: d.__setitem__("k", "one"),
        lambda: d.__setitem__("new", 1.5),
        lambda: d.set_item_if("k", "one", ITEM_NOT_AVAILABLE, ANY_ETAG),
        lambda: d.setdefault("new", "one"),
        lambda: d.setdefault_if("new", "one", ITEM_NOT_AVAILABLE, ANY_ETAG),
        lambda: d.update({"new": "one"}),
        lambda: d.transform_item("k", lambda v: str(v)),
    ]
    for write in writes:
        with pytest.raises(TypeError, match="int"):
            write()
    assert snapshot(d) == before
    d["k"] = True  # a bool is an int
    assert d.base_class_for_values is int


def test_base_class_for_values_on_reading_a_foreign_value() -> None:
    backend = MemoryBackend()
    loose: LocalDict[Any] = LocalDict(backend=backend)
    strict: LocalDict[int] = LocalDict(backend=backend, base_class_for_values=int)
    loose["good"] = 1
    loose["bad"] = "not an int"
    assert strict["good"] == 1
    with pytest.raises(TypeError) as e:
        strict["bad"]
    assert "'bad'" in str(e.value) and "str" in str(e.value) and "int" in str(e.value)
    with pytest.raises(TypeError):
        list(strict.values())


@pytest.mark.parametrize("fmt", ["pkl", "json"])
def test_pkl_and_json_formats(fmt: str) -> None:
    d: LocalDict[Any] = LocalDict(serialization_format=fmt)
    value = {"a": [1, 2.5, "x", None, True], "b": (1, 2)}
    d["k"] = value
    assert d["k"] == value and d.serialization_format == fmt


def test_text_format_holds_str_only() -> None:
    d: LocalDict[str] = LocalDict(serialization_format="txt")
    d["k"] = "héllo\nworld"
    assert d["k"] == "héllo\nworld"
    with pytest.raises(TypeError, match="str"):
        d["n"] = 5  # type: ignore[assignment]
    assert "n" not in d
    md: LocalDict[str] = LocalDict(serialization_format="md", base_class_for_values=str)
    md["k"] = "# title"
    assert md["k"] == "# title" and md.serialization_format == "md"
    with pytest.raises(ValueError, match="str"):
        LocalDict(serialization_format="txt", base_class_for_values=int)


@pytest.mark.parametrize("bad", ["", "a/b", "..", 5, None])
def test_bad_serialization_format(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        LocalDict(serialization_format=bad)


def test_formats_sharing_a_backend_do_not_see_each_other() -> None:
    backend = MemoryBackend()
    as_pkl: LocalDict[Any] = LocalDict(backend=backend)
    as_json: LocalDict[Any] = LocalDict(backend=backend, serialization_format="json")
    as_pkl["k"] = 1
    as_json["k"] = 2
    assert as_pkl["k"] == 1 and as_json["k"] == 2 and len(as_pkl) == 1


def test_setdefault_rejects_jokers() -> None:
    d: LocalDict[int] = LocalDict()
    for joker in (KEEP_CURRENT, DELETE_CURRENT):
        with pytest.raises(TypeError, match=repr(joker)):
            d.setdefault("k", joker)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=repr(joker)):
            d.setdefault_if("k", joker, ITEM_NOT_AVAILABLE, ANY_ETAG)  # type: ignore[arg-type]
    assert "k" not in d


def test_storing_a_persidict_is_a_type_error() -> None:
    d: LocalDict[Any] = LocalDict()
    values: list[Any] = [LocalDict(), EmptyDict(), d]
    for value in values:
        with pytest.raises(TypeError, match="PersiDict"):
            d["k"] = value
        with pytest.raises(TypeError, match="PersiDict"):
            d.set_item_if("k", value, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert len(d) == 0


@pytest.mark.parametrize(
    "flag", [ITEM_NOT_AVAILABLE, VALUE_NOT_RETRIEVED, ANY_ETAG, ETAG_IS_THE_SAME, ALWAYS_RETRIEVE]
)
def test_flags_other_than_jokers_cannot_be_stored(flag: Any) -> None:
    # A stored ITEM_NOT_AVAILABLE would make every result about the key ambiguous.
    d: LocalDict[Any] = LocalDict()
    d["k"] = 1
    writes: list[Callable[[], object]] = [
        lambda: d.__setitem__("k", flag),
        lambda: d.set_item_if("k", flag, NA, ANY_ETAG),
        lambda: d.setdefault("n", flag),
        lambda: d.setdefault_if("n", flag, NA, ANY_ETAG),
        lambda: d.transform_item("k", lambda v: flag),
    ]
    for write in writes:
        with pytest.raises(TypeError, match=repr(flag)):
            write()
    assert dict(d.items()) == {("k",): 1}


def test_uncopyable_value_is_a_clear_error() -> None:
    d: LocalDict[Any] = LocalDict()
    with pytest.raises(TypeError) as e:
        d["k"] = threading.Lock()
    assert "'k'" in str(e.value) and "deep-copied" in str(e.value)
    with pytest.raises(TypeError, match="'k'"):
        d["k"] = [threading.Lock()]  # (the str-key fast path)
    assert "k" not in d


# ---------------------------------------------------------------- bad arguments change nothing


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda d: d.__setitem__("a/b", 1), ValueError, ["'a/b'", "unsafe"]),
        (lambda d: d.__setitem__(("k", ""), 1), ValueError, ["''", "empty"]),
        (lambda d: d.__setitem__("..", 1), ValueError, ["'..'", "reserved"]),
        (lambda d: d.__setitem__(5, 1), TypeError, ["5", "int"]),
        (lambda d: d.__getitem__(b"k"), TypeError, ["bytes"]),
        (lambda d: d.__contains__({"k": 1}), TypeError, ["dict"]),
        (lambda d: d.set_item_if("k", 1, NA, "ANY_ETAG"), TypeError, ["condition", "'ANY_ETAG'"]),
        (lambda d: d.set_item_if("k", 1, 5, ANY_ETAG), TypeError, ["expected_etag", "5"]),
        (lambda d: d.get_item_if("k", NA, ANY_ETAG, retrieve_value=True), TypeError,
         ["retrieve_value", "True"]),
        (lambda d: d.get_item_if("k", NA, ANY_ETAG, always_retrieve_value="yes"), TypeError,
         ["always_retrieve_value"]),
        (lambda d: d.discard_if("k", NA, KEEP_CURRENT), TypeError, ["condition", "KEEP_CURRENT"]),
        (lambda d: d.__setitem__("k", "str"), TypeError, ["'k'", "int", "str"]),
        (lambda d: d.__setitem__("k", ITEM_NOT_AVAILABLE), TypeError, ["'k'", "ITEM_NOT_AVAILABLE"]),
    ],
)
def test_bad_arguments_raise_clearly_and_change_nothing(
    call: Callable[[Any], object], exc: type[Exception], words: list[str]
) -> None:
    d: LocalDict[int] = LocalDict(base_class_for_values=int)
    d["k"] = 1
    d["s", "t"] = 2
    before = snapshot(d)
    with pytest.raises(exc) as e:
        call(d)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert snapshot(d) == before


# ---------------------------------------------------------------- params, copies, subdicts


def test_get_params_sorted_and_reopening() -> None:
    d: LocalDict[int] = LocalDict(serialization_format="json", base_class_for_values=int)
    params = d.get_params()
    assert list(params) == sorted(params)
    assert set(params) == {
        "append_only", "backend", "base_class_for_values", "prune_interval", "root_prefix",
        "serialization_format",
    }
    d["k"] = 1
    again = type(d)(**params)
    assert again == d and again["k"] == 1
    again["m"] = 2
    assert d["m"] == 2  # shares storage


def test_copy_equals_reopened_and_shares_storage() -> None:
    d: LocalDict[int] = LocalDict()
    d["k"] = 1
    c = copy.copy(d)
    assert type(c) is LocalDict and c == d and c == type(d)(**d.get_params())
    c["n"] = 2
    assert d["n"] == 2


def test_constructor_is_keyword_only_and_checks_types() -> None:
    with pytest.raises(TypeError):
        LocalDict(MemoryBackend())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="backend"):
        LocalDict(backend={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="append_only"):
        LocalDict(append_only="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="base_class_for_values"):
        LocalDict(base_class_for_values=5)  # type: ignore[arg-type]


def test_subdicts_share_storage() -> None:
    d: LocalDict[int] = LocalDict()
    d["users", "alice", "age"] = 30
    d["users", "bob", "age"] = 25
    d["configs", "db"] = 1
    d["top"] = 0
    users = d.get_subdict("users")
    assert len(users) == 2 and users["alice", "age"] == 30
    alice = d.get_subdict(("users", "alice"))
    assert alice["age"] == 30 and list(alice) == [("age",)]
    alice["age"] = 31
    assert d["users", "alice", "age"] == 31
    users["carol", "age"] = 40
    assert ("users", "carol", "age") in d
    assert users.discard(("bob", "age")) and ("users", "bob", "age") not in d
    users.clear()
    assert set(d) == {("configs", "db"), ("top",)}
    subs = d.subdicts()
    assert list(subs) == ["configs"] and subs["configs"]["db"] == 1
    assert d.get_subdict(()) == d.get_subdict([]) and len(d.get_subdict(())) == 2
    assert len(d.get_subdict("nothing")) == 0


def test_subdict_params_describe_the_subdict() -> None:
    d: LocalDict[int] = LocalDict()
    d["a", "b", "c"] = 1
    sub = d.get_subdict(("a", "b"))
    again = type(sub)(**sub.get_params())
    assert again == sub and again["c"] == 1 and list(again) == [("c",)]
    root: LocalDict[int] = LocalDict(backend=sub.get_params()["backend"], root_prefix="a")
    assert root["b", "c"] == 1


def test_subdict_keeps_the_policy() -> None:
    d: LocalDict[int] = LocalDict(append_only=True, base_class_for_values=int)
    sub = d.get_subdict("s")
    assert sub.append_only and sub.base_class_for_values is int
    sub["x"] = 1
    with pytest.raises(MutationPolicyError):
        sub["x"] = 2
    with pytest.raises(TypeError):
        sub["y"] = "no"  # type: ignore[assignment]


def test_generic_subscription() -> None:
    d = LocalDict[int]()
    d["k"] = 1
    assert isinstance(d, PersiDict)


def test_pickling_is_refused_and_deepcopy_is_a_snapshot() -> None:
    # Memory cannot be shared between processes: pickling a LocalDict is refused
    # (see test_compat_local.py); a deep copy is a detached snapshot of its store
    # (with its own lock), continuing the ETag counter.
    d: LocalDict[int] = LocalDict()
    d["a"] = 1
    sub = d.get_subdict("s")
    sub["x"] = 2
    e = d.etag("a")
    with pytest.raises(TypeError, match="get_params"):
        pickle.dumps(d)
    clone = copy.deepcopy(d)
    assert dict(clone.items()) == dict(d.items()) and clone.etag("a") == e
    clone["b"] = 3
    assert "b" not in d and int(clone.etag("b")) > int(d.etag(("s", "x")))
    sub_clone = copy.deepcopy(sub)
    assert dict(sub_clone.items()) == {("x",): 2}
    sub_clone.transform_item("x", lambda v: v + 1)
    assert sub["x"] == 2 and sub_clone["x"] == 3


def test_batch_operations_on_local_dict() -> None:
    d: LocalDict[list[int]] = LocalDict()
    d.set_many({"a": [1], ("p", "q"): [2]}, max_workers=2)
    got = d.get_many(["a", ("p", "q"), "zz"])
    assert got == {("a",): [1], ("p", "q"): [2]}
    got[("a",)].append(9)  # a deep copy: the store is untouched
    assert d["a"] == [1]
    assert d.get_many(["a"], with_etags=True) == {("a",): ([1], d.etag("a"))}
    assert d.discard_many(["a", "zz"]) == 1 and list(d) == [("p", "q")]


def test_every_public_method_is_tested_here() -> None:
    source = Path(__file__).read_text()
    public = {n for n in dir(PersiDict) if not n.startswith("_")}
    dunders = {"__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__", "__len__",
               "__eq__", "__ior__", "__repr__", "__str__", "__copy__", "__bool__"}
    used = {
        "__getitem__": 'd["a"]', "__setitem__": 'd["a"] = 1', "__delitem__": 'del d["a"]',
        "__contains__": '"a" in d', "__iter__": "set(d)", "__len__": "len(d)", "__eq__": "d == ",
        "__ior__": "d |= ", "__repr__": "repr(d)", "__str__": "str(d)", "__copy__": "copy.copy(d)",
        "__bool__": "not d",
    }
    missing = [n for n in sorted(public) if f".{n}(" not in source and f".{n}" not in source]
    missing += [n for n in sorted(dunders) if used[n] not in source]
    assert not missing, f"public PersiDict methods without a LocalDict test: {missing}"


def test_transaction_is_a_no_op_grouping_on_local_dict() -> None:
    d: LocalDict[int] = LocalDict()
    with d.transaction():
        d["a"] = 1
        assert d["a"] == 1  # each write lands at once
    with pytest.raises(RuntimeError), d.transaction():
        d["b"] = 2
        raise RuntimeError("boom")
    assert d["b"] == 2  # no rollback: the group is not atomic on this store
