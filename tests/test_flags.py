"""Flags: one-member enums, one instance per class, kept through copy, deepcopy and pickle."""

from __future__ import annotations

import copy
import enum
import pickle
import subprocess
import sys
from typing import Any

import pytest

import persidict
from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    AlwaysRetrieveFlag,
    AnyETagFlag,
    DeleteCurrentFlag,
    ETagConditionFlag,
    ETagHasChangedFlag,
    ETagIsTheSameFlag,
    ETagValue,
    IfETagChangedRetrieveFlag,
    ItemNotAvailableFlag,
    Joker,
    KeepCurrentFlag,
    NeverRetrieveFlag,
    RetrieveValueFlag,
    ValueNotRetrievedFlag,
)

FLAGS: dict[str, tuple[Any, type, type | None]] = {
    "KEEP_CURRENT": (KEEP_CURRENT, KeepCurrentFlag, Joker),
    "DELETE_CURRENT": (DELETE_CURRENT, DeleteCurrentFlag, Joker),
    "ANY_ETAG": (ANY_ETAG, AnyETagFlag, ETagConditionFlag),
    "ETAG_IS_THE_SAME": (ETAG_IS_THE_SAME, ETagIsTheSameFlag, ETagConditionFlag),
    "ETAG_HAS_CHANGED": (ETAG_HAS_CHANGED, ETagHasChangedFlag, ETagConditionFlag),
    "ALWAYS_RETRIEVE": (ALWAYS_RETRIEVE, AlwaysRetrieveFlag, RetrieveValueFlag),
    "NEVER_RETRIEVE": (NEVER_RETRIEVE, NeverRetrieveFlag, RetrieveValueFlag),
    "IF_ETAG_CHANGED": (IF_ETAG_CHANGED, IfETagChangedRetrieveFlag, RetrieveValueFlag),
    "ITEM_NOT_AVAILABLE": (ITEM_NOT_AVAILABLE, ItemNotAvailableFlag, None),
    "VALUE_NOT_RETRIEVED": (VALUE_NOT_RETRIEVED, ValueNotRetrievedFlag, None),
}
NAMES = sorted(FLAGS)


@pytest.mark.parametrize("name", NAMES)
def test_singleton(name: str) -> None:
    flag, cls, family = FLAGS[name]
    assert cls() is flag
    assert type(flag) is cls
    assert getattr(persidict, name) is flag
    if family is not None:
        assert isinstance(flag, family)


@pytest.mark.parametrize("name", NAMES)
def test_identity_survives_copy_and_pickle(name: str) -> None:
    flag = FLAGS[name][0]
    assert copy.copy(flag) is flag
    assert copy.deepcopy(flag) is flag
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(flag, protocol=protocol)) is flag
    nested = copy.deepcopy({"f": [flag, (flag,)]})
    assert nested["f"][0] is flag and nested["f"][1][0] is flag


def test_identity_survives_pickling_across_processes() -> None:
    payload = pickle.dumps([f for f, _, _ in FLAGS.values()])
    code = (
        "import pickle, sys, persidict\n"
        "flags = pickle.loads(sys.stdin.buffer.read())\n"
        "print(all(type(f)() is f for f in flags), sorted(repr(f) for f in flags))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, check=True
    ).stdout.decode()
    assert out.strip() == f"True {sorted(NAMES)!r}"


@pytest.mark.parametrize("name", NAMES)
def test_repr_is_the_public_name(name: str) -> None:
    assert repr(FLAGS[name][0]) == name
    assert str(FLAGS[name][0]) == name


@pytest.mark.parametrize("name", NAMES)
def test_each_flag_class_is_a_one_member_enum(name: str) -> None:
    flag, cls, family = FLAGS[name]
    assert issubclass(cls, enum.Enum) and isinstance(flag, enum.Enum)
    assert list(cls) == [flag]
    assert cls(name) is flag and cls[name] is flag
    assert flag.name == name
    assert f"{flag}" == name and f"{flag!r}" == name
    assert bool(flag) is True  # nothing may rely on a flag being falsy
    if family is not None:
        assert issubclass(family, enum.Enum) and not family.__members__


def test_family_classes_are_not_flags() -> None:
    for family in (Joker, ETagConditionFlag, RetrieveValueFlag):
        with pytest.raises(TypeError):
            family()
    with pytest.raises(ValueError):
        KeepCurrentFlag("DELETE_CURRENT")


class _OldStylePickle:
    """Pickles like the pre-enum flags did: ``(FlagClass, ())``."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (self.cls, ())


@pytest.mark.parametrize("name", NAMES)
def test_pickles_of_the_old_singletons_still_load(name: str) -> None:
    flag, cls, _ = FLAGS[name]
    assert pickle.loads(pickle.dumps(_OldStylePickle(cls))) is flag


def test_flags_are_distinct_and_hashable() -> None:
    flags = [f for f, _, _ in FLAGS.values()]
    assert len({id(f) for f in flags}) == len(flags)
    assert len(set(flags)) == len(flags)
    for a in flags:
        for b in flags:
            assert (a == b) is (a is b)


def test_families_do_not_overlap() -> None:
    assert not isinstance(KEEP_CURRENT, ETagConditionFlag | RetrieveValueFlag)
    assert not isinstance(ITEM_NOT_AVAILABLE, Joker | ETagConditionFlag | RetrieveValueFlag)
    assert not isinstance(ANY_ETAG, Joker)
    assert issubclass(KeepCurrentFlag, Joker) and issubclass(DeleteCurrentFlag, Joker)


def test_flags_have_no_instance_state() -> None:
    with pytest.raises(AttributeError):
        KEEP_CURRENT.x = 1  # type: ignore[attr-defined]


def test_etag_value_is_a_str() -> None:
    e = ETagValue("abc")
    assert isinstance(e, str) and e == "abc"
    assert e != ITEM_NOT_AVAILABLE  # type: ignore[comparison-overlap]
