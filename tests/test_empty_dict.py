"""EmptyDict: the null device. Accepts every write, keeps nothing, checks everything."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    ConditionalOperationResult,
    EmptyDict,
    LocalDict,
    MutationPolicyError,
    OperationResult,
    PersiDict,
)
from persidict.flags import ETagValue

NA = ITEM_NOT_AVAILABLE


def test_writes_are_accepted_and_discarded() -> None:
    d: EmptyDict[Any] = EmptyDict()
    d["a"] = 1
    d["b", "c"] = [1, 2]
    d.update({"x": 1}, y=2)
    d |= {"z": 3}
    d["a"] = KEEP_CURRENT
    d["a"] = DELETE_CURRENT
    assert len(d) == 0 and not d and list(d) == [] and list(d.keys()) == []
    assert list(d.values()) == [] and list(d.items()) == []
    assert "a" not in d and d == {} and str(d) == "{}"


def test_reads_find_nothing() -> None:
    d: EmptyDict[int] = EmptyDict()
    d["k"] = 1
    marker = object()
    with pytest.raises(KeyError):
        d["k"]
    assert d.get("k") is None and d.get("k", marker) is marker
    for fn in (d.etag, d.timestamp, d.__delitem__, d.pop):
        with pytest.raises(KeyError):
            fn("k")
    assert d.get_with_etag("k") == ConditionalOperationResult(True, NA, NA, NA)
    assert d.pop("k", marker) is marker
    with pytest.raises(KeyError):
        d.popitem()
    assert d.discard("k") is False and d.delete_if_exists("k") is False
    d.clear()
    assert d.random_key() is None
    assert d.oldest_keys() == [] and d.newest_keys(3) == []
    assert d.oldest_values() == [] and d.newest_values() == []
    assert list(d.keys_and_timestamps()) == [] and list(d.items_and_timestamps()) == []
    assert list(d.values_and_timestamps()) == []
    assert d.subdicts() == {} and len(d.get_subdict("k")) == 0


def test_setdefault_returns_the_default_and_keeps_nothing() -> None:
    d: EmptyDict[int] = EmptyDict()
    assert d.setdefault("k", 5) == 5
    assert d.setdefault("k", 6) == 6
    assert "k" not in d


@pytest.mark.parametrize("condition", [ANY_ETAG, ETAG_IS_THE_SAME, ETAG_HAS_CHANGED])
@pytest.mark.parametrize("expected", [NA, ETagValue("some-etag")])
def test_conditional_operations_report_item_not_available(condition: Any, expected: Any) -> None:
    d: EmptyDict[int] = EmptyDict()
    holds = condition is ANY_ETAG or (expected is NA) is (condition is ETAG_IS_THE_SAME)
    kind: ConditionalOperationResult[int] = ConditionalOperationResult(holds, NA, NA, NA)
    assert d.get_item_if("k", expected, condition, retrieve_value=ALWAYS_RETRIEVE) == kind
    for value in (1, KEEP_CURRENT, DELETE_CURRENT):
        assert d.set_item_if("k", value, expected, condition) == kind
    assert d.setdefault_if("k", 1, expected, condition) == kind
    assert d.discard_if("k", expected, condition) == kind
    assert "k" not in d


def test_transform_sees_nothing_and_keeps_nothing() -> None:
    d: EmptyDict[int] = EmptyDict()
    seen: list[Any] = []

    def f(v: Any) -> int:
        seen.append(v)
        return 1

    assert d.transform_item("k", f) == OperationResult(NA, NA)
    assert seen == []  # nothing to transform: never called
    assert d.transform_item("k", lambda v: DELETE_CURRENT) == OperationResult(NA, NA)
    assert d.transform_item("k", lambda v: KEEP_CURRENT) == OperationResult(NA, NA)


def test_values_are_still_checked() -> None:
    d: EmptyDict[int] = EmptyDict(base_class_for_values=int)
    with pytest.raises(TypeError, match="int"):
        d["k"] = "no"  # type: ignore[assignment]
    with pytest.raises(ValueError):
        d["a/b"] = 1
    with pytest.raises(TypeError, match="PersiDict"):
        d["k"] = LocalDict()  # type: ignore[assignment]
    with pytest.raises(TypeError):
        d.setdefault_if("k", KEEP_CURRENT, NA, ANY_ETAG)  # type: ignore[arg-type]
    text: EmptyDict[str] = EmptyDict(serialization_format="txt")
    with pytest.raises(TypeError):
        text["k"] = 5  # type: ignore[assignment]
    with pytest.raises(TypeError, match="condition"):
        d.get_item_if("k", NA, "ANY")  # type: ignore[arg-type]


def test_append_only_refuses_bulk_deletes_and_delete_jokers() -> None:
    d: EmptyDict[int] = EmptyDict(append_only=True)
    d["k"] = 1
    d["k"] = 2  # nothing is ever stored, so nothing is overwritten
    for fn in (d.clear, d.popitem, lambda: d.__setitem__("k", DELETE_CURRENT)):
        with pytest.raises(MutationPolicyError):
            fn()
    # Single-key deletes find nothing to delete, as reads find nothing.
    with pytest.raises(KeyError):
        del d["k"]
    assert d.discard("k") is False and d.pop("k", None) is None
    assert d.discard_if("k", NA, ANY_ETAG) == ConditionalOperationResult(True, NA, NA, NA)


def test_params_copy_pickle_repr() -> None:
    d: EmptyDict[int] = EmptyDict(serialization_format="json", append_only=True, base_class_for_values=int)
    params = d.get_params()
    assert params == {"append_only": True, "base_class_for_values": int, "serialization_format": "json"}
    assert list(params) == sorted(params)
    assert EmptyDict(**params) == d and copy.copy(d) == d
    assert pickle.loads(pickle.dumps(d)) == d
    assert repr(d).startswith("EmptyDict(") and "append_only=True" in repr(d)
    assert isinstance(d, PersiDict)
    assert d.capabilities.persistent is False
