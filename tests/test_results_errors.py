"""Results (frozen, generic records) and errors (types, attributes, pickling)."""

from __future__ import annotations

import copy
import pathlib
import pickle
from typing import Any

import attrs
import pytest

from persidict import (
    ITEM_NOT_AVAILABLE,
    VALUE_NOT_RETRIEVED,
    BackendError,
    ConcurrencyConflictError,
    ConditionalOperationResult,
    CorruptValueError,
    ETagValue,
    FileDirDict,
    LocalDict,
    MutationPolicyError,
    OperationResult,
)


def test_conditional_result_fields_in_order() -> None:
    names = [f.name for f in attrs.fields(ConditionalOperationResult)]
    assert names == [
        "condition_was_satisfied",
        "actual_etag",
        "resulting_etag",
        "new_value",
    ]
    r: ConditionalOperationResult[int] = ConditionalOperationResult(True, ETagValue("1"), ETagValue("2"), 5)
    assert (r.condition_was_satisfied, r.actual_etag, r.resulting_etag, r.new_value, r.value_was_mutated) == (
        True, "1", "2", 5, True,
    )


def test_operation_result_fields() -> None:
    names = [f.name for f in attrs.fields(OperationResult)]
    assert names == ["resulting_etag", "new_value"]
    r: OperationResult[str] = OperationResult(ETagValue("e"), "v")
    assert (r.resulting_etag, r.new_value) == ("e", "v")


def test_value_was_mutated_is_derived_from_the_etags() -> None:
    r: ConditionalOperationResult[int] = ConditionalOperationResult(
        False, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE
    )
    assert r.value_was_mutated is False
    same = ConditionalOperationResult(True, ETagValue("1"), ETagValue("1"), VALUE_NOT_RETRIEVED)
    assert same.value_was_mutated is False


@pytest.mark.parametrize(
    "result",
    [
        ConditionalOperationResult(True, ETagValue("1"), ETagValue("1"), VALUE_NOT_RETRIEVED),
        OperationResult(ETagValue("1"), [1, 2]),
    ],
)
def test_results_are_frozen_comparable_and_picklable(result: Any) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.new_value = 3
    assert result == copy.copy(result)
    clone = pickle.loads(pickle.dumps(result))
    assert clone == result
    # Sentinels stay themselves through pickling.
    assert clone.new_value is result.new_value or clone.new_value == result.new_value
    assert attrs.evolve(result, new_value="other") != result


def test_results_are_generic() -> None:
    alias = ConditionalOperationResult[int]
    assert alias(True, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE, 1).new_value == 1
    assert OperationResult[list[int]](ITEM_NOT_AVAILABLE, [1]).new_value == [1]


def test_results_repr_names_the_sentinels() -> None:
    r: ConditionalOperationResult[int] = ConditionalOperationResult(
        False, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE
    )
    assert "ITEM_NOT_AVAILABLE" in repr(r) and "condition_was_satisfied=False" in repr(r)


# ---------------------------------------------------------------- errors


def test_mutation_policy_error() -> None:
    e = MutationPolicyError("write-once", "no rewrites")
    assert isinstance(e, TypeError)
    assert e.policy == "write-once" and str(e) == "no rewrites"


def test_concurrency_conflict_error() -> None:
    e = ConcurrencyConflictError(("a", "b"), 7)
    assert isinstance(e, RuntimeError)
    assert e.key == ("a", "b") and e.attempts == 7
    assert "('a', 'b')" in str(e) and "7 attempts" in str(e)


def test_backend_error() -> None:
    e = BackendError("permission denied", backend="files:/x", operation="write", key=("k",))
    assert isinstance(e, RuntimeError) and not isinstance(e, KeyError)
    assert (e.backend, e.operation, e.key) == ("files:/x", "write", ("k",))
    for part in ("permission denied", "files:/x", "write", "('k',)"):
        assert part in str(e)
    assert "key" not in str(BackendError("down", backend="s3", operation="list"))
    assert issubclass(CorruptValueError, BackendError)


@pytest.mark.parametrize(
    "error",
    [
        MutationPolicyError("append-only", "cannot overwrite"),
        ConcurrencyConflictError(("k",), 3),
        BackendError("boom", backend="b", operation="read", key="k"),
        CorruptValueError("bad bytes", backend="b", operation="decode", key=("a", "b")),
    ],
)
def test_errors_pickle_with_their_attributes(error: Exception) -> None:
    # Errors raised in worker processes travel back by pickle.
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert vars(clone) == vars(error)


# ---------------------------------------------------------------- raised by the stores


def test_append_only_raises_mutation_policy_error() -> None:
    d: LocalDict[int] = LocalDict(append_only=True)
    d["k"] = 1
    with pytest.raises(MutationPolicyError) as e:
        d["k"] = 2
    assert e.value.policy == "append-only" and "'k'" in str(e.value)
    assert d["k"] == 1


def test_transform_gives_up_with_concurrency_conflict_error() -> None:
    d: LocalDict[int] = LocalDict()
    d["k"] = 0

    def interfering(v: Any) -> Any:
        d["k"] = 100  # another writer gets in between every read and write
        return v + 1

    with pytest.raises(ConcurrencyConflictError) as e:
        d.transform_item("k", interfering, n_retries=2)
    assert e.value.key == ("k",) and e.value.attempts == 3


def test_undecodable_value_raises_corrupt_value_error(tmp_path: pathlib.Path) -> None:
    class Garbage:
        extension = "pkl"

        def encode(self, value: Any) -> bytes:
            return b"\x00not a pickle"

        def decode(self, data: bytes) -> Any:
            return data

    # (In a folder: a LocalDict never decodes anything.)
    writer: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path), serialization_format=Garbage())
    writer["k"] = 1
    d: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path))
    with pytest.raises(CorruptValueError) as e:
        d["k"]
    assert e.value.operation == "decode" and e.value.key == ("k",)
    assert "pkl" in str(e.value)
