"""Keys as the published persidict's users see them (COMPAT.md items 1, 3, 4, 5, 6)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

import persidict
from persidict import LocalDict, NonEmptySafeStrTuple, SafeStrTuple, get_safe_chars
from persidict.keys import SAFE_CHARS_SET, to_key
from persidict.lmdb_dict import LmdbDict

SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789()_-~.="
component = st.text(alphabet=SAFE, min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


# ---------------------------------------------------------------- 1. equality


def test_a_key_equals_the_str_it_was_made_from_both_ways() -> None:
    k = NonEmptySafeStrTuple("k1")
    assert k == "k1"
    assert "k1" == k  # noqa: SIM300 - the reflected comparison is the point
    assert SafeStrTuple("k1") == "k1"
    assert k != "k2" and "k2" != k  # noqa: SIM300
    assert NonEmptySafeStrTuple("a", "b") != "a"


def test_a_key_equals_lists_and_nested_sequences_of_its_components() -> None:
    k = NonEmptySafeStrTuple("a", "b")
    assert k == ["a", "b"] and ["a", "b"] == k  # noqa: SIM300 - the reflected comparison
    assert k == ("a", ["b"]) and ("a", ["b"]) == k  # noqa: SIM300
    assert k == [["a"], ("b",)]
    assert k == ["a", SafeStrTuple("b")]
    assert k != ["b", "a"] and k != ["a"] and k != ["a", "b", "c"]


def test_a_key_equals_another_key_and_the_plain_tuple() -> None:
    k = NonEmptySafeStrTuple("a", "b")
    assert k == SafeStrTuple("a", "b") and SafeStrTuple("a", "b") == k
    assert k == ("a", "b") and ("a", "b") == k  # noqa: SIM300
    assert k != ("a", "c") and ("a", "c") != k  # noqa: SIM300


def test_a_str_is_one_component_never_split() -> None:
    assert SafeStrTuple("a") != "a/b"
    assert NonEmptySafeStrTuple("a", "b") != "a/b"
    assert "a/b" != NonEmptySafeStrTuple("a", "b")  # noqa: SIM300


def test_empty_key_equals_empty_sequences_only() -> None:
    e = SafeStrTuple()
    assert e == () and e == [] and e == [[], ()]
    assert [] == e and () == e  # noqa: SIM300
    assert e != "" and e != ["a"] and e != NonEmptySafeStrTuple("a")


@pytest.mark.parametrize(
    "other",
    [
        "a/b",
        "",
        ".",
        "x" * 300,
        ["a", 5],
        ["a", "b c"],
        [b"a"],
        ("a", None),
        b"a",
        bytearray(b"a"),
        5,
        1.5,
        None,
        {"a"},
        {"a": 1},
        frozenset({"a"}),
        object(),
    ],
)
def test_anything_that_is_no_valid_key_compares_unequal_without_error(other: Any) -> None:
    for k in (NonEmptySafeStrTuple("a"), SafeStrTuple(), NonEmptySafeStrTuple("a", "b")):
        assert (k == other) is False
        assert (other == k) is False
        assert (k != other) is True
        assert (other != k) is True


def test_a_cyclic_list_compares_unequal() -> None:
    cyclic: list[Any] = ["a"]
    cyclic.append(cyclic)
    assert NonEmptySafeStrTuple("a") != cyclic
    assert not NonEmptySafeStrTuple("a") == cyclic  # noqa: SIM201


def test_an_object_that_decides_equality_itself_is_asked() -> None:
    k = NonEmptySafeStrTuple("a")
    assert k == mock.ANY and mock.ANY == k  # noqa: SIM300
    assert k.__eq__(object()) is NotImplemented


def test_str_subclasses_compare_by_value() -> None:
    class Name(str):
        pass

    assert NonEmptySafeStrTuple("ab") == Name("ab")
    assert NonEmptySafeStrTuple("ab", "c") == [Name("ab"), Name("c")]


@given(st.lists(component, max_size=4), st.lists(component, max_size=4))
def test_equality_is_equality_of_components(a: list[str], b: list[str]) -> None:
    ka, kb = SafeStrTuple(a), SafeStrTuple(b)
    same = a == b
    assert (ka == kb) is same and (ka == b) is same and (b == ka) is same
    assert (ka == tuple(b)) is same and (tuple(b) == ka) is same
    assert (ka != b) is not same and (b != ka) is not same
    if len(b) == 1:
        assert (ka == b[0]) is same and (b[0] == ka) is same
        assert (ka != b[0]) is not same


@given(st.lists(component, min_size=1, max_size=4))
def test_hash_is_the_plain_tuples(parts: list[str]) -> None:
    k = NonEmptySafeStrTuple(parts)
    assert hash(k) == hash(tuple(parts)) == hash(SafeStrTuple(parts))
    by_tuple: dict[tuple[str, ...], int] = {tuple(parts): 1}
    by_key: dict[tuple[str, ...], int] = {k: 1}
    assert by_tuple[k] == 1 and by_key[tuple(parts)] == 1
    assert len({k, tuple(parts), SafeStrTuple(parts), NonEmptySafeStrTuple(parts)}) == 1


def test_ordering_is_the_plain_tuples() -> None:
    keys = [NonEmptySafeStrTuple("b"), NonEmptySafeStrTuple("a", "z"), NonEmptySafeStrTuple("a")]
    assert sorted(keys) == [("a",), ("a", "z"), ("b",)]
    assert NonEmptySafeStrTuple("a") < NonEmptySafeStrTuple("b") <= ("b",) < ("c",)
    assert NonEmptySafeStrTuple("b") > ("a", "z")
    b, a, c = NonEmptySafeStrTuple("b"), NonEmptySafeStrTuple("a"), NonEmptySafeStrTuple("c")
    pairs = [(1.0, b), (1.0, a), (0.5, c)]  # as the ordering methods sort (timestamp, key)
    assert [k for _, k in sorted(pairs)] == ["c", "a", "b"]


def test_keys_returned_by_a_dict_equal_the_strings_used() -> None:
    d: LocalDict[int] = LocalDict()
    d["k1"] = 1
    assert d.random_key() == "k1"
    assert d.oldest_keys() == ["k1"] and d.newest_keys() == ["k1"]
    assert list(d.keys()) == ["k1"] and list(d) == [("k1",)]
    assert "k1" in list(d) and list(d).index("k1") == 0
    d["a", "b"] = 2
    assert sorted(d.keys()) == [["a", "b"], "k1"]


# ---------------------------------------------------------------- caches compare in C


@pytest.fixture
def eq_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Record every call of the keys' Python-level ``__eq__``."""
    calls: list[object] = []
    original = SafeStrTuple.__eq__

    def counting(self: SafeStrTuple, other: object) -> bool:
        calls.append(other)
        return original(self, other)

    monkeypatch.setattr(SafeStrTuple, "__eq__", counting)
    yield calls


