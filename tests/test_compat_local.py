"""LocalDict's compatibility contracts (COMPAT.md 16, 17, 27b) and its counted len().

16: ``prune_interval`` is accepted, validated and reported.
17: values are deep copies in and out, never serialised; the format is a namespace label.
27b: pickling is refused, pointing to get_params(); copy.copy is a view, copy.deepcopy a snapshot.
len(): the store counts items per folder, for the dict and every subdict, under threads too.
"""

from __future__ import annotations

import copy
import pickle
import random
import sys
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    VALUE_NOT_RETRIEVED,
    LocalDict,
    PersiDict,
)
from persidict.backends.memory import MemoryBackend
from persidict.local_dict import deep_copy

from .threads import run_in_threads

# ---------------------------------------------------------------- 16: prune_interval


def test_prune_interval_is_accepted_and_reported() -> None:
    assert LocalDict().get_params()["prune_interval"] == 64
    d: LocalDict[int] = LocalDict(prune_interval=64)
    assert d.get_params()["prune_interval"] == 64 and d.prune_interval == 64
    assert LocalDict(prune_interval=1).get_params()["prune_interval"] == 1
    for off in (None, 0, -1, -64):
        assert LocalDict(prune_interval=off).get_params()["prune_interval"] is None
    assert list(d.get_params()) == sorted(d.get_params())
    assert "prune_interval=64" in repr(d)


def test_prune_interval_survives_reopening_and_subdicts() -> None:
    d: LocalDict[int] = LocalDict(prune_interval=7)
    d["s", "k"] = 1
    again: LocalDict[int] = LocalDict(**d.get_params())
    assert again.prune_interval == 7 and again["s", "k"] == 1
    sub = d.get_subdict("s")
    assert sub.get_params()["prune_interval"] == 7
    assert copy.copy(d).get_params()["prune_interval"] == 7


@pytest.mark.parametrize("bad", [True, False, "64", 6.4, [64]])
def test_prune_interval_of_the_wrong_type_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="prune_interval") as e:
        LocalDict(prune_interval=bad)
    assert repr(bad) in str(e.value)


def test_prune_interval_changes_nothing_observable() -> None:
    for interval in (None, 1, 64):
        d: LocalDict[int] = LocalDict(prune_interval=interval)
        for i in range(10):
            d["a", f"k{i}"] = i
        for i in range(10):
            del d["a", f"k{i}"]
        assert len(d) == 0 and d.subdicts() == {} and list(d) == []


# ---------------------------------------------------------------- 17: deep copies, never serialised


def test_a_class_defined_in_a_function_is_stored() -> None:
    @attrs.define
    class Local:
        x: list[int]

    d: LocalDict[Any] = LocalDict()
    value = Local([1, 2])
    d["k"] = value
    value.x.append(3)  # the stored value is a copy
    got = d["k"]
    assert type(got) is Local and got == Local([1, 2]) and got is not value
    got.x.append(4)  # and so is the value read
    assert d["k"] == Local([1, 2])


def test_a_lambda_in_a_container_is_stored() -> None:
    d: LocalDict[Any] = LocalDict()

    def f(v: int) -> int:
        return v + 1

    d["k"] = {"fn": lambda v: v * 2, "g": [f]}
    got = d["k"]
    assert got["fn"](21) == 42 and got["g"][0] is f  # functions are their own deep copies
    d.update({"u": [lambda: "u"]})
    assert d["u"][0]() == "u"
    assert d.setdefault("s", (lambda: "s",))[0]() == "s"


