"""COMPAT.md items 21, 22, 24 and 26: WriteOnceDict, AppendOnlyDictCached, OverlappingMultiDict.

Written from the contracts in COMPAT.md: what a program written against the
published persidict observes of these wrappers.
"""

from __future__ import annotations

import collections
import copy
import os
import pickle
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persidict import (
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ETagValue,
    FileDirDict,
    LocalDict,
    MutationPolicyError,
    PersiDict,
)
from persidict.wrappers.cached import AppendOnlyDictCached
from persidict.wrappers.overlapping import OverlappingMultiDict
from persidict.wrappers.write_once import WriteOnceDict


def _once(p: float | None = 0.0) -> WriteOnceDict[Any]:
    return WriteOnceDict(wrapped_dict=LocalDict(append_only=True), p_consistency_checks=p)


def _snapshot(d: PersiDict[Any]) -> dict[tuple[str, ...], tuple[Any, str]]:
    """Every key with its value and ETag: equal snapshots mean nothing was written."""
    return {tuple(k): (d[k], d.etag(k)) for k in d}


# ================================================================ 21: WriteOnceDict defaults


def test_wrapped_dict_defaults_to_an_append_only_file_dir_dict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    d: WriteOnceDict[Any] = WriteOnceDict()
    wrapped = d.wrapped_dict
    assert type(wrapped) is FileDirDict and wrapped.append_only
    assert wrapped.base_dir == FileDirDict().base_dir  # FileDirDict's default folder
    assert os.path.commonpath([wrapped.base_dir, str(tmp_path)]) == str(tmp_path)
    d["k"] = 1
    assert FileDirDict(append_only=True)["k"] == 1
    assert d.get_params()["wrapped_dict"] == wrapped


def test_wrapped_dict_none_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=None)
    assert isinstance(d.wrapped_dict, FileDirDict) and d.wrapped_dict.append_only


def test_wrapped_dict_and_probability_may_be_positional() -> None:
    d: WriteOnceDict[Any] = WriteOnceDict(LocalDict(append_only=True), 0.5)
    assert d.p_consistency_checks == 0.5 and isinstance(d.wrapped_dict, LocalDict)


@pytest.mark.parametrize("build", [lambda: _once(None), lambda: WriteOnceDict(LocalDict(append_only=True))])
def test_probability_none_or_omitted_means_zero(build: Callable[[], WriteOnceDict[Any]]) -> None:
    d = build()
    assert d.p_consistency_checks == 0.0 and d.get_params()["p_consistency_checks"] == 0.0
    d["k"] = 1
    d["k"] = 2  # ignored, never checked
    assert d["k"] == 1 and d.consistency_checks_attempted == 0


def test_probability_is_settable() -> None:
    d = _once(0.0)
    d["k"] = 1
    d.p_consistency_checks = 1.0
    assert d.p_consistency_checks == 1.0 and d.get_params()["p_consistency_checks"] == 1.0
    with pytest.raises(MutationPolicyError):
        d["k"] = 2  # checked now
    d.p_consistency_checks = 0.25
    assert d.p_consistency_checks == 0.25


@pytest.mark.parametrize("bad", [-0.01, 1.01, -1, 2, float("nan"), float("inf")])
def test_setting_a_probability_outside_0_1_is_a_value_error(bad: float) -> None:
    d = _once(0.5)
    with pytest.raises(ValueError, match="p_consistency_checks"):
        d.p_consistency_checks = bad
    assert d.p_consistency_checks == 0.5


def test_setting_keep_current_keeps_the_probability() -> None:
    d = _once(0.3)
    d.p_consistency_checks = KEEP_CURRENT
    assert d.p_consistency_checks == 0.3
    d.p_consistency_checks = 1
    d.p_consistency_checks = KEEP_CURRENT
    assert d.p_consistency_checks == 1.0


def test_counters_start_at_zero() -> None:
    d = _once(1.0)
    assert (d.consistency_checks_attempted, d.consistency_checks_passed, d.consistency_checks_failed) == (
        0,
        0,
        0,
    )


def test_a_passing_check_counts_attempted_and_passed() -> None:
    d = _once(1.0)
    d["k"] = "v"  # the first write is no check
    assert d.consistency_checks_attempted == 0
    d["k"] = "v"
    d["k"] = "v"
    assert (d.consistency_checks_attempted, d.consistency_checks_passed, d.consistency_checks_failed) == (
        2,
        2,
        0,
    )


