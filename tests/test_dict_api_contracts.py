"""dict-API contracts every store keeps: update validates before writing, setdefault checks
only a default it inserts, clear/popitem explain an append-only refusal, pop is typed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, assert_type

import pytest

from persidict import (
    DELETE_CURRENT,
    KEEP_CURRENT,
    FileDirDict,
    LmdbDict,
    LocalDict,
    MutationPolicyError,
    PersiDict,
    WriteOnceDict,
)

Factory = Callable[..., PersiDict[Any]]


@pytest.fixture(params=["local", "files", "lmdb", "write_once"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of one kind of store with the given parameters (fresh storage per call)."""
    n = iter(range(100))

    def factory(**kwargs: Any) -> PersiDict[Any]:
        if request.param == "local":
            return LocalDict(**kwargs)
        if request.param == "files":
            return FileDirDict(base_dir=str(tmp_path / f"f{next(n)}"), **kwargs)
        if request.param == "lmdb":
            return LmdbDict(base_dir=str(tmp_path / f"l{next(n)}"), **kwargs)
        kwargs.pop("append_only", None)
        return WriteOnceDict(wrapped_dict=LocalDict(append_only=True, **kwargs))

    return factory


def _items(d: PersiDict[Any]) -> dict[tuple[str, ...], Any]:
    return {tuple(k): v for k, v in d.items()}


# ---------------------------------------------------------------- update


def test_update_with_a_bad_value_writes_nothing(make: Factory) -> None:
    d = make(base_class_for_values=int)
    d["z"] = 0
    with pytest.raises(TypeError, match="'b'") as e:
        d.update({"a": 1, "b": "x", "c": 3})
    assert "int" in str(e.value)
    with pytest.raises(TypeError, match="'y'"):
        d.update([("w", 1)], x=2, y="three")
    assert _items(d) == {("z",): 0}
    d.update({"a": 1, "c": 3}, k=4)
    assert _items(d) == {("z",): 0, ("a",): 1, ("c",): 3, ("k",): 4}


def test_update_with_a_bad_key_writes_nothing(make: Factory) -> None:
    d = make()
    with pytest.raises(ValueError, match="a/b"):
        d.update({"a": 1, "a/b": 2})
    with pytest.raises(ValueError):
        d.update([("a", 1), ("", 2)])
    with pytest.raises((TypeError, ValueError)):
        d.update([("a", 1), ("too", "many", "parts")])
    assert _items(d) == {}


def test_update_with_an_unstorable_value_writes_nothing(make: Factory) -> None:
    d = make()
    with pytest.raises(TypeError):
        d.update({"a": 1, "b": LocalDict()})
    assert _items(d) == {}


def test_update_on_a_text_store_checks_every_value_first(tmp_path: Path) -> None:
    d: FileDirDict[str] = FileDirDict(base_dir=str(tmp_path), serialization_format="txt")
    with pytest.raises(TypeError, match="'b'"):
        d.update({"a": "x", "b": 1})
    assert len(d) == 0
    d.update({"a": "x"})
    assert d["a"] == "x"


def test_update_accepts_jokers() -> None:
    d: LocalDict[int] = LocalDict()
    d.update({"a": 1, "b": 2})
    d.update({"a": KEEP_CURRENT, "b": DELETE_CURRENT, "c": 3})
    assert _items(d) == {("a",): 1, ("c",): 3}
    ao: LocalDict[int] = LocalDict(append_only=True)
    ao["a"] = 1
    with pytest.raises(MutationPolicyError):
        ao.update({"n": 5, "a": DELETE_CURRENT})
    assert _items(ao) == {("a",): 1}
    ao.update({"a": KEEP_CURRENT, "n": 5})
    assert _items(ao) == {("a",): 1, ("n",): 5}


def test_update_of_the_reference_example_on_files(tmp_path: Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=str(tmp_path), base_class_for_values=int)
    with pytest.raises(TypeError, match="'b'"):
        d.update({"a": 1, "b": "x", "c": 3})
    assert "a" not in d and len(d) == 0


# ---------------------------------------------------------------- setdefault


def test_setdefault_of_a_stored_key_ignores_an_unusable_default(make: Factory) -> None:
    d = make(base_class_for_values=int)
    d["x"] = 1
    assert d.setdefault("x") == 1
    assert d.setdefault("x", "not an int") == 1
    with pytest.raises(TypeError, match="int"):
        d.setdefault("y")  # would insert None
    with pytest.raises(TypeError, match="int"):
        d.setdefault("y", "not an int")
    assert "y" not in d
    assert d.setdefault("y", 2) == 2 and d["y"] == 2


def test_setdefault_of_a_stored_key_ignores_an_unstorable_default() -> None:
    d: LocalDict[Any] = LocalDict()
    d["x"] = 1
    assert d.setdefault("x", LocalDict()) == 1
    with pytest.raises(TypeError, match="PersiDict"):
        d.setdefault("y", LocalDict())
    with pytest.raises(TypeError):
        d.setdefault("x", KEEP_CURRENT)  # jokers are always refused


def test_setdefault_if_stays_strict() -> None:
    from persidict import ANY_ETAG, ITEM_NOT_AVAILABLE

    d: LocalDict[int] = LocalDict(base_class_for_values=int)
    d["x"] = 1
    with pytest.raises(TypeError, match="int"):
        d.setdefault_if("x", "no", ITEM_NOT_AVAILABLE, ANY_ETAG)  # type: ignore[arg-type]


# ---------------------------------------------------------------- append-only bulk deletes


def test_clear_and_popitem_of_an_append_only_dict_say_what_was_refused(make: Factory) -> None:
    d = make(append_only=True)
    d["clear"] = 1
    with pytest.raises(MutationPolicyError, match=r"Cannot clear \w+: it is append-only") as e:
        d.clear()
    assert "key" not in str(e.value) and e.value.policy == "append-only"
    refused = r"Cannot pop an item \(popitem\) from \w+: it is append-only"
    with pytest.raises(MutationPolicyError, match=refused) as e:
        d.popitem()
    assert "key" not in str(e.value)
    with pytest.raises(MutationPolicyError, match=r"Cannot delete key .*'clear'"):
        del d["clear"]
    assert _items(d) == {("clear",): 1}


# ---------------------------------------------------------------- pop typing


def test_pop_is_typed() -> None:
    d: LocalDict[int] = LocalDict()
    d.update(a=1, b=2)
    a = d.pop("a")
    assert_type(a, int)
    b = d.pop("b", None)
    assert_type(b, int | None)
    c = d.pop("c", "none")
    assert_type(c, int | str)
    assert (a, b, c) == (1, 2, "none")
    with pytest.raises(KeyError):
        d.pop("a")