class _Unpicklable:
    """Deep-copyable, but pickling it raises."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self) -> Any:
        raise TypeError("do not pickle me")

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unpicklable:
        return _Unpicklable(self.n)


@pytest.mark.parametrize("fmt", ["pkl", "json"])
def test_nothing_is_pickled(fmt: str) -> None:
    d: LocalDict[Any] = LocalDict(serialization_format=fmt)
    d["k"] = _Unpicklable(1)
    d["s", "t"] = [_Unpicklable(2)]
    assert d["k"].n == 1 and d["s", "t"][0].n == 2
    r = d.set_item_if("k", _Unpicklable(3), d.etag("k"), ETAG_IS_THE_SAME, retrieve_value=ALWAYS_RETRIEVE)
    assert r.condition_was_satisfied and d["k"].n == 3
    transformed: Any = d.transform_item("k", lambda v: _Unpicklable(v.n + 1)).new_value
    read: Any = d.get_item_if("k", ITEM_NOT_AVAILABLE, ANY_ETAG).new_value
    assert transformed.n == read.n == 4


def test_a_big_bytes_value_is_not_copied_at_all() -> None:
    d: LocalDict[bytes] = LocalDict()
    big = b"x" * (1 << 20)
    d["big"] = big
    assert d["big"] is big  # bytes are their own deep copy: no serialisation, no copy
    assert d.get_item_if("big", ITEM_NOT_AVAILABLE, ANY_ETAG).new_value is big
    d["sub", "big"] = big
    assert d.get_subdict("sub")["big"] is big


class _Counted:
    """Counts its deep copies."""

    copies = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> _Counted:
        _Counted.copies += 1
        return _Counted()


def test_writes_and_reads_make_one_deep_copy_each() -> None:
    d: LocalDict[Any] = LocalDict()
    _Counted.copies = 0
    d["k"] = _Counted()
    assert _Counted.copies == 1
    d["k"]
    assert _Counted.copies == 2
    d["l"] = [_Counted()]
    d["l"]
    assert _Counted.copies == 4
    assert "k" in d and _Counted.copies == 4  # `in` copies nothing
    d.get_item_if("k", d.etag("k"), ETAG_IS_THE_SAME)  # IF_ETAG_CHANGED, unchanged: no value read
    assert _Counted.copies == 4


def test_deep_copies_keep_shared_parts_and_cycles() -> None:
    d: LocalDict[Any] = LocalDict()
    shared = [1, 2]
    cyclic: list[Any] = [0]
    cyclic.append(cyclic)
    d["k"] = {"a": shared, "b": shared, "t": (shared,), "c": cyclic}
    got = d["k"]
    assert got["a"] is got["b"] is got["t"][0] and got["a"] is not shared
    assert got["c"][1] is got["c"]
    got["a"].append(3)
    assert d["k"]["b"] == [1, 2]


def test_subclasses_of_builtin_containers_keep_their_type() -> None:
    import collections

    d: LocalDict[Any] = LocalDict()
    value = collections.defaultdict(list, {"a": [1]})
    d["k"] = value
    got = d["k"]
    assert type(got) is collections.defaultdict and got["zz"] == [] and "zz" not in d["k"]
    d["o"] = collections.OrderedDict([("b", 1), ("a", 2)])
    assert type(d["o"]) is collections.OrderedDict and list(d["o"]) == ["b", "a"]


def test_json_is_only_a_label() -> None:
    def local(v: int) -> int:
        return v

    d: LocalDict[Any] = LocalDict(serialization_format="json")
    value = {"t": (1, 2), 1: {3, 4}, (1, "x"): frozenset({"a"}), "u": _Unpicklable(5), "f": local}
    d["k"] = value
    got = d["k"]
    assert type(got["t"]) is tuple and got[1] == {3, 4} and got[(1, "x")] == frozenset({"a"})
    assert got["u"].n == 5 and got["f"] is local


def test_formats_are_separate_namespaces() -> None:
    backend = MemoryBackend()
    views = {
        fmt: LocalDict(backend=backend, serialization_format=fmt) for fmt in ("pkl", "json", "txt", "b.pkl")
    }
    views["pkl"]["a"] = 1
    views["json"]["a"] = 2
    views["txt"]["a"] = "three"
    views["b.pkl"]["a"] = "four"  # a text format whose name ends like another format's
    views["json"]["s", "x"] = 5
    assert views["pkl"]["a"] == 1 and views["json"]["a"] == 2 and views["txt"]["a"] == "three"
    assert views["b.pkl"]["a"] == "four"
    assert "a.b" not in views["pkl"] and set(views["pkl"]) == {("a",)}
    assert [len(v) for v in views.values()] == [1, 2, 1, 1]
    views["json"].clear()
    assert [len(v) for v in views.values()] == [1, 0, 1, 1]
    assert views["pkl"]["a"] == 1


def test_text_formats_hold_str_only() -> None:
    class Name(str):
        pass

    d: LocalDict[Any] = LocalDict(serialization_format="md")
    d["k"] = "text"
    d["n"] = Name("sub")
    assert d["n"] == "sub"
    writes: list[Callable[[Any], object]] = [
        lambda v: d.__setitem__("x", v),
        lambda v: d.__setitem__(("x", "y"), v),
        lambda v: d.set_item_if("x", v, ITEM_NOT_AVAILABLE, ANY_ETAG),
        lambda v: d.update({"x": v}),
    ]
    for bad in (1, b"bytes", None, ["a"]):
        for write in writes:
            with pytest.raises(TypeError, match="str"):
                write(bad)
    assert set(d) == {("k",), ("n",)}
    with pytest.raises(ValueError, match="str"):
        LocalDict(serialization_format="md", base_class_for_values=int)


def test_value_rules_still_apply() -> None:
    d: LocalDict[Any] = LocalDict(base_class_for_values=int)
    d["k"] = 1
    with pytest.raises(TypeError, match="int"):
        d["k"] = "one"
    loose: LocalDict[Any] = LocalDict()
    for value in (LocalDict(), loose.get_subdict("s"), loose):
        with pytest.raises(TypeError, match="PersiDict"):
            loose["k"] = value
    assert len(loose) == 0 and d["k"] == 1


def test_results_hold_copies() -> None:
    d: LocalDict[Any] = LocalDict()
    d["k"] = [1]
    got: Any = d.get_item_if("k", ITEM_NOT_AVAILABLE, ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE).new_value
    got.append(2)
    assert d["k"] == [1]

    def mutate_and_keep(v: Any) -> Any:
        v.append(99)  # the transformer gets a copy: this changes nothing stored
        return DELETE_CURRENT if v == [] else [*v]

    d.transform_item("k", mutate_and_keep)
    assert d["k"] == [1, 99]
    seen: list[Any] = []

    def keep(v: Any) -> Any:
        seen.append(v)
        return v

    d.transform_item("k", keep)
    seen[0].append(7)
    assert d["k"] == [1, 99]


def test_etags_change_on_every_write_and_conditions_work() -> None:
    d: LocalDict[Any] = LocalDict()
    assert d.capabilities.unique_etags
    d["k"] = [1]
    etags: list[Any] = [d.etag("k")]
    d["k"] = [1]  # the same value
    etags.append(d.etag("k"))
    r = d.set_item_if("k", [1], etags[-1], ETAG_IS_THE_SAME)
    etags.append(r.resulting_etag)
    etags.append(d.transform_item("k", lambda v: v).resulting_etag)
    assert len(set(etags)) == 4 and etags[-1] == d.etag("k")
    r = d.get_item_if("k", etags[-1], ETAG_HAS_CHANGED, retrieve_value=IF_ETAG_CHANGED)
    assert not r.condition_was_satisfied and r.new_value is VALUE_NOT_RETRIEVED
    r = d.get_item_if("k", etags[0], ETAG_HAS_CHANGED, retrieve_value=IF_ETAG_CHANGED)
    assert r.condition_was_satisfied and r.new_value == [1]
    assert not d.set_item_if("k", [2], etags[0], ETAG_IS_THE_SAME).condition_was_satisfied
    assert d["k"] == [1]


def test_stat_size_of_stored_objects() -> None:
    backend = MemoryBackend()
    d: LocalDict[Any] = LocalDict(backend=backend)
    d["b"] = b"x" * 1000
    d["s"] = "a" * 1000
    d["l"] = ["a" * 1000]
    stats = {loc[-1]: stat for loc, stat in backend.list_stats(())}
    assert stats["b.pkl"].size == 1000  # bytes: their length
    assert stats["s.pkl"].size == sys.getsizeof("a" * 1000)  # else the object's own size ...
    assert stats["l.pkl"].size < 200  # ... shallow: not what it refers to


def test_an_uncopyable_value_changes_nothing() -> None:
    d: LocalDict[Any] = LocalDict()
    d["k"] = 1
    writes: list[Callable[[Any], object]] = [
        lambda v: d.__setitem__("k", v),
        lambda v: d.__setitem__(("s", "k"), v),
        lambda v: d.set_item_if("k", v, ITEM_NOT_AVAILABLE, ANY_ETAG),
        lambda v: d.transform_item("k", lambda _: v),
    ]
    for bad in (threading.Lock(), [threading.Lock()], {"l": threading.Lock()}):
        for write in writes:
            with pytest.raises(TypeError, match="'k'"):
                write(bad)
    assert dict(d.items()) == {("k",): 1}


# ---------------------------------------------------------------- deep_copy is copy.deepcopy


def _shape(value: Any, seen: dict[int, int]) -> Any:
    """A description of ``value`` that includes which of its containers are the same object."""
    if isinstance(value, list | dict | tuple | set | frozenset):
        if id(value) in seen:
            return ("ref", seen[id(value)])
        seen[id(value)] = len(seen)
        if isinstance(value, dict):
            items: Any = [(_shape(k, seen), _shape(v, seen)) for k, v in value.items()]
        elif isinstance(value, set | frozenset):
            items = sorted(repr(v) for v in value)
        else:
            items = [_shape(v, seen) for v in value]
        return (type(value).__name__, items)
    return (type(value).__name__, repr(value))


_atoms = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3),
                   st.binary(max_size=3), st.frozensets(st.integers(0, 3), max_size=2))
_plain = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=2), st.integers(0, 5), st.tuples(st.integers(0, 3))),
                        inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=_plain, share=st.integers(0, 3))
def test_deep_copy_gives_what_copy_deepcopy_gives(value: Any, share: int) -> None:
    # Share a part, and add a cycle, to check that sharing is kept as deepcopy keeps it.
    part = [value]
    holder: list[Any] = [value, part, part, (part, value), {"p": part}]
    if share:
        holder.append(holder)
    expected = copy.deepcopy(holder)
    got = deep_copy(holder)
    assert _shape(got, {}) == _shape(expected, {})
    assert got is not holder and got[1] is not part


def test_deep_copy_returns_immutables_themselves_and_copies_the_rest() -> None:
    t = (1, "a", (2.5, None))
    b = b"xy" * 3
    assert deep_copy(t) is t and deep_copy(b) is b
    t2 = (1, [2])
    c = deep_copy(t2)
    assert c == t2 and c is not t2 and c[1] is not t2[1]
    s = {1, 2}
    assert deep_copy(s) == s and deep_copy(s) is not s


# ---------------------------------------------------------------- 27b: pickling refused; copies


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_a_local_dict_is_refused(protocol: int) -> None:
    d: LocalDict[int] = LocalDict()
    d["s", "k"] = 1
    for view in (d, d.get_subdict("s"), LocalDict(append_only=True)):
        with pytest.raises(TypeError, match=r"get_params\(\)") as e:
            pickle.dumps(view, protocol=protocol)
        assert "LocalDict" in str(e.value)


def test_a_snapshot_can_still_be_sent_on_purpose() -> None:
    # The message's way out: the parameters pickle, with a snapshot of the memory store.
    d: LocalDict[int] = LocalDict(root_prefix="r")
    d["k"] = 1
    again: LocalDict[int] = LocalDict(**pickle.loads(pickle.dumps(d.get_params())))
    assert dict(again.items()) == {("k",): 1}
    again["n"] = 2
    assert "n" not in d


def test_copy_is_a_view_of_the_same_store() -> None:
    d: LocalDict[int] = LocalDict()
    d["a"] = 1
    sub = d.get_subdict("s")
    for view, parent in ((copy.copy(d), d), (copy.copy(sub), sub)):
        assert type(view) is LocalDict and view == parent
        assert view.get_params() == parent.get_params()
    c = copy.copy(d)
    c["b"] = 2
    d["c"] = 3
    assert d["b"] == 2 and c["c"] == 3 and len(c) == len(d) == 3


def test_deepcopy_is_a_detached_snapshot() -> None:
    d: LocalDict[Any] = LocalDict(serialization_format="json", prune_interval=5)
    d["a"] = [1]
    d["s", "x"] = lambda: "x"  # deep-copied, not pickled
    other: LocalDict[int] = LocalDict(backend=d.get_params()["backend"])
    other["p"] = 9
    clone = copy.deepcopy(d)
    params = clone.get_params()
    assert params.pop("backend") is not d.get_params()["backend"]
    assert params == {k: v for k, v in d.get_params().items() if k != "backend"}
    assert clone["a"] == [1] and clone["s", "x"]() == "x" and len(clone) == 2
    assert LocalDict(backend=clone.get_params()["backend"])["p"] == 9  # the whole store
    clone["a"] = [2]
    del clone["s", "x"]
    assert d["a"] == [1] and ("s", "x") in d and len(d) == 2 and len(clone) == 1
    assert int(clone.etag("a")) > int(d.etag("a"))  # the ETag counter goes on


def test_deepcopy_of_views_together_shares_one_snapshot() -> None:
    d: LocalDict[int] = LocalDict()
    sub = d.get_subdict("s")
    sub["k"] = 1
    d2, sub2 = copy.deepcopy([d, sub])
    sub2["n"] = 2
    assert d2["s", "n"] == 2 and ("s", "n") not in d


# ---------------------------------------------------------------- len(): counted, not walked


def _no_walking(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("len() listed the store")

    for name in ("list", "list_stats", "list_times", "_snapshot", "_walk"):
        monkeypatch.setattr(MemoryBackend, name, refuse)


def test_len_of_a_dict_and_its_subdicts_does_not_list(monkeypatch: pytest.MonkeyPatch) -> None:
    d: LocalDict[int] = LocalDict()
    for i in range(50):
        d[f"k{i}"] = i
        d["a", f"k{i}"] = i
        d["a", "b", f"k{i}"] = i
    LocalDict(backend=d.get_params()["backend"], serialization_format="json")["a", "j"] = 0
    a, ab = d.get_subdict("a"), d.get_subdict(("a", "b"))
    _no_walking(monkeypatch)
    assert (len(d), len(a), len(ab), len(d.get_subdict("zz"))) == (150, 100, 50, 0)
    assert bool(d) and bool(ab) and not d.get_subdict(("a", "zz"))
    del d["a", "b", "k0"]
    d["a", "k1"] = 100  # an overwrite counts nothing
    assert (len(d), len(a), len(ab)) == (149, 99, 49)
    monkeypatch.undo()
    ab.clear()
    assert (len(d), len(a), len(ab)) == (100, 50, 0)


def test_len_follows_every_kind_of_write_and_delete() -> None:
    d: LocalDict[int] = LocalDict()
    d["top"] = 0
    sub = d.get_subdict("s")
    ops: list[tuple[Any, int]] = [
        (lambda: d.__setitem__(("s", "a"), 1), 1),
        (lambda: sub.setdefault("b", 2), 2),
        (lambda: sub.setdefault_if("c", 3, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME), 3),
        (lambda: sub.set_item_if("d", 4, ITEM_NOT_AVAILABLE, ANY_ETAG), 4),
        (lambda: sub.transform_item("e", lambda v: 5), 5),
        (lambda: d.update({("s", "f"): 6, "top": 1}), 6),
        (lambda: sub.pop("a"), 5),
        (lambda: sub.discard_if("b", sub.etag("b"), ETAG_IS_THE_SAME), 4),
        (lambda: sub.set_item_if("c", DELETE_CURRENT, ITEM_NOT_AVAILABLE, ANY_ETAG), 3),
        (lambda: sub.transform_item("d", lambda v: DELETE_CURRENT), 2),
        (lambda: sub.__setitem__("e", DELETE_CURRENT), 1),
        (lambda: sub.popitem(), 0),
    ]
    for op, expected in ops:
        op()
        assert len(sub) == expected and len(d) == expected + 1
        assert len(sub) == sum(1 for _ in sub)


def test_len_agrees_with_a_count_after_random_operations() -> None:
    rng = random.Random(20260401)
    backend = MemoryBackend()
    views = [LocalDict(backend=backend, serialization_format=f) for f in ("pkl", "json")]
    parts = ["a", "b", "c"]
    for step in range(3000):
        view = rng.choice(views)
        key = tuple(rng.choice(parts) for _ in range(rng.randint(1, 3)))
        action = rng.random()
        if action < 0.55:
            view[key] = step
        elif action < 0.9:
            view.discard(key)
        elif action < 0.97:
            view.get_subdict(key[:-1]).clear()
        else:
            view.get_subdict(key[:1]).popitem() if view.get_subdict(key[:1]) else None
        if step % 100 == 0 or step == 2999:
            for v in views:
                keys = list(v)
                assert len(v) == len(keys) == len(set(keys))
                for prefix in [(), ("a",), ("a", "b"), ("c", "c")]:
                    assert len(v.get_subdict(prefix)) == sum(
                        1 for k in keys if len(k) > len(prefix) and k[: len(prefix)] == prefix
                    )


def test_len_under_threads() -> None:
    d: LocalDict[int] = LocalDict()
    n_threads, per_thread = 8, 300

    def work(i: int) -> None:
        sub = d.get_subdict(("t", str(i % 3)))
        for j in range(per_thread):
            sub[f"{i}-{j}"] = j
            d[f"{i}-{j}"] = j
            if j % 3 == 0:
                del sub[f"{i}-{j}"]
            len(sub)
            len(d)

    run_in_threads(n_threads, work)
    per_sub = per_thread - per_thread // 3
    assert len(d.get_subdict("t")) == n_threads * per_sub
    assert len(d) == n_threads * (per_thread + per_sub)
    for i in range(3):
        sub = d.get_subdict(("t", str(i)))
        assert len(sub) == sum(1 for _ in sub) == len([k for k in range(n_threads) if k % 3 == i]) * per_sub
    assert len(d) == sum(1 for _ in d)


def test_clear_under_threads_leaves_no_count_behind() -> None:
    d: LocalDict[int] = LocalDict()

    def work(i: int) -> None:
        sub = d.get_subdict(("c", str(i % 2)))
        for j in range(200):
            sub[str(j), str(i)] = j
            if j % 50 == 49:
                sub.clear()

    run_in_threads(6, work)
    d.get_subdict("c").clear()
    assert len(d) == 0 and list(d) == [] and not d
    d["x"] = 1
    assert len(d) == 1


def test_iteration_timestamps_and_clear_of_a_subdict() -> None:
    d: LocalDict[int] = LocalDict()
    d["top"] = 0
    d["s", "a"] = 1
    d["s", "t", "b"] = 2
    d["other", "c"] = 3
    s = d.get_subdict("s")
    assert sorted(map(tuple, s)) == [("a",), ("t", "b")]
    assert {k for k, _ in s.keys_and_timestamps()} == {("a",), ("t", "b")}
    assert s.timestamp("a") <= s.timestamp(("t", "b"))
    assert list(s.subdicts()) == ["t"] and len(s.subdicts()["t"]) == 1
    s.clear()
    assert sorted(map(tuple, d)) == [("other", "c"), ("top",)] and len(s) == 0
    s["again"] = 4
    assert len(d) == 3 and d["s", "again"] == 4


def test_an_empty_store_has_nothing_left_over() -> None:
    backend = MemoryBackend()
    d: LocalDict[int] = LocalDict(backend=backend)
    for i in range(20):
        d["a", "b", str(i)] = i
        d["a", str(i)] = i
    for k in list(d):
        del d[k]
    assert backend.count(()) == 0 and repr(backend) == "MemoryBackend(0 objects)"
    assert list(backend.list(())) == [] and backend.delete_prefix(("pkl",)) == 0


def test_generic_stores_still_work_over_a_memory_backend() -> None:
    # The Backend protocol as other code uses it: read/write/stat/list/delete_many.
    backend = MemoryBackend()
    d: PersiDict[int] = LocalDict(backend=backend)
    d["a", "b"] = 1
    ((loc, stat),) = list(backend.list_stats(()))
    got: Any = backend.read(loc)
    assert isinstance(got, tuple) and got[0] == 1 and got[1] == stat
    assert backend.stat(loc) == stat and backend.delete_many([loc, loc]) == 1 and len(d) == 0
