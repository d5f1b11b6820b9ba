"""WriteOnceDict: first write wins, rewrites are ignored, spot checks fire at p=1 and never at p=0."""

from __future__ import annotations

import copy
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persidict import (
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    FileDirDict,
    LocalDict,
    MutationPolicyError,
    PersiDict,
)
from persidict.backends.memory import MemoryBackend
from persidict.wrappers.write_once import WriteOnceDict

from .threads import run_in_threads


def _store(**kwargs: Any) -> LocalDict[Any]:
    return LocalDict(append_only=True, **kwargs)


def _once(p: float = 0.0, **kwargs: Any) -> WriteOnceDict[Any]:
    return WriteOnceDict(wrapped_dict=_store(**kwargs), p_consistency_checks=p)


# ---------------------------------------------------------------- construction


def test_needs_an_append_only_dict() -> None:
    with pytest.raises(ValueError, match="append-only"):
        WriteOnceDict(wrapped_dict=LocalDict())
    with pytest.raises(TypeError, match="PersiDict"):
        WriteOnceDict(wrapped_dict={"a": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [-0.1, 1.01, float("nan"), True, "0.5"])
def test_probability_must_be_in_0_1(p: Any) -> None:
    with pytest.raises(ValueError, match="p_consistency_checks"):
        WriteOnceDict(wrapped_dict=_store(), p_consistency_checks=p)


@pytest.mark.parametrize("p", [0, 0.0, 0.25, 1, 1.0])
def test_probability_bounds_are_accepted(p: float) -> None:
    assert WriteOnceDict(wrapped_dict=_store(), p_consistency_checks=p).p_consistency_checks == p


# ---------------------------------------------------------------- semantics


def test_first_write_wins_and_rewrites_are_ignored() -> None:
    d = _once()
    d["k"] = 1
    tag = d.etag("k")
    d["k"] = 2  # ignored, no error at p=0
    d["k"] = KEEP_CURRENT
    assert d["k"] == 1 and d.etag("k") == tag and len(d) == 1
    assert d.append_only
    with pytest.raises(MutationPolicyError) as e:
        del d["k"]
    assert e.value.policy == "append-only"


def test_a_rewrite_writes_nothing() -> None:
    class CountingWrites(MemoryBackend):
        writes = 0

        def write(self, loc: Any, data: bytes, *, precondition: Any = None) -> Any:
            CountingWrites.writes += 1
            return super().write(loc, data, precondition=precondition)

    d: WriteOnceDict[int] = WriteOnceDict(wrapped_dict=LocalDict(backend=CountingWrites(), append_only=True))
    d["k"] = 1
    assert CountingWrites.writes == 1
    for v in range(10):
        d["k"] = v
    assert CountingWrites.writes == 1 and d["k"] == 1


def test_checks_never_fire_at_p0() -> None:
    d = _once(0.0)
    d["k"] = 1
    for v in range(2, 50):
        d["k"] = v
    assert d["k"] == 1 and d.consistency_checks_attempted == 0


def test_checks_always_fire_at_p1() -> None:
    d = _once(1.0)
    d["k"] = "first"
    d["k"] = "first"  # same value: checked, passes
    assert d.consistency_checks_attempted == 1
    with pytest.raises(MutationPolicyError) as e:
        d["k"] = "second"
    assert e.value.policy == "write-once"
    assert "'k'" in str(e.value) and "first" in str(e.value) and "second" in str(e.value)
    assert d.consistency_checks_attempted == 2 and d["k"] == "first"


def test_checks_fire_at_about_p_with_a_seeded_rng() -> None:
    d = WriteOnceDict(wrapped_dict=_store(), p_consistency_checks=0.3, rng=random.Random(7))
    d["k"] = 1
    for _ in range(400):
        d["k"] = 1
    assert 60 < d.consistency_checks_attempted < 180  # ~120 expected; seeded, so deterministic


class LowerCodec:
    """A lossy user codec: str values are stored lower-cased."""

    extension = "low"

    def encode(self, value: Any) -> bytes:
        """Lower-case, UTF-8."""
        return str(value).lower().encode()

    def decode(self, data: bytes) -> Any:
        """UTF-8."""
        return data.decode()


def test_a_check_allows_for_the_formats_round_trip(tmp_path: Path) -> None:
    # A FileDirDict: it stores encoded values (a LocalDict need not encode at all).
    wrapped: FileDirDict[Any] = FileDirDict(
        base_dir=tmp_path, serialization_format=LowerCodec(), append_only=True, durable=False
    )
    d: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=wrapped, p_consistency_checks=1.0)
    d["k"] = "ABC"  # read back as "abc"
    d["k"] = "ABC"
    assert d["k"] == "abc" and d.consistency_checks_attempted == 1
    with pytest.raises(MutationPolicyError):
        d["k"] = "ABD"


@pytest.mark.parametrize("fmt", ["pkl", "json"])
def test_a_check_accepts_identical_values_with_nan(fmt: str) -> None:
    d = _once(1.0, serialization_format=fmt)
    d["k"] = {"score": float("nan"), "n": 1}  # nan != nan, yet the value is the same
    d["k"] = {"score": float("nan"), "n": 1}
    d["k"] = {"score": float("nan"), "n": 1}
    assert d.consistency_checks_attempted == 2
    with pytest.raises(MutationPolicyError):
        d["k"] = {"score": float("nan"), "n": 2}