def test_a_failing_check_counts_as_attempted_and_failed() -> None:
    d = _once(1.0)
    d["k"] = "v"
    with pytest.raises(MutationPolicyError) as e:
        d["k"] = "w"
    assert e.value.policy == "write-once"
    assert (d.consistency_checks_attempted, d.consistency_checks_passed, d.consistency_checks_failed) == (
        1,
        0,
        1,
    )
    d["k"] = "v"
    assert (d.consistency_checks_attempted, d.consistency_checks_passed, d.consistency_checks_failed) == (
        2,
        1,
        1,
    )


def test_n_consistency_checks_is_an_alias_of_attempted() -> None:
    d = _once(1.0)
    d["k"] = 1
    d["k"] = 1
    with pytest.raises(MutationPolicyError):
        d["k"] = 2
    assert d.n_consistency_checks == d.consistency_checks_attempted == 2


def test_no_check_at_p0_counts_nothing() -> None:
    d = _once(0.0)
    d["k"] = 1
    for v in range(5):
        d["k"] = v
    assert (d.consistency_checks_attempted, d.consistency_checks_passed, d.consistency_checks_failed) == (
        0,
        0,
        0,
    )


# ================================================================ 21: attributes of the wrapped dict


def test_attributes_are_read_from_the_wrapped_dict(tmp_path: Path) -> None:
    wrapped: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path / "w"), append_only=True, durable=False)
    d: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=wrapped)
    assert d.base_dir == wrapped.base_dir
    assert d.durable is False and d.digest_len == wrapped.digest_len
    assert d.remove_stale_temp_files(0) == 0  # methods too


def test_own_attributes_are_not_taken_from_the_wrapped_dict(tmp_path: Path) -> None:
    d: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=FileDirDict(base_dir=str(tmp_path), append_only=True))
    assert d.get_params()["p_consistency_checks"] == 0.0  # WriteOnceDict's, not FileDirDict's
    assert "p_consistency_checks" in repr(d) and repr(d).startswith("WriteOnceDict(")


def test_an_attribute_neither_has_is_an_attribute_error(tmp_path: Path) -> None:
    d: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=FileDirDict(base_dir=str(tmp_path), append_only=True))
    with pytest.raises(AttributeError, match="no_such_thing"):
        d.no_such_thing  # noqa: B018
    assert not hasattr(d, "no_such_thing")


def test_private_and_special_names_are_not_forwarded(tmp_path: Path) -> None:
    d: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=FileDirDict(base_dir=str(tmp_path), append_only=True))
    assert hasattr(d.wrapped_dict, "_files")
    with pytest.raises(AttributeError):
        d._files  # noqa: B018
    assert not hasattr(d, "__deepcopy__") and not hasattr(d, "__setstate__")


def test_an_instance_without_a_wrapped_dict_does_not_recurse() -> None:
    bare = object.__new__(WriteOnceDict)
    with pytest.raises(AttributeError):
        bare.base_dir  # noqa: B018
    with pytest.raises(AttributeError):
        bare._wrapped  # noqa: B018


def test_pickling_and_copies_give_write_once_dicts(tmp_path: Path) -> None:
    d: WriteOnceDict[Any] = WriteOnceDict(
        wrapped_dict=FileDirDict(base_dir=str(tmp_path), append_only=True), p_consistency_checks=0.5
    )
    d["k"] = 1
    for other in (pickle.loads(pickle.dumps(d)), copy.copy(d), copy.deepcopy(d)):
        assert type(other) is WriteOnceDict and other == d
        assert other.p_consistency_checks == 0.5 and other["k"] == 1
        assert other.base_dir == d.base_dir
        other.p_consistency_checks = 0.0
        other["k"] = 2  # still write-once: ignored
        assert other["k"] == 1


# ================================================================ 22: set_item_if always refused


_VALUES: list[Any] = [1, 2, "other", None, KEEP_CURRENT, DELETE_CURRENT]
_CONDITIONS = [ANY_ETAG, ETAG_IS_THE_SAME, ETAG_HAS_CHANGED]


@pytest.mark.parametrize("present", [False, True])
@pytest.mark.parametrize("condition", _CONDITIONS)
@pytest.mark.parametrize("expected", ["missing", "actual", "stale"])
@pytest.mark.parametrize("value", _VALUES)
def test_set_item_if_always_raises_and_writes_nothing(
    present: bool, condition: Any, expected: str, value: Any
) -> None:
    d = _once(1.0)
    d["other"] = 0
    if present:
        d["k"] = 1
    etag: Any = {
        "missing": ITEM_NOT_AVAILABLE,
        "actual": d.etag("k") if present else ITEM_NOT_AVAILABLE,
        "stale": ETagValue("stale-etag"),
    }[expected]
    before = _snapshot(d.wrapped_dict)
    with pytest.raises(MutationPolicyError) as e:
        d.set_item_if("k", value, etag, condition)
    assert e.value.policy == "write-once"
    assert "write-once" in str(e.value)
    assert _snapshot(d.wrapped_dict) == before