def _stores(tmp_path: Path) -> list[Any]:
    return [LocalDict(), LmdbDict(base_dir=tmp_path / "lmdb", durable=False)]


def test_store_caches_never_run_the_python_eq(tmp_path: Path, eq_calls: list[object]) -> None:
    """Reads, writes and membership with equal keys held as other objects: no Python-level comparison."""
    for d in _stores(tmp_path):
        d["k"] = 1
        d["a", "b"] = 2
        listed = list(d)
        for _ in range(2):
            for k in [*listed, NonEmptySafeStrTuple("k"), NonEmptySafeStrTuple("a", "b"), "k", ("a", "b")]:
                assert d[k] in (1, 2) and k in d
                d[k] = d[k]
        values = [v for _, v in d.items()]
        assert eq_calls == []
        assert sorted(values) == [1, 2]


def test_the_counting_fixture_sees_a_dict_lookup(eq_calls: list[object]) -> None:
    """(The test above could fail: a plain dict of keys does run ``__eq__``.)"""
    held = {NonEmptySafeStrTuple("a", "b"): 1}
    assert held[NonEmptySafeStrTuple("a", "b")] == 1
    assert len(eq_calls) == 1


def test_to_key_gives_keys_equal_to_what_it_was_given() -> None:
    assert to_key("k") == "k" and to_key(("a", "b")) == ["a", "b"] and to_key(["a", ["b"]]) == ("a", "b")
    assert type(to_key("k")) is NonEmptySafeStrTuple and type(to_key(("a", "b"))) is NonEmptySafeStrTuple


# ---------------------------------------------------------------- 3. copies


@pytest.mark.parametrize("k", [NonEmptySafeStrTuple("a"), NonEmptySafeStrTuple("a", "b"), SafeStrTuple()])
def test_copies_are_the_key_itself(k: SafeStrTuple) -> None:
    assert copy.copy(k) is k
    assert copy.deepcopy(k) is k
    deep: dict[str, Any] = copy.deepcopy({"x": [k, (k, 1)], "y": {k: k}})
    assert deep["x"][0] is k and deep["x"][1][0] is k
    ((held, value),) = deep["y"].items()
    assert held is k and value is k
    clone = pickle.loads(pickle.dumps(k))  # pickling still makes another object of the same type
    assert clone == k and type(clone) is type(k)


# ---------------------------------------------------------------- 4. reversed


def test_reversed_is_a_safe_str_tuple() -> None:
    r = reversed(NonEmptySafeStrTuple("a", "b", "c"))
    assert type(r) is SafeStrTuple
    assert r == ("c", "b", "a") and list(r) == ["c", "b", "a"]
    assert reversed(SafeStrTuple("x")) == ("x",)
    empty = reversed(SafeStrTuple())
    assert type(empty) is SafeStrTuple and empty == ()


