"""ExpiringDict with a controllable clock: items vanish exactly at ttl, also after reopening."""

from __future__ import annotations

import datetime
import math
import types
from pathlib import Path
from typing import Any

import pytest

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    FileDirDict,
    LocalDict,
    PersiDict,
)
from persidict.backends import memory
from persidict.wrappers.expiring import ExpiringDict

TTL = 60.0
T0 = 1_000_000.0


def _has(d: Any, key: object) -> bool:
    """``key in d`` (typed loosely: a PersiDict accepts str and tuple keys)."""
    return key in d


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _just_before(t: float) -> float:
    return math.nextafter(t, -math.inf)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One clock for ExpiringDict and for LocalDict's timestamps (T0 at the start)."""
    c = Clock(T0)
    monkeypatch.setattr(memory, "time", types.SimpleNamespace(time=c))
    return c


def _expiring(clock: Clock, wrapped: PersiDict[Any] | None = None) -> ExpiringDict[Any]:
    inner = wrapped if wrapped is not None else LocalDict()
    return ExpiringDict(wrapped_dict=inner, ttl=TTL, clock=clock)


def _assert_visible(d: ExpiringDict[Any], key: str, value: Any) -> None:
    assert d[key] == value and _has(d, key) and d.get(key) == value
    assert (key,) in set(d) and len(d) >= 1 and bool(d)
    assert (key,) in {k for k, _ in d.keys_and_timestamps()}
    d.timestamp(key)
    d.etag(key)


def _assert_gone(d: ExpiringDict[Any], key: str) -> None:
    with pytest.raises(KeyError):
        d[key]
    assert not _has(d, key) and d.get(key) is None and (key,) not in set(d)
    assert (key,) not in {k for k, _ in d.keys_and_timestamps()}
    with pytest.raises(KeyError):
        d.timestamp(key)
    with pytest.raises(KeyError):
        d.etag(key)
    r = d.get_item_if(
        key, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG, retrieve_value=ALWAYS_RETRIEVE
    )
    assert r.actual_etag is ITEM_NOT_AVAILABLE and r.new_value is ITEM_NOT_AVAILABLE


# ---------------------------------------------------------------- construction