def test_a_json_check_keeps_non_str_keys() -> None:
    d = _once(1.0, serialization_format="json")
    d["k"] = {1: "a"}
    d["k"] = {1: "a"}
    assert d["k"] == {1: "a"} and d.consistency_checks_attempted == 1
    with pytest.raises(MutationPolicyError):
        d["k"] = {"1": "a"}


def test_a_check_compares_arrays() -> None:
    d = _once(1.0)
    d["a"] = np.arange(5)
    d["a"] = np.arange(5)
    with pytest.raises(MutationPolicyError):
        d["a"] = np.arange(6)


def test_set_item_if_is_refused_and_setdefault_if_inserts() -> None:
    d = _once(1.0)
    with pytest.raises(MutationPolicyError) as e:
        d.set_item_if("k", value=1, expected_etag=ITEM_NOT_AVAILABLE, condition=ETAG_IS_THE_SAME)
    assert e.value.policy == "write-once" and "k" not in d
    r = d.setdefault_if("k", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.value_was_mutated and r.new_value == 1
    tag = d.etag("k")
    # The key exists: setdefault_if leaves it (an insert-if-absent is no rewrite, so no check).
    r = d.setdefault_if("k", 2, tag, ETAG_IS_THE_SAME, retrieve_value=NEVER_RETRIEVE)
    assert r.condition_was_satisfied and not r.value_was_mutated
    assert r.actual_etag == tag and r.resulting_etag == tag and r.new_value is VALUE_NOT_RETRIEVED
    r = d.setdefault_if("k", 2, tag, ETAG_HAS_CHANGED)
    assert not r.condition_was_satisfied and not r.value_was_mutated
    with pytest.raises(MutationPolicyError):
        d.set_item_if("k", value=1, expected_etag=tag, condition=ETAG_IS_THE_SAME)
    assert d["k"] == 1 and d.etag("k") == tag and d.consistency_checks_attempted == 0


def test_setdefault_and_transform_item() -> None:
    d = _once(1.0)
    assert d.setdefault("k", 5) == 5 and d.setdefault("k", 6) == 5
    with pytest.raises(MutationPolicyError) as e:
        d.transform_item("t", lambda cur: 10 if cur is ITEM_NOT_AVAILABLE else cur + 1)
    assert e.value.policy == "write-once" and "t" not in d
    r = d.transform_item("k", lambda cur: KEEP_CURRENT)
    assert r.new_value == 5 and r.resulting_etag == d.etag("k")
    with pytest.raises(MutationPolicyError):
        d.transform_item("k", lambda cur: cur)  # even the same value: a value is refused
    assert d["k"] == 5 and d.consistency_checks_attempted == 0


# ---------------------------------------------------------------- concurrency


@pytest.mark.parametrize("store", ["local", "files"])
def test_concurrent_first_writes_have_one_winner(store: str, tmp_path: Path) -> None:
    wrapped: PersiDict[int] = (
        LocalDict(append_only=True)
        if store == "local"
        else FileDirDict(base_dir=tmp_path, append_only=True, durable=False)
    )
    d: WriteOnceDict[int] = WriteOnceDict(wrapped_dict=wrapped, p_consistency_checks=1.0)
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        barrier.wait()
        try:
            d["k"] = i
            outcome = f"ok{i}"
        except MutationPolicyError:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    run_in_threads(n, writer)
    # Values all differ, so every writer but the first must be refused at p=1.
    assert outcomes.count("refused") == n - 1
    (winner,) = [o for o in outcomes if o != "refused"]
    assert d["k"] == int(winner[2:])


# ---------------------------------------------------------------- model (hypothesis)

_writes = st.lists(st.tuples(st.sampled_from(["a", "b", ("c", "d")]), st.integers(0, 3)), max_size=30)


@settings(max_examples=100, deadline=None)
@given(writes=_writes, p=st.sampled_from([0.0, 1.0]))
def test_matches_a_first_write_wins_model(writes: list[tuple[Any, int]], p: float) -> None:
    d = _once(p)
    model: dict[Any, int] = {}
    for k, v in writes:
        conflict = k in model and model[k] != v
        if conflict and p == 1.0:
            with pytest.raises(MutationPolicyError):
                d[k] = v
        else:
            d[k] = v
        model.setdefault(k, v)
        assert {(key if len(key) > 1 else key[0]): val for key, val in d.items()} == model


# ---------------------------------------------------------------- the PersiDict surface


def test_params_equality_repr_copy_and_subdicts() -> None:
    base: LocalDict[int] = LocalDict(append_only=True)
    d: WriteOnceDict[int] = WriteOnceDict(wrapped_dict=base, p_consistency_checks=0.5)
    assert list(d.get_params()) == sorted(d.get_params())
    again = WriteOnceDict(**d.get_params())
    assert again == d and copy.copy(d) == d and again is not d
    assert "WriteOnceDict(" in repr(d) and "p_consistency_checks=0.5" in repr(d)
    d["x", "y"] = 1
    assert d.get_subdict("x").p_consistency_checks == 0.5  # type: ignore[attr-defined]
    sub = WriteOnceDict(wrapped_dict=base).get_subdict("x")
    assert isinstance(sub, WriteOnceDict) and sub["y"] == 1
    sub["z"] = 2
    sub["z"] = 3  # ignored
    assert d["x", "z"] == 2
    subs = d.subdicts()
    assert list(subs) == ["x"] and isinstance(subs["x"], WriteOnceDict)
    assert WriteOnceDict(**sub.get_params()) == sub