@given(st.lists(component, max_size=5))
def test_reversed_reverses_the_components(parts: list[str]) -> None:
    r = reversed(SafeStrTuple(parts))
    assert type(r) is SafeStrTuple and tuple(r) == tuple(parts[::-1])
    assert reversed(r) == parts


# ---------------------------------------------------------------- 5. !=


def test_ne_is_the_negation_of_eq() -> None:
    k = NonEmptySafeStrTuple("a", "b")
    for other in [("a", "b"), ["a", "b"], "a", ("a",), SafeStrTuple("a", "b"), k, None, 5, "a/b"]:
        assert (k != other) is (not (k == other))  # noqa: SIM201 - the two operators are compared
        assert (other != k) is (not (other == k))  # noqa: SIM201


def test_ne_follows_a_subclass_that_overrides_only_eq() -> None:
    class CaseBlind(SafeStrTuple):
        def __eq__(self, other: object) -> bool:
            if isinstance(other, str):
                return len(self) == 1 and self[0].lower() == other.lower()
            return NotImplemented

    k = CaseBlind("Key")
    assert k == "KEY"
    assert not (k != "KEY")  # noqa: SIM202 - the operator is the point
    assert k != "other"
    assert k.__ne__(5) is NotImplemented  # passed through, so Python decides (by identity)
    assert k != 5


def test_ne_of_a_subclass_eq_that_always_agrees() -> None:
    class Agreeable(NonEmptySafeStrTuple):
        def __eq__(self, other: object) -> bool:
            return True

    assert not (Agreeable("a") != "zzz")  # noqa: SIM202
    assert not (Agreeable("a") != ("b", "c"))  # noqa: SIM202 - tuple.__ne__ would say True


# ---------------------------------------------------------------- 6. SAFE_CHARS_SET


def test_safe_chars_set_is_a_set_of_the_safe_characters() -> None:
    assert isinstance(SAFE_CHARS_SET, set)
    assert persidict.SAFE_CHARS_SET is SAFE_CHARS_SET
    assert set(SAFE) == SAFE_CHARS_SET and len(SAFE_CHARS_SET) == 69
    assert "a" in SAFE_CHARS_SET and "/" not in SAFE_CHARS_SET and " " not in SAFE_CHARS_SET


def _augmented(op: str) -> Callable[[set[str]], object]:
    """An augmented assignment on a local name bound to the set."""

    def run(s: set[str]) -> object:
        if op == "|=":
            s |= {"/"}
        elif op == "&=":
            s &= {"a"}
        elif op == "-=":
            s -= {"a"}
        else:
            s ^= {"a", "/"}
        return s

    return run


MUTATIONS: dict[str, Callable[[set[str]], object]] = {
    "add": lambda s: s.add("/"),
    "discard": lambda s: s.discard("a"),
    "discard absent": lambda s: s.discard("/"),
    "remove": lambda s: s.remove("a"),
    "pop": lambda s: s.pop(),
    "clear": lambda s: s.clear(),
    "update": lambda s: s.update({"/"}),
    "update nothing": lambda s: s.update(),
    "intersection_update": lambda s: s.intersection_update({"a"}),
    "difference_update": lambda s: s.difference_update({"a"}),
    "symmetric_difference_update": lambda s: s.symmetric_difference_update({"a", "/"}),
    "|=": _augmented("|="),
    "&=": _augmented("&="),
    "-=": _augmented("-="),
    "^=": _augmented("^="),
    "__init__ again": lambda s: s.__init__("/"),  # type: ignore[misc]
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_safe_chars_set_refuses_every_change(name: str) -> None:
    with pytest.raises(TypeError, match="read-only"):
        MUTATIONS[name](SAFE_CHARS_SET)
    assert set(SAFE) == SAFE_CHARS_SET
    assert persidict.SAFE_CHARS_SET is SAFE_CHARS_SET


def test_safe_chars_set_algebra_gives_new_plain_sets() -> None:
    more = SAFE_CHARS_SET | {"/"}
    assert type(more) is set and "/" in more and "/" not in SAFE_CHARS_SET
    assert type(SAFE_CHARS_SET.copy()) is set and SAFE_CHARS_SET.copy() == SAFE_CHARS_SET
    assert SAFE_CHARS_SET - {"a"} == set(SAFE) - {"a"} and "a" in SAFE_CHARS_SET
    assert set("abc") <= SAFE_CHARS_SET and not set("a/") <= SAFE_CHARS_SET
    assert frozenset(SAFE) == SAFE_CHARS_SET


def test_get_safe_chars_is_a_fresh_plain_set() -> None:
    chars = get_safe_chars()
    assert type(chars) is set and chars == SAFE_CHARS_SET and chars is not SAFE_CHARS_SET
    chars.add("/")
    chars.discard("a")
    assert "/" not in SAFE_CHARS_SET and "a" in SAFE_CHARS_SET and "/" not in get_safe_chars()
