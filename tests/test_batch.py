"""Batch operations on every store and wrapper: get_many, set_many / update, discard_many (issue 14)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from persidict import (
    DELETE_CURRENT,
    KEEP_CURRENT,
    BatchError,
    LocalDict,
    MutationPolicyError,
    PersiDict,
    ProgressEvent,
)
from persidict.backends.s3 import forget_clients
from tests.compat_stores import APPEND_ONLY_KINDS, MUTABLE_KINDS, S3_KINDS, make_store


@pytest.fixture
def s3() -> Iterator[None]:
    """A fresh moto S3 (in process) for the S3 kinds."""
    with mock_aws():
        forget_clients()
        yield
        forget_clients()


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> PersiDict[Any]:
    if kind in S3_KINDS:
        request.getfixturevalue("s3")
    return make_store(kind, tmp_path)


@pytest.fixture(params=MUTABLE_KINDS)
def d(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    return _store(request.param, tmp_path, request)


@pytest.fixture(params=APPEND_ONLY_KINDS)
def ao(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    return _store(request.param, tmp_path, request)


def test_set_many_then_get_many(d: PersiDict[Any]) -> None:
    items = {f"k{i}": i for i in range(25)} | {("p", "q"): [1, 2]}
    d.set_many(items, max_workers=4)
    assert len(d) == 26 and d["k7"] == 7 and d["p", "q"] == [1, 2]
    got = d.get_many([*items, "missing"], max_workers=3)
    assert got == {k if isinstance(k, tuple) else (k,): v for k, v in items.items()}
    assert ("missing",) not in got
    with_etags = d.get_many(["k1", ("p", "q")], with_etags=True)
    assert with_etags[("k1",)] == (1, d.etag("k1"))
    assert with_etags[("p", "q")] == ([1, 2], d.etag(("p", "q")))


def test_get_many_keys_are_keys_and_order_follows_the_request(d: PersiDict[Any]) -> None:
    d.update({"b": 2, "a": 1, "c": 3})
    got = d.get_many(["c", "a", "b", "a"])
    assert list(got) == [("c",), ("a",), ("b",)] and list(got.values()) == [3, 1, 2]


def test_discard_many_counts_what_existed(d: PersiDict[Any]) -> None:
    d.set_many([("a", 1), ("b", 2), ("c", 3)])
    assert d.discard_many(["a", "b", "zz", "a"], max_workers=2) == 2
    assert list(d.keys()) == ["c"]
    assert d.discard_many([]) == 0


def test_set_many_takes_pairs_jokers_and_the_last_of_a_key(d: PersiDict[Any]) -> None:
    d["gone"] = 0
    d["kept"] = 1
    d.set_many([("a", 1), ("a", 2), ("gone", DELETE_CURRENT), ("kept", KEEP_CURRENT)])
    assert d["a"] == 2 and "gone" not in d and d["kept"] == 1


def test_bad_input_writes_nothing(d: PersiDict[Any]) -> None:
    d["z"] = 0
    for bad in ({"a": 1, "not/a key": 2}, [("a", 1), (5, 2)], {"a": 1, "b": threading.Lock()}):
        with pytest.raises((TypeError, ValueError)):
            d.set_many(bad)
        assert list(d.keys()) == ["z"]
    with pytest.raises(ValueError):
        d.get_many(["a", "not/a key"])
    with pytest.raises(ValueError):
        d.discard_many(["z", ""])
    assert d["z"] == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4", True])
def test_max_workers_is_checked(bad: Any) -> None:
    d: LocalDict[int] = LocalDict()
    error = ValueError if isinstance(bad, int) and not isinstance(bad, bool) else TypeError
    for call in (
        lambda: d.set_many({"a": 1}, max_workers=bad),
        lambda: d.get_many(["a"], max_workers=bad),
        lambda: d.discard_many(["a"], max_workers=bad),
    ):
        with pytest.raises(error, match="max_workers"):
            call()


@pytest.fixture(params=[k for k in APPEND_ONLY_KINDS if k != "write_once"])
def refusing(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    """An append-only dict that refuses rewrites (WriteOnceDict ignores them instead)."""
    return _store(request.param, tmp_path, request)


def test_append_only_existing_keys_fail_and_the_others_are_written(refusing: PersiDict[Any]) -> None:
    ao = refusing
    ao.set_many({"a": 1, "b": 2})
    with pytest.raises(MutationPolicyError):  # one failed key: its own exception
        ao.set_many({"a": 10, "c": 3})
    assert ao["c"] == 3
    with pytest.raises(BatchError) as e:  # several: a group naming each
        ao.set_many({"a": 10, "b": 20, "d": 4})
    assert sorted(e.value.keys) == [("a",), ("b",)]  # type: ignore[type-var]
    assert all(isinstance(x, MutationPolicyError) for x in e.value.exceptions)
    assert ao["d"] == 4 and ao["a"] == 1 and ao["b"] == 2


def test_write_once_ignores_rewrites_in_a_batch(tmp_path: Path) -> None:
    w = make_store("write_once", tmp_path)
    w.set_many({"a": 1, "b": 2})
    w.set_many({"a": 1, "c": 3})  # a rewrite of the same value is ignored, not refused
    assert w.get_many(["a", "b", "c"]) == {("a",): 1, ("b",): 2, ("c",): 3}


def test_append_only_discard_many_is_refused(ao: PersiDict[Any]) -> None:
    ao["a"] = 1
    with pytest.raises(MutationPolicyError):
        ao.discard_many(["a"])
    assert ao["a"] == 1


def test_progress_sees_every_item(d: PersiDict[Any]) -> None:
    events: list[ProgressEvent] = []
    d.set_many({f"k{i}": i for i in range(10)}, progress=events.append, max_workers=3)
    assert sorted(tuple(e.key) for e in events) == sorted((f"k{i}",) for i in range(10))
    assert [e.done for e in events] == list(range(1, 11)) and {e.total for e in events} == {10}
    events.clear()
    d.get_many([f"k{i}" for i in range(10)] + ["missing"], progress=events.append)
    assert len(events) == 11 and events[-1].done == 11 and all(e.ok for e in events)
    events.clear()
    assert d.discard_many([f"k{i}" for i in range(5)], progress=events.append) == 5
    assert len(events) == 5


def test_progress_true_needs_no_callback(d: PersiDict[Any]) -> None:
    d.set_many({"a": 1}, progress=True)
    assert d.get_many(["a"], progress=True) == {("a",): 1}
    with pytest.raises(TypeError, match="progress"):
        d.set_many({"a": 1}, progress="yes")  # type: ignore[arg-type]


class _Failing(LocalDict[Any]):
    """A LocalDict whose reads and writes of keys starting with "bad" fail like a storage error."""

    def _get_item_if(self, key: Any, *args: Any) -> Any:
        if key[0].startswith("bad"):
            raise OSError(f"read of {key} failed")
        return super()._get_item_if(key, *args)

    def _set_serialised(self, key: Any, value: Any, payload: Any) -> None:
        if key[0].startswith("bad"):
            raise OSError(f"write of {key} failed")
        super()._set_serialised(key, value, payload)

    def _set_serialised_many(self, items: Any, workers: int, on_done: Any) -> list[Any]:
        return PersiDict._set_serialised_many(self, items, workers, on_done)

    def _get_many(self, keys: Any, workers: int, on_done: Any) -> list[Any]:
        return PersiDict._get_many(self, keys, workers, on_done)


def test_partial_failures_name_every_failed_key_and_spare_the_others() -> None:
    d = _Failing()
    with pytest.raises(BatchError) as e:
        d.set_many({"ok1": 1, "bad1": 2, "ok2": 3, "bad2": 4}, max_workers=3)
    assert e.value.keys == [("bad1",), ("bad2",)] and len(e.value.exceptions) == 2
    assert "bad1" in str(e.value) and "bad2" in str(e.value)
    assert dict(d.items()) == {("ok1",): 1, ("ok2",): 3}
    with pytest.raises(OSError, match="bad1"):  # one failure: that exception itself
        d.set_many({"ok3": 5, "bad1": 6})
    assert d["ok3"] == 5
    with pytest.raises(OSError, match="bad9"):
        d.get_many(["ok1", "bad9"])


def test_clear_with_progress_reports_each_item(d: PersiDict[Any]) -> None:
    d.set_many({f"k{i}": i for i in range(7)} | {("s", "x"): 1})
    events: list[ProgressEvent] = []
    d.clear(progress=events.append)
    assert len(d) == 0 and len(events) == 8 and events[-1].done == 8
    assert sorted(tuple(e.key) for e in events)[-1] == ("s", "x")
    d["a"] = 1
    d.clear()  # without progress: the store's own fast path
    assert len(d) == 0


def test_expiring_purge_with_progress(tmp_path: Path) -> None:
    from persidict import ExpiringDict

    now = [time.time()]
    e: ExpiringDict[int] = ExpiringDict(wrapped_dict=LocalDict(), ttl=10, clock=lambda: now[0])
    e.set_many({"a": 1, "b": 2})
    now[0] += 100.0
    events: list[ProgressEvent] = []
    assert e.purge(progress=events.append) == 2
    assert sorted(tuple(ev.key) for ev in events) == [("a",), ("b",)]
