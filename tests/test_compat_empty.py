"""COMPAT.md, "EmptyDict" (items 14, 15): reads never validate the key; transform_item never calls
the transformer; writes still validate, then discard."""

from __future__ import annotations

from typing import Any

import pytest

from persidict import (
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    ConditionalOperationResult,
    EmptyDict,
    OperationResult,
)

NA = ITEM_NOT_AVAILABLE
_ANY_KEYS: list[Any] = ["k", ("a", "b"), 123, "not/a key", "", None, 1.5, ("a", 5)]


@pytest.mark.parametrize("append_only", [False, True])
@pytest.mark.parametrize("key", _ANY_KEYS)
def test_reads_never_validate_the_key(key: Any, append_only: bool) -> None:
    e: EmptyDict[Any] = EmptyDict(append_only=append_only)
    marker = object()
    assert (key in e) is False
    assert e.get(key) is None and e.get(key, marker) is marker
    assert e.setdefault(key, marker) is marker and e.setdefault(key) is None
    with pytest.raises(KeyError):
        e[key]
    with pytest.raises(KeyError):
        del e[key]
    assert e.discard(key) is False and e.delete_if_exists(key) is False
    assert e.pop(key, marker) is marker
    with pytest.raises(KeyError):
        e.pop(key)


def test_key_errors_carry_the_key_as_given() -> None:
    e: EmptyDict[int] = EmptyDict()
    with pytest.raises(KeyError) as err:
        e[123]  # type: ignore[index]
    assert err.value.args == (123,)


def test_setdefault_keeps_nothing() -> None:
    e: EmptyDict[int] = EmptyDict()
    assert e.setdefault("k", 5) == 5
    assert "k" not in e and len(e) == 0


@pytest.mark.parametrize("bad", ["not/a key", 123, ""])
def test_writes_and_conditional_operations_still_validate_the_key(bad: Any) -> None:
    e: EmptyDict[int] = EmptyDict()
    for op in (
        lambda: e.__setitem__(bad, 1),
        lambda: e.set_item_if(bad, 1, NA, ANY_ETAG),
        lambda: e.setdefault_if(bad, 1, NA, ANY_ETAG),
        lambda: e.get_item_if(bad, NA, ANY_ETAG),
        lambda: e.discard_if(bad, NA, ANY_ETAG),
        lambda: e.transform_item(bad, lambda v: 1),
    ):
        with pytest.raises((TypeError, ValueError)):
            op()


def test_writes_still_validate_the_value() -> None:
    e: EmptyDict[int] = EmptyDict(base_class_for_values=int)
    with pytest.raises(TypeError):
        e["k"] = "text"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        e.set_item_if("k", "text", NA, ANY_ETAG)  # type: ignore[arg-type]
    e["k"] = 1  # accepted, then discarded
    assert "k" not in e


def test_transform_item_never_calls_the_transformer() -> None:
    e: EmptyDict[int] = EmptyDict()
    calls: list[Any] = []

    def transformer(v: Any) -> Any:
        calls.append(v)
        return 1

    for f in (transformer, lambda v: DELETE_CURRENT):
        assert e.transform_item("k", f) == OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
    assert e.transform_item("k", transformer, n_retries=None) == OperationResult(NA, NA)
    assert calls == []
    with pytest.raises(TypeError):
        e.transform_item("k", 5)  # type: ignore[arg-type]


def test_conditional_results_report_nothing_stored() -> None:
    e: EmptyDict[int] = EmptyDict()
    r = e.setdefault_if("k", 1, NA, ETAG_IS_THE_SAME)
    assert r == ConditionalOperationResult(True, NA, NA, NA)
    assert e.get_with_etag("k") == ConditionalOperationResult(True, NA, NA, NA)
