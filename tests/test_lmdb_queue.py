"""Writes queued inside LmdbDict.transaction(): never lost, reordered, mistimed or unbounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persidict.backends.lmdb_env import QUEUE_LENGTH, QUEUE_VALUE_MAX
from persidict.flags import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE
from persidict.lmdb_dict import LmdbDict

from .lmdb_helpers import Clock


def test_queued_writes_keep_the_time_they_were_made(tmp_path: Path) -> None:
    clock = Clock(100.0)
    d = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock)
    with d.transaction():
        d["a"] = 1
        clock.now = 110.0
        d["b"] = 2
        d["s", "t"] = 3  # a tuple key: through the backend's queue
        clock.now = 120.0
        d["a"] = 4
        clock.now = 130.0  # no write at 130: nothing is stamped with the commit's time
    meta = {k: (d.metadata(k).ctime, d.metadata(k).mtime) for k in ("a", "b", ("s", "t"))}
    assert meta == {"a": (100.0, 120.0), "b": (110.0, 110.0), ("s", "t"): (110.0, 110.0)}
    assert len({d.etag(k) for k in d}) == 3


def test_two_dicts_on_one_database_keep_the_order_of_their_writes(tmp_path: Path) -> None:
    c1, c2 = Clock(100.0), Clock(500.0)
    d1 = LmdbDict[int](base_dir=tmp_path, durable=False, clock=c1)
    d2 = LmdbDict[int](base_dir=tmp_path, durable=False, clock=c2)
    with d1.transaction():
        d1["k"] = 1
        d2["k"] = 2  # the other dict's write goes after d1's queued one
        d1["k"] = 3
        d1["j"] = 4
        d2["j"] = 5
        assert (d1["k"], d2["j"]) == (3, 5)
        d1["j"] = 6
    assert (d2["k"], d2["j"]) == (3, 6)
    assert (d1.metadata("k").ctime, d1.metadata("k").mtime) == (100.0, 100.0)  # d1 wrote first and last
    assert d1.metadata("j").mtime == 100.0 and d1.metadata("j").ctime == 100.0


def test_each_dict_writes_its_own_queued_records(tmp_path: Path) -> None:
    """The records a dict queued are written by it, with its expiry rule."""
    clock = Clock(0.0)
    expiring = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock, ttl=50.0, purge_at_open=False)
    plain = LmdbDict[int](base_dir=tmp_path, durable=False, clock=clock)
    plain["k"] = 0
    clock.now = 100.0
    with plain.transaction():
        expiring["k"] = 1  # "k" had expired for this dict: a new life
        plain["x"] = 2  # (for this one, "k" never expires)
    assert plain.metadata("k").ctime == 100.0


def test_the_queue_stays_bounded(tmp_path: Path) -> None:
    d = LmdbDict[bytes](base_dir=tmp_path, durable=False)
    handle = d._lmdb.handle
    longest = 0
    with d.transaction():
        for i in range(QUEUE_LENGTH * 2 + 5):
            d[f"k{i}"] = b"v"
            assert handle.batch is not None
            longest = max(longest, len(handle.batch.queue))
        assert longest == QUEUE_LENGTH - 1  # written when it reaches QUEUE_LENGTH
        d["big"] = b"x" * (QUEUE_VALUE_MAX + 1)
        assert handle.batch is not None and handle.batch.queue == []  # a large value is written at once
        d["small", "tuple"] = b"y"
        d["big", "tuple"] = b"x" * (QUEUE_VALUE_MAX + 1)
        assert handle.batch is not None and handle.batch.queue == []
    assert len(d) == QUEUE_LENGTH * 2 + 8


def test_a_failed_transaction_drops_its_queue(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    d["a"] = 0
    with pytest.raises(RuntimeError), d.transaction():
        d["a"] = 1
        d["b"] = 2
        raise RuntimeError
    assert dict(d.items()) == {("a",): 0}
    with d.transaction():
        d["c"] = 3  # the next transaction starts with an empty queue
    assert dict(d.items()) == {("a",): 0, ("c",): 3}


_KEYS = st.sampled_from(["a", "b", "c", ("s", "a"), ("s", "d")])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("set other"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("set sub"), st.sampled_from(["a", "d"]), st.integers(0, 9)),
        st.tuples(st.just("update"), st.dictionaries(_KEYS, st.integers(0, 9), max_size=3)),
        st.tuples(st.just("delete"), _KEYS),
        st.tuples(st.just("get"), _KEYS),
        st.tuples(st.just("contains"), _KEYS),
        st.tuples(st.just("keys"),),
        st.tuples(st.just("set if same etag"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("pop"), _KEYS),
        st.tuples(st.just("setdefault"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("increment"), _KEYS),
        st.tuples(st.just("timestamps"),),
        st.tuples(st.just("values"),),
    ),
    max_size=30,
)


def _norm(key: Any) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, commit=st.booleans())
def test_transactions_behave_like_a_dict(
    tmp_path_factory: pytest.TempPathFactory, ops: Any, commit: bool
) -> None:
    """Reads inside a transaction see every earlier write; the commit keeps them all, a rollback none."""
    path = tmp_path_factory.mktemp("txn")
    d = LmdbDict[int](base_dir=path, durable=False)
    other = LmdbDict[int](base_dir=path, durable=False)
    sub = d.get_subdict("s")
    d.update({"a": 100, ("s", "d"): 200})
    before = {_norm(k): v for k, v in d.items()}
    model = dict(before)
    try:
        with d.transaction():
            for op in ops:
                name = op[0]
                if name == "set":
                    d[op[1]] = op[2]
                    model[_norm(op[1])] = op[2]
                elif name == "set other":
                    other[op[1]] = op[2]
                    model[_norm(op[1])] = op[2]
                elif name == "set sub":
                    sub[op[1]] = op[2]
                    model[("s", op[1])] = op[2]
                elif name == "update":
                    d.update(op[1])
                    model.update({_norm(k): v for k, v in op[1].items()})
                elif name == "delete":
                    d.discard(op[1])
                    model.pop(_norm(op[1]), None)
                elif name == "get":
                    assert d.get(op[1]) == model.get(_norm(op[1]))
                elif name == "contains":
                    assert (op[1] in other) == (_norm(op[1]) in model)
                elif name == "keys":
                    assert sorted(tuple(k) for k in d) == sorted(model)
                elif name == "pop":
                    assert d.pop(op[1], None) == model.pop(_norm(op[1]), None)
                elif name == "setdefault":
                    assert sub.setdefault(op[1][-1], op[2]) == model.setdefault(("s", op[1][-1]), op[2])
                elif name == "increment":
                    d.transform_item(op[1], lambda v: 1 if v is ITEM_NOT_AVAILABLE else v + 1)
                    model[_norm(op[1])] = model.get(_norm(op[1]), 0) + 1
                elif name == "timestamps":
                    stamps = dict(other.keys_and_timestamps())
                    assert sorted(stamps) == sorted(model) and all(t > 0 for t in stamps.values())
                elif name == "values":
                    assert len(d) == len(model) and sorted(d.values()) == sorted(model.values())
                else:
                    key = _norm(op[1])
                    if key in model:
                        r = d.set_item_if(op[1], op[2], d.etag(op[1]), ETAG_IS_THE_SAME)
                        assert r.condition_was_satisfied
                        model[key] = op[2]
            if not commit:
                raise _Rollback
    except _Rollback:
        model = before
    assert {_norm(k): v for k, v in other.items()} == model


class _Rollback(Exception):
    pass