def test_ttl_spellings() -> None:
    w: LocalDict[Any] = LocalDict()
    assert ExpiringDict(wrapped_dict=w, ttl=90).ttl == 90.0
    assert ExpiringDict(wrapped_dict=w, ttl=datetime.timedelta(minutes=2)).ttl == 120.0
    assert ExpiringDict(wrapped_dict=w, expiration_days=1.5).ttl == 1.5 * 86400
    assert ExpiringDict(wrapped_dict=w, expiration_days=1) == ExpiringDict(wrapped_dict=w, ttl=86400)
    assert ExpiringDict(wrapped_dict=w, ttl=math.inf).ttl == math.inf


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"ttl": 1, "expiration_days": 1},
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": True},
        {"ttl": "5"},
        {"ttl": float("nan")},
        {"ttl": datetime.timedelta(0)},
        {"expiration_days": 0},
    ],
)
def test_bad_ttls(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ExpiringDict(wrapped_dict=LocalDict(), **kwargs)


def test_wrapped_dict_must_be_mutable_and_clock_callable() -> None:
    with pytest.raises(ValueError, match="mutable"):
        ExpiringDict(wrapped_dict=LocalDict(append_only=True), ttl=1)
    with pytest.raises(TypeError, match="clock"):
        ExpiringDict(wrapped_dict=LocalDict(), ttl=1, clock=5.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- expiry


def test_items_vanish_exactly_at_ttl(clock: Clock) -> None:
    d = _expiring(clock)
    d["a"] = 1
    clock.now = T0 + 10
    d["b"] = 2
    assert d.timestamp("a") == T0 and len(d) == 2
    clock.now = _just_before(T0 + TTL)
    _assert_visible(d, "a", 1)
    clock.now = T0 + TTL
    _assert_gone(d, "a")
    _assert_visible(d, "b", 2)
    assert len(d) == 1 and list(d) == [("b",)] and d.wrapped_dict["a"] == 1  # stored until purged
    clock.now = T0 + 10 + TTL
    _assert_gone(d, "b")
    assert len(d) == 0 and not d and d.newest_keys() == []


def test_expiry_survives_reopening(tmp_path: Path) -> None:
    clock = Clock()
    d: ExpiringDict[str] = ExpiringDict(wrapped_dict=FileDirDict(base_dir=tmp_path), ttl=TTL, clock=clock)
    d["k"] = "v"
    written = d.wrapped_dict.timestamp("k")
    del d
    reopened: ExpiringDict[str] = ExpiringDict(
        wrapped_dict=FileDirDict(base_dir=tmp_path), ttl=TTL, clock=clock
    )
    clock.now = _just_before(written + TTL)
    _assert_visible(reopened, "k", "v")
    clock.now = written + TTL
    _assert_gone(reopened, "k")
    again = ExpiringDict(**reopened.get_params())
    _assert_gone(again, "k")
    assert len(again) == 0 and len(again.wrapped_dict) == 1


def test_purge_deletes_expired_items_only(clock: Clock) -> None:
    d = _expiring(clock)
    d["old1"] = 1
    d["old2"] = 2
    clock.now = T0 + 30
    d["new"] = 3
    clock.now = T0 + TTL
    assert d.purge() == 2
    assert d.purge() == 0
    assert set(d.wrapped_dict) == {("new",)} and d["new"] == 3


def test_conditional_operations_treat_expired_items_as_absent(clock: Clock) -> None:
    d = _expiring(clock)
    d["k"] = "old"
    old_tag = d.etag("k")
    clock.now = T0 + TTL
    # A read with the old ETag: the item is absent now.
    r = d.get_item_if("k", expected_etag=old_tag, condition=ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and r.actual_etag is ITEM_NOT_AVAILABLE
    r = d.get_item_if("k", expected_etag=ITEM_NOT_AVAILABLE, condition=ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.new_value is ITEM_NOT_AVAILABLE
    # Nothing to delete.
    assert not d.discard("k")
    with pytest.raises(KeyError):
        del d["k"]
    r = d.discard_if("k", expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG)
    assert r.actual_etag is ITEM_NOT_AVAILABLE and not r.value_was_mutated
    assert not _has(d.wrapped_dict, "k")  # the expired item was deleted on the way
    # Expired again: a conditional write pinned to the old ETag fails ...
    clock.now = T0
    d.wrapped_dict["k"] = "old"
    old_tag = d.etag("k")
    clock.now = T0 + TTL
    r = d.set_item_if("k", value="new", expected_etag=old_tag, condition=ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and not r.value_was_mutated
    # ... and an insert-if-absent succeeds.
    r = d.set_item_if("k", value="new", expected_etag=ITEM_NOT_AVAILABLE, condition=ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.value_was_mutated and r.actual_etag is ITEM_NOT_AVAILABLE
    assert d["k"] == "new" and d.timestamp("k") == T0 + TTL


def test_setdefault_and_transform_see_an_expired_item_as_absent(clock: Clock) -> None:
    d = _expiring(clock)
    d["s"] = "old"
    d["t"] = 10
    clock.now = T0 + TTL
    assert d.setdefault("s", "default") == "default"
    seen: list[Any] = []

    def bump(cur: Any) -> Any:
        seen.append(cur)
        return 1 if cur is ITEM_NOT_AVAILABLE else cur + 1

    d.transform_item("t", bump)
    assert seen == [ITEM_NOT_AVAILABLE]
    assert d["t"] == 1 and d["s"] == "default"
    d.transform_item("t", bump)
    assert seen == [ITEM_NOT_AVAILABLE, 1] and d["t"] == 2


def test_a_fresh_rewrite_revives_the_key(clock: Clock) -> None:
    d = _expiring(clock)
    d["k"] = 1
    clock.now = T0 + TTL
    assert not _has(d, "k")
    d["k"] = 2
    assert d["k"] == 2 and d.purge() == 0
    clock.now = T0 + 2 * TTL
    assert not _has(d, "k") and d.purge() == 1


# ---------------------------------------------------------------- the PersiDict surface


def test_params_equality_repr_subdicts(clock: Clock) -> None:
    w: LocalDict[int] = LocalDict()
    d: ExpiringDict[int] = ExpiringDict(wrapped_dict=w, ttl=TTL, clock=clock)
    params = d.get_params()
    assert list(params) == ["clock", "ttl", "wrapped_dict"]
    assert ExpiringDict(**params) == d
    assert list(ExpiringDict(wrapped_dict=w, ttl=5).get_params()) == ["ttl", "wrapped_dict"]
    assert "ExpiringDict(" in repr(d) and "ttl=60.0" in repr(d)
    d["x", "y"] = 1
    sub = d.get_subdict("x")
    assert isinstance(sub, ExpiringDict) and sub.ttl == TTL
    assert sub["y"] == 1 and list(d.subdicts()) == ["x"]
    clock.now = T0 + TTL
    assert not _has(sub, "y") and len(sub) == 0 and d.subdicts() == {}  # the sub view shares the clock
    assert ExpiringDict(**sub.get_params()) == sub