def test_set_item_if_raises_with_keywords_and_retrieve_options() -> None:
    d = _once()
    with pytest.raises(MutationPolicyError) as e:
        d.set_item_if(
            "k", value=1, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG, retrieve_value=NEVER_RETRIEVE
        )
    assert e.value.policy == "write-once"
    with pytest.raises(MutationPolicyError):
        d.set_item_if(("a", "b"), value=1, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG)
    assert len(d) == 0


def test_set_item_if_is_refused_through_a_cache_over_a_write_once_dict() -> None:
    once = _once()
    cached: AppendOnlyDictCached[Any] = AppendOnlyDictCached(
        main_dict=once, data_cache=LocalDict(append_only=True)
    )
    with pytest.raises(MutationPolicyError) as e:
        cached.set_item_if("k", 1, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert e.value.policy == "write-once" and "k" not in once and "k" not in cached.data_cache
    cached["k"] = 1
    cached["k"] = 2  # ignored by the write-once dict
    assert cached["k"] == 1 and once["k"] == 1


def test_inserts_go_through_setitem_and_setdefault_if() -> None:
    d = _once()
    d["a"] = 1
    r = d.setdefault_if("b", 2, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert r.condition_was_satisfied and r.value_was_mutated and r.new_value == 2
    r = d.setdefault_if("b", 3, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert not r.value_was_mutated and d["b"] == 2
    r = d.setdefault_if("c", 3, ITEM_NOT_AVAILABLE, ETAG_HAS_CHANGED)
    assert not r.condition_was_satisfied and "c" not in d
    assert _snapshot(d) == {("a",): (1, d.etag("a")), ("b",): (2, d.etag("b"))}


def test_update_setdefault_and_ior_still_write_once() -> None:
    d = _once()
    d.update({"a": 1}, b=2)
    d.update({"a": 10})  # ignored
    d |= {"c": 3, "b": 20}
    assert d.setdefault("d", 4) == 4 and d.setdefault("d", 40) == 4
    assert {k[0]: v for k, v in d.items()} == {"a": 1, "b": 2, "c": 3, "d": 4}


# ================================================================ 22: transform_item


@pytest.mark.parametrize("present", [False, True])
@pytest.mark.parametrize("new", [1, 5, None, "x"])
def test_transform_item_to_a_value_raises_and_writes_nothing(present: bool, new: Any) -> None:
    d = _once(1.0)
    if present:
        d["k"] = 1
    before = _snapshot(d.wrapped_dict)
    seen: list[Any] = []

    def transformer(current: Any) -> Any:
        seen.append(current)
        return new

    with pytest.raises(MutationPolicyError) as e:
        d.transform_item("k", transformer)
    assert e.value.policy == "write-once"
    assert seen and seen[0] == (1 if present else ITEM_NOT_AVAILABLE)
    assert _snapshot(d.wrapped_dict) == before


@pytest.mark.parametrize("present", [False, True])
def test_transform_item_keep_current_changes_nothing(present: bool) -> None:
    d = _once(1.0)
    if present:
        d["k"] = 1
    before = _snapshot(d.wrapped_dict)
    r = d.transform_item("k", lambda current: KEEP_CURRENT)
    assert _snapshot(d.wrapped_dict) == before
    if present:
        assert r.new_value == 1 and r.resulting_etag == d.etag("k")
    else:
        assert r.new_value is ITEM_NOT_AVAILABLE and r.resulting_etag is ITEM_NOT_AVAILABLE


@pytest.mark.parametrize("present", [False, True])
def test_transform_item_delete_current_meets_the_append_only_rule(present: bool) -> None:
    d = _once()
    if present:
        d["k"] = 1
    before = _snapshot(d.wrapped_dict)
    with pytest.raises(MutationPolicyError) as e:
        d.transform_item("k", lambda current: DELETE_CURRENT)
    assert e.value.policy == "append-only"
    assert _snapshot(d.wrapped_dict) == before


# ================================================================ 24: AppendOnlyDictCached


@pytest.mark.parametrize("bad", [{}, {"a": 1}, None, "LocalDict", LocalDict])
def test_append_only_cache_main_dict_must_be_a_persidict(bad: Any) -> None:
    with pytest.raises(TypeError, match="main_dict"):
        AppendOnlyDictCached(main_dict=bad, data_cache=LocalDict(append_only=True))


@pytest.mark.parametrize("bad", [{}, {"a": 1}, None, "LocalDict", LocalDict])
def test_append_only_cache_data_cache_must_be_a_persidict(bad: Any) -> None:
    with pytest.raises(TypeError, match="data_cache"):
        AppendOnlyDictCached(main_dict=LocalDict(append_only=True), data_cache=bad)


def test_append_only_cache_main_dict_must_be_append_only() -> None:
    with pytest.raises(ValueError, match="main_dict"):
        AppendOnlyDictCached(main_dict=LocalDict(), data_cache=LocalDict(append_only=True))


def test_append_only_cache_data_cache_must_be_append_only(tmp_path: Path) -> None:
    main: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path), append_only=True)
    with pytest.raises(ValueError, match="data_cache"):
        AppendOnlyDictCached(main_dict=main, data_cache=LocalDict())
    with pytest.raises(ValueError):
        AppendOnlyDictCached(main_dict=LocalDict(), data_cache=LocalDict())


@pytest.mark.parametrize(
    ("main_class", "cache_class"), [(int, None), (None, int), (int, str), (int, bool), (object, int)]
)
def test_append_only_cache_value_classes_must_match(main_class: Any, cache_class: Any) -> None:
    with pytest.raises(ValueError, match="base_class_for_values"):
        AppendOnlyDictCached(
            main_dict=LocalDict(append_only=True, base_class_for_values=main_class),
            data_cache=LocalDict(append_only=True, base_class_for_values=cache_class),
        )


@pytest.mark.parametrize("cls", [None, int, str])
def test_append_only_cache_with_matching_value_classes_works(cls: Any) -> None:
    c: AppendOnlyDictCached[Any] = AppendOnlyDictCached(
        main_dict=LocalDict(append_only=True, base_class_for_values=cls),
        data_cache=LocalDict(append_only=True, base_class_for_values=cls),
    )
    value = "v" if cls is str else 1
    c["k"] = value
    assert c["k"] == value and c.data_cache["k"] == value
    assert c.base_class_for_values is cls


def test_append_only_cache_arguments_may_be_positional() -> None:
    main: LocalDict[Any] = LocalDict(append_only=True)
    c: AppendOnlyDictCached[Any] = AppendOnlyDictCached(main, LocalDict(append_only=True))
    assert c.main_dict is main


# ================================================================ 26: OverlappingMultiDict


@pytest.mark.parametrize(
    "bad", [None, [("base_dir", "x")], "base_dir=x", 5, types.MappingProxyType({}), (("a", 1),)]
)
def test_shared_subdicts_params_must_be_a_dict(bad: Any) -> None:
    with pytest.raises(TypeError, match="shared_subdicts_params"):
        OverlappingMultiDict(dict_type=LocalDict, shared_subdicts_params=bad, json={})


@pytest.mark.parametrize("bad", [None, [], "x", 5, types.MappingProxyType({}), ()])
def test_each_format_parameter_set_must_be_a_dict(bad: Any) -> None:
    with pytest.raises(TypeError, match="'pkl'"):
        OverlappingMultiDict(dict_type=LocalDict, shared_subdicts_params={}, json={}, pkl=bad)


@pytest.mark.parametrize("bad", [dict, int, "FileDirDict", None, object, collections.OrderedDict])
def test_dict_type_must_be_a_persidict_subclass(bad: Any) -> None:
    with pytest.raises(TypeError, match="dict_type"):
        OverlappingMultiDict(dict_type=bad, shared_subdicts_params={}, json={})


def test_dict_type_must_be_a_class_not_an_instance() -> None:
    with pytest.raises(TypeError, match="dict_type"):
        OverlappingMultiDict(dict_type=LocalDict(), shared_subdicts_params={}, json={})  # type: ignore[arg-type]


def test_dict_subclasses_are_dicts(tmp_path: Path) -> None:
    multi = OverlappingMultiDict(
        dict_type=FileDirDict,
        shared_subdicts_params=collections.OrderedDict(base_dir=str(tmp_path)),
        json=collections.OrderedDict(),
        pkl={},
    )
    multi.json["a"] = 1
    multi.pkl["a"] = 2
    assert multi.json["a"] == 1 and multi.pkl["a"] == 2


def test_positional_dict_type_and_shared_params(tmp_path: Path) -> None:
    multi = OverlappingMultiDict(FileDirDict, {"base_dir": str(tmp_path)}, json={})
    multi.json["a"] = 1
    assert multi.dict_type is FileDirDict and multi.json["a"] == 1


def test_omitted_shared_params_share_nothing() -> None:
    multi = OverlappingMultiDict(dict_type=LocalDict, json={}, pkl={})
    multi.json["a"] = 1
    assert list(multi.formats) == ["json", "pkl"] and "a" not in multi.pkl
