"""COMPAT.md, "Dict API and results" (items 2, 7-13) and item 23: what programs written against the
published persidict observe, on every store and wrapper where it applies."""

from __future__ import annotations

import pickle
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import typing_extensions
from moto import mock_aws

from persidict import (
    ANY_ETAG,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    VALUE_NOT_RETRIEVED,
    AppendOnlyDictCached,
    ConcurrencyConflictError,
    ConditionalOperationResult,
    ETagValue,
    FileDirDict,
    LocalDict,
    MutationPolicyError,
    OperationResult,
    PersiDict,
    TransformingFunction,
)
from persidict.backends.s3 import forget_clients
from tests.compat_stores import APPEND_ONLY_KINDS, MUTABLE_KINDS, S3_KINDS, make_store

NA = ITEM_NOT_AVAILABLE


@pytest.fixture
def s3() -> Iterator[None]:
    """A fresh moto S3 (in process) for the S3 kinds."""
    with mock_aws():
        forget_clients()
        yield
        forget_clients()


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **params: Any) -> PersiDict[Any]:
    if kind in S3_KINDS:
        request.getfixturevalue("s3")
    return make_store(kind, tmp_path, **params)


@pytest.fixture(params=MUTABLE_KINDS)
def d(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    """An empty mutable store or wrapper of each kind."""
    return _store(request.param, tmp_path, request)


@pytest.fixture(params=APPEND_ONLY_KINDS)
def ao(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    """An empty append-only store or wrapper of each kind."""
    return _store(request.param, tmp_path, request)


# ---------------------------------------------------------------- 2: == against any Mapping


def test_equal_to_a_dict_whatever_the_spelling_of_its_keys(d: PersiDict[Any]) -> None:
    d["a"] = 1
    d["x", "y"] = [2]
    assert d == {"a": 1, ("x", "y"): [2]}
    assert d == {("a",): 1, ("x", "y"): [2]}
    assert {"a": 1, ("x", "y"): [2]} == d  # noqa: SIM300 - the reflected ==
    assert not (d != {"a": 1, ("x", "y"): [2]})  # noqa: SIM202 - != itself


def test_unequal_on_a_missing_different_or_invalid_key_without_raising(d: PersiDict[Any]) -> None:
    d["a"] = 1
    d["b"] = 2
    assert d != {"a": 1}  # fewer items
    assert d != {"a": 1, "c": 2}  # a key d does not have
    assert d != {"a": 1, "b": 3}  # another value
    assert d != {"a": 1, "not/a key": 2}  # invalid key: unequal, not ValueError
    assert d != {"a": 1, 5: 2}  # not a key at all: unequal, not TypeError
    assert not (d == {"a": 1, "": 2})  # noqa: SIM201 - == itself


def test_comparison_with_a_non_mapping_is_not_implemented(d: PersiDict[Any]) -> None:
    d["a"] = 1
    assert d.__eq__([("a", 1)]) is NotImplemented
    assert d != [("a", 1)] and d != 1 and d != "a"


def test_same_class_and_params_is_equal_at_once(tmp_path: Path) -> None:
    a: FileDirDict[int] = FileDirDict(base_dir=tmp_path)
    b: FileDirDict[int] = FileDirDict(base_dir=tmp_path)
    a["k"] = 1
    assert a == b and b == a
    assert a != FileDirDict(base_dir=tmp_path / "other")  # another folder, other items


def test_equality_with_another_store_compares_items(tmp_path: Path) -> None:
    a: FileDirDict[int] = FileDirDict(base_dir=tmp_path)
    b: LocalDict[int] = LocalDict()
    a["k"] = b["k"] = 1
    assert a == b and b == a
    b["k"] = 2
    assert a != b


# ---------------------------------------------------------------- 7: get_with_etag


def test_get_with_etag_of_a_stored_key(d: PersiDict[Any]) -> None:
    d["n"] = 41
    r = d.get_with_etag("n")
    assert isinstance(r, ConditionalOperationResult)
    e = d.etag("n")
    assert r == ConditionalOperationResult(True, e, e, 41)
    assert r.condition_was_satisfied is True and r.value_was_mutated is False
    assert r.actual_etag == r.resulting_etag == e


def test_get_with_etag_of_a_missing_key_raises_nothing(d: PersiDict[Any]) -> None:
    r = d.get_with_etag("missing")
    assert r.condition_was_satisfied is True
    assert r.new_value is NA and r.actual_etag is NA and r.resulting_etag is NA


def test_the_documented_compare_and_swap_runs(d: PersiDict[Any]) -> None:
    d["n"] = 1
    r = d.get_with_etag("n")
    if r.actual_etag is not ITEM_NOT_AVAILABLE:
        w = d.set_item_if("n", r.new_value + 1, r.actual_etag, ETAG_IS_THE_SAME)  # type: ignore[operator]
        assert w.condition_was_satisfied
    assert d["n"] == 2


def test_get_with_etag_on_empty_and_append_only(ao: PersiDict[Any]) -> None:
    ao["k"] = "v"
    e = ao.etag("k")
    assert ao.get_with_etag("k") == ConditionalOperationResult(True, e, e, "v")
    assert ao.get_with_etag("zz") == ConditionalOperationResult(True, NA, NA, NA)


# ---------------------------------------------------------------- 8: results


def test_conditional_result_is_built_from_four_fields() -> None:
    r: ConditionalOperationResult[int] = ConditionalOperationResult(
        condition_was_satisfied=True, actual_etag=ETagValue("a"), resulting_etag=ETagValue("b"), new_value=1
    )
    assert [f.name for f in attrs.fields(ConditionalOperationResult)] == [
        "condition_was_satisfied", "actual_etag", "resulting_etag", "new_value",
    ]
    assert r.value_was_mutated is True
    assert ConditionalOperationResult(True, ETagValue("a"), ETagValue("a"), 1).value_was_mutated is False
    assert ConditionalOperationResult(False, NA, NA, NA).value_was_mutated is False
    assert ConditionalOperationResult(True, ETagValue("a"), NA, NA).value_was_mutated is True
    with pytest.raises(TypeError):
        ConditionalOperationResult(True, NA, NA, NA, True)  # type: ignore[call-arg]


def test_value_was_mutated_is_read_only() -> None:
    r: ConditionalOperationResult[int] = ConditionalOperationResult(True, NA, ETagValue("e"), 1)
    with pytest.raises(AttributeError):
        r.value_was_mutated = False  # type: ignore[misc]
    assert r.value_was_mutated is True
    assert isinstance(type(r).__dict__["value_was_mutated"], property)


def test_operation_result_has_two_fields() -> None:
    assert [f.name for f in attrs.fields(OperationResult)] == ["resulting_etag", "new_value"]
    r: OperationResult[int] = OperationResult(resulting_etag=ETagValue("e"), new_value=3)
    assert (r.resulting_etag, r.new_value) == ("e", 3)
    assert pickle.loads(pickle.dumps(r)) == r


def test_results_of_operations_equal_hand_built_ones(d: PersiDict[Any]) -> None:
    r = d.setdefault_if("k", 1, NA, ETAG_IS_THE_SAME)
    e = d.etag("k")
    assert r == ConditionalOperationResult(True, NA, e, 1)
    t = d.transform_item("k", lambda v: v + 1)
    assert t == OperationResult(d.etag("k"), 2)


# ---------------------------------------------------------------- 9: TransformingFunction


def test_transforming_function_is_a_runtime_checkable_generic_protocol() -> None:
    assert typing_extensions.is_protocol(TransformingFunction)
    assert isinstance(lambda v: v, TransformingFunction)
    assert isinstance(len, TransformingFunction)

    class Doubler:
        def __call__(self, current: int, /) -> int:
            return 2 * current

    assert isinstance(Doubler(), TransformingFunction)
    assert not isinstance("text", TransformingFunction)
    assert not isinstance(1, TransformingFunction)
    alias = TransformingFunction[int]
    assert typing.get_origin(alias) is TransformingFunction and typing.get_args(alias) == (int,)
    members = {n for n in TransformingFunction.__dict__ if not n.startswith("_")}
    assert members == set() and callable(TransformingFunction.__call__)


def test_a_typed_transforming_function_is_accepted(d: PersiDict[Any]) -> None:
    def inc(current: Any, /) -> Any:
        return 1 if current is ITEM_NOT_AVAILABLE else current + 1

    f: TransformingFunction[int] = inc
    d.transform_item("c", f)
    d.transform_item("c", f)
    assert d["c"] == 2


# ---------------------------------------------------------------- 10: n_retries


class _Meddler:
    """A transformer that writes the key behind transform_item's back for its first ``n`` calls."""

    def __init__(self, d: PersiDict[Any], n: int) -> None:
        self.d, self.n, self.calls = d, n, 0

    def __call__(self, current: Any) -> Any:
        self.calls += 1
        if self.calls <= self.n:
            self.d["k"] = self.calls * 100  # a concurrent writer
        return "done"


def test_n_retries_none_retries_until_it_wins(d: PersiDict[Any]) -> None:
    d["k"] = 0
    m = _Meddler(d, 12)
    r = d.transform_item("k", m, n_retries=None)
    assert r.new_value == "done" and d["k"] == "done" and m.calls == 13


def test_n_retries_exhausted_raises_a_conflict(d: PersiDict[Any]) -> None:
    d["k"] = 0
    m = _Meddler(d, 100)
    with pytest.raises(ConcurrencyConflictError):
        d.transform_item("k", m, n_retries=3)
    assert m.calls == 4  # the first attempt and three retries


@pytest.mark.parametrize(
    ("bad", "error"), [("bad", TypeError), ([1], TypeError), (2.0, TypeError), (-1, ValueError)]
)
def test_n_retries_of_the_wrong_type_or_sign(d: PersiDict[Any], bad: Any, error: type[Exception]) -> None:
    calls: list[Any] = []
    with pytest.raises(error, match="n_retries"):
        d.transform_item("k", calls.append, n_retries=bad)
    assert calls == [] and "k" not in d


# ---------------------------------------------------------------- 11: max_n


def test_max_n_none_is_everything_and_non_positive_is_nothing(d: PersiDict[Any]) -> None:
    for k in "abc":
        d[k] = k.upper()
    assert sorted(map(tuple, d.oldest_keys(None))) == [("a",), ("b",), ("c",)]
    assert sorted(d.newest_values(None)) == ["A", "B", "C"]
    for n in (0, -1, -100):
        assert d.oldest_keys(n) == [] and d.newest_keys(max_n=n) == []
        assert d.oldest_values(n) == [] and d.newest_values(max_n=n) == []
    assert len(d.newest_keys(2)) == 2


def test_keys_returned_compare_equal_to_plain_strings(d: PersiDict[Any]) -> None:
    d["k1"] = 1
    d["p", "q"] = 2
    assert sorted(d.oldest_keys(), key=len) == ["k1", ["p", "q"]]
    d.discard(("p", "q"))
    assert d.random_key() == "k1" and "k1" == d.random_key()  # noqa: SIM300 - the reflected ==
    assert d.newest_keys() == ["k1"] and list(d.keys()) == ["k1"]


# ---------------------------------------------------------------- 12: MutationPolicyError


def test_mutation_policy_error_takes_just_the_policy() -> None:
    e = MutationPolicyError("append-only")
    assert e.policy == "append-only" and str(e) == "append-only"
    assert isinstance(e, TypeError) and e.args == ("append-only",)
    with pytest.raises(MutationPolicyError, match="append-only"):
        raise e
    clone = pickle.loads(pickle.dumps(e))
    assert clone.policy == "append-only" and str(clone) == "append-only"


def test_mutation_policy_error_with_a_message() -> None:
    e = MutationPolicyError("write-once", "Key 'k' already holds another value")
    assert e.policy == "write-once" and str(e) == "Key 'k' already holds another value"
    clone = pickle.loads(pickle.dumps(e))
    assert (clone.policy, str(clone)) == (e.policy, str(e))


def test_raised_errors_carry_the_policy(ao: PersiDict[Any]) -> None:
    ao["k"] = 1
    with pytest.raises(MutationPolicyError) as e:
        del ao["k"]
    assert e.value.policy == "append-only"


# ---------------------------------------------------------------- 13: FileDirDict KeyError chaining


def test_file_dir_dict_key_errors_are_chained_from_file_not_found(tmp_path: Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path)
    ops: list[tuple[str, Callable[[], object]]] = [
        ("read", lambda: d["missing"]),
        ("delete", lambda: d.__delitem__("missing")),
        ("timestamp", lambda: d.timestamp("missing")),
        ("etag", lambda: d.etag("missing")),
    ]
    for name, op in ops:
        with pytest.raises(KeyError) as e:
            op()
        cause = e.value.__cause__
        assert isinstance(cause, FileNotFoundError), f"{name}: __cause__ is {cause!r}"
        assert cause.filename is not None and "missing" in cause.filename, name
        assert e.value.args == (("missing",),), name


# ---------------------------------------------------------------- 23: discard_if on append-only dicts


@pytest.fixture(params=[k for k in APPEND_ONLY_KINDS if k != "append_only_cached"])
def ao_evaluating(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    """An append-only dict whose discard_if evaluates the condition (AppendOnlyDictCached always refuses)."""
    return _store(request.param, tmp_path, request)


def test_append_only_discard_if_of_an_absent_key_is_no_error(ao_evaluating: PersiDict[Any]) -> None:
    ao = ao_evaluating
    for cond, holds in ((ANY_ETAG, True), (ETAG_IS_THE_SAME, True), (ETAG_HAS_CHANGED, False)):
        assert ao.discard_if("absent", NA, cond) == ConditionalOperationResult(holds, NA, NA, NA)
    r = ao.discard_if("absent", ETagValue("some-etag"), ETAG_IS_THE_SAME)
    assert r == ConditionalOperationResult(False, NA, NA, NA)


def test_append_only_discard_if_unsatisfied_is_no_error(ao_evaluating: PersiDict[Any]) -> None:
    ao = ao_evaluating
    ao["k"] = 1
    e = ao.etag("k")
    assert ao.discard_if("k", ETagValue("stale"), ETAG_IS_THE_SAME) == ConditionalOperationResult(
        False, e, e, VALUE_NOT_RETRIEVED
    )
    assert ao.discard_item_if("k", e, ETAG_HAS_CHANGED).condition_was_satisfied is False
    assert ao["k"] == 1


def test_append_only_discard_if_satisfied_raises(ao: PersiDict[Any]) -> None:
    ao["k"] = 1
    e = ao.etag("k")
    for cond, expected in ((ETAG_IS_THE_SAME, e), (ANY_ETAG, NA), (ETAG_HAS_CHANGED, ETagValue("x"))):
        with pytest.raises(MutationPolicyError) as err:
            ao.discard_if("k", expected, cond)
        assert err.value.policy == "append-only"
    assert ao["k"] == 1


def test_append_only_dict_cached_refuses_every_discard_if(tmp_path: Path) -> None:
    c = make_store("append_only_cached", tmp_path)
    assert isinstance(c, AppendOnlyDictCached)
    for key, cond in (("absent", ETAG_HAS_CHANGED), ("absent", ANY_ETAG)):
        with pytest.raises(MutationPolicyError):
            c.discard_if(key, NA, cond)
    c["k"] = 1
    with pytest.raises(MutationPolicyError):
        c.discard_if("k", ETagValue("stale"), ETAG_IS_THE_SAME)
    assert c["k"] == 1
