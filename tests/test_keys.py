"""Keys: SafeStrTuple / NonEmptySafeStrTuple, safe characters, digest suffixes, layout."""

from __future__ import annotations

import copy
import pickle
import string
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import persidict
from persidict import (
    NonEmptyPersiDictKey,
    NonEmptySafeStrTuple,
    PersiDictKey,
    SafeStrTuple,
    get_safe_chars,
    replace_unsafe_chars,
)
from persidict.keys import (
    SAFE_CHARS_SET,
    SAFE_STRING_MAX_LENGTH,
    Layout,
    add_digest_suffix,
    has_digest_suffix,
    strip_digest_suffix,
    to_key,
    to_prefix,
)

SAFE = string.ascii_letters + string.digits + "()_-~.="
component = st.text(alphabet=SAFE, min_size=1, max_size=20).filter(lambda s: s not in (".", ".."))
components = st.lists(component, max_size=5)


# ---------------------------------------------------------------- construction


def test_from_a_str() -> None:
    assert SafeStrTuple("abc") == ("abc",)
    assert NonEmptySafeStrTuple("abc") == ("abc",)


def test_from_nested_sequences_flattened() -> None:
    t = SafeStrTuple("a", ["b", ("c", ["d"])], SafeStrTuple("e", "f"), ())
    assert t == ("a", "b", "c", "d", "e", "f")
    assert type(t) is SafeStrTuple
    assert NonEmptySafeStrTuple([["x"]], "y") == ("x", "y")


def test_from_a_safe_str_tuple_is_the_same_object() -> None:
    t = NonEmptySafeStrTuple("a", "b")
    assert NonEmptySafeStrTuple(t) is t
    assert NonEmptySafeStrTuple(SafeStrTuple("a")) == ("a",)
    assert type(NonEmptySafeStrTuple(SafeStrTuple("a"))) is NonEmptySafeStrTuple


def test_str_subclasses_are_plain_strings() -> None:
    class MyStr(str):
        pass

    t = SafeStrTuple(MyStr("ab"))
    assert t == ("ab",) and type(t[0]) is str


def test_empty_safe_str_tuple_is_allowed_but_not_as_a_key() -> None:
    assert SafeStrTuple() == ()
    assert SafeStrTuple([], ()) == ()
    with pytest.raises(ValueError, match="at least one"):
        NonEmptySafeStrTuple()
    with pytest.raises(ValueError, match="at least one"):
        NonEmptySafeStrTuple([(), []])


@given(components)
def test_any_safe_components_round_trip(parts: list[str]) -> None:
    t = SafeStrTuple(parts)
    assert t == tuple(parts) and t.strings == tuple(parts) and list(t) == parts
    assert SafeStrTuple(*parts) == t
    assert pickle.loads(pickle.dumps(t)) == t


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "empty"),
        (".", "reserved"),
        ("..", "reserved"),
        ("a b", "unsafe characters"),
        ("a/b", "unsafe characters"),
        ("a\\b", "unsafe characters"),
        ("ключ", "unsafe characters"),
        ("a\x00", "unsafe characters"),
        ("x" * SAFE_STRING_MAX_LENGTH, "254 characters long"),
        ("x" * 1000, "1000 characters long"),
    ],
)
def test_bad_component_value_error_names_component_and_reason(bad: str, reason: str) -> None:
    builds: list[Callable[[], object]] = [
        lambda: SafeStrTuple(bad),
        lambda: NonEmptySafeStrTuple("ok", [bad]),
        lambda: to_key(("ok", bad)),
        lambda: to_key(bad),
    ]
    for build in builds:
        with pytest.raises(ValueError) as e:
            build()
        assert repr(bad) in str(e.value)
        assert reason in str(e.value)


def test_unsafe_characters_are_listed() -> None:
    with pytest.raises(ValueError, match=r"\[' ', '/'\]"):
        SafeStrTuple("a /b")


@pytest.mark.parametrize("bad", [5, 1.5, None, b"ab", bytearray(b"ab"), {"a": 1}, {"a"}, object()])
def test_wrong_type_is_a_type_error_naming_it(bad: Any) -> None:
    with pytest.raises(TypeError) as e:
        SafeStrTuple("a", bad)
    assert type(bad).__name__ in str(e.value)
    with pytest.raises(TypeError):
        to_key(bad)
    with pytest.raises(TypeError):
        to_key(("a", bad))


def test_max_length() -> None:
    assert SAFE_STRING_MAX_LENGTH == 254
    longest = "x" * (SAFE_STRING_MAX_LENGTH - 1)
    assert SafeStrTuple(longest) == (longest,)
    with pytest.raises(ValueError):
        SafeStrTuple(longest + "x")


def test_dots_inside_components_are_fine() -> None:
    assert SafeStrTuple("...", ".a", "a.", "a..b") == ("...", ".a", "a.", "a..b")


@given(st.text(min_size=1, max_size=10))
def test_validation_matches_the_safe_set(s: str) -> None:
    ok = all(c in SAFE_CHARS_SET for c in s) and s not in (".", "..")
    if ok:
        assert SafeStrTuple(s) == (s,)
    else:
        with pytest.raises(ValueError):
            SafeStrTuple(s)


# ---------------------------------------------------------------- tuple behaviour


def test_equality_and_hash_with_plain_tuples() -> None:
    t = NonEmptySafeStrTuple("a", "b")
    assert t == ("a", "b") and ("a", "b") == t  # noqa: SIM300 - the reflected comparison
    assert t == SafeStrTuple("a", "b")
    assert t != ("a",) and t != ("b", "a")
    assert hash(t) == hash(("a", "b"))
    plain: dict[Any, int] = {("a", "b"): 1}
    safe: dict[Any, int] = {t: 1}
    assert plain[t] == 1 and safe[("a", "b")] == 1
    assert len({t, ("a", "b"), SafeStrTuple("a", "b")}) == 1


def test_is_an_immutable_sequence_of_str() -> None:
    t = SafeStrTuple("a", "b", "c")
    assert isinstance(t, Sequence) and isinstance(t, tuple)
    assert len(t) == 3 and t[0] == "a" and t[-1] == "c" and "b" in t
    assert t.index("b") == 1 and t.count("a") == 1
    assert list(reversed(t)) == ["c", "b", "a"]
    assert type(t[1:]) is SafeStrTuple and t[1:] == ("b", "c")
    with pytest.raises(TypeError):
        t[0] = "z"  # type: ignore[index]
    with pytest.raises(AttributeError):
        t.extra = 1  # type: ignore[attr-defined]


def test_concatenation() -> None:
    a, b = SafeStrTuple("a"), NonEmptySafeStrTuple("b", "c")
    assert a + b == ("a", "b", "c") and type(a + b) is SafeStrTuple
    assert a + ("x", "y") == ("a", "x", "y")  # noqa: RUF005 - testing +
    assert a + "x" == ("a", "x")
    assert ("x",) + a == ("x", "a")  # noqa: RUF005
    assert "x" + a == ("x", "a")
    assert type(("x",) + a) is SafeStrTuple  # noqa: RUF005
    with pytest.raises(ValueError):
        _ = a + ("bad/part",)  # noqa: RUF005
    with pytest.raises(TypeError):
        _ = a + (5,)  # noqa: RUF005


def test_repr_copy_pickle_keep_the_type() -> None:
    t = NonEmptySafeStrTuple("a", "b")
    assert repr(t) == "NonEmptySafeStrTuple('a', 'b')"
    for clone in (copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert clone == t and type(clone) is NonEmptySafeStrTuple


def test_to_key_and_to_prefix() -> None:
    assert to_key("a") == ("a",) and type(to_key("a")) is NonEmptySafeStrTuple
    assert to_key(("a", "b")) == ("a", "b")
    assert to_key(["a", ["b"]]) == ("a", "b")
    assert to_key(("a", ["b"])) == ("a", "b")  # an unhashable part inside a tuple
    k = NonEmptySafeStrTuple("a")
    assert to_key(k) is k
    assert to_prefix(()) == () and to_prefix("a") == ("a",)
    assert type(to_prefix(k)) is SafeStrTuple
    with pytest.raises(ValueError):
        to_key(())


def test_key_type_aliases_are_public() -> None:
    assert persidict.PersiDictKey is PersiDictKey
    assert persidict.NonEmptyPersiDictKey is NonEmptyPersiDictKey


# ---------------------------------------------------------------- safe characters


def test_get_safe_chars_is_a_fresh_copy() -> None:
    chars = get_safe_chars()
    assert chars == set(SAFE) and len(chars) == 26 * 2 + 10 + 7
    chars.add("/")
    assert "/" not in get_safe_chars()
    assert frozenset(SAFE) == SAFE_CHARS_SET


def test_replace_unsafe_chars() -> None:
    assert replace_unsafe_chars("a b/c:d", "_") == "a_b_c_d"
    assert replace_unsafe_chars("safe-name.txt", "_") == "safe-name.txt"
    assert replace_unsafe_chars("ключ", "") == ""
    assert replace_unsafe_chars("a b", "--") == "a--b"
    with pytest.raises(TypeError):
        replace_unsafe_chars(5, "_")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["/", " ", "a/", "é", "\x00"])
def test_replace_unsafe_chars_rejects_an_unsafe_replacement(bad: str) -> None:
    with pytest.raises(ValueError, match="replace_with") as e:
        replace_unsafe_chars("a/b", bad)
    assert repr(bad) in str(e.value)
    with pytest.raises(ValueError):
        replace_unsafe_chars("ab", bad)  # even when nothing needs replacing


@given(st.text(max_size=30))
def test_replace_unsafe_chars_output_is_safe(s: str) -> None:
    out = replace_unsafe_chars(s, "_")
    assert len(out) == len(s) and set(out) <= SAFE_CHARS_SET


# ---------------------------------------------------------------- digests and layout


@given(component, st.integers(1, 10))
def test_digest_suffix_is_idempotent_and_strippable(c: str, n: int) -> None:
    once = add_digest_suffix(c, n)
    assert once.startswith(c + "_") and len(once) == len(c) + 1 + n
    assert add_digest_suffix(once, n) == once
    assert has_digest_suffix(once, n)
    assert strip_digest_suffix(once, n) == c
    assert set(once) <= SAFE_CHARS_SET


def test_digest_suffix_separates_case() -> None:
    assert add_digest_suffix("Key", 4).lower() != add_digest_suffix("key", 4).lower()
    assert add_digest_suffix("key", 0) == "key"
    assert strip_digest_suffix("key_abcd", 4) == "key_abcd"  # not its own digest


@given(
    st.lists(component, min_size=1, max_size=4), st.sampled_from([0, 4, 8]), st.sampled_from(["pkl", "json"])
)
def test_layout_round_trip(parts: list[str], n: int, ext: str) -> None:
    layout = Layout(ext, n)
    key = NonEmptySafeStrTuple(parts)
    loc = layout.location(key)
    assert len(loc) == len(key) and loc[-1].endswith("." + ext)
    assert layout.key_of(loc) == key
    assert layout.key_of(layout.location(key)) == key  # cached path too


def test_layout_ignores_foreign_locations() -> None:
    layout = Layout("pkl", 0)
    assert layout.key_of(()) is None
    assert layout.key_of(("a.json",)) is None
    assert layout.key_of(("bad name.pkl",)) is None
    assert layout.key_of(("a", "b.pkl")) == ("a", "b")
    assert Layout("pkl", 4) == Layout("pkl", 4) != Layout("pkl", 0)


def _reference_digest(s: str, n: int) -> str:
    """The published layout's suffix, spelled out: lowercase base32 of md5, first n characters."""
    import base64
    import hashlib

    return base64.b32encode(hashlib.md5(s.encode("utf-8")).digest()).decode("ascii").lower()[:n]


def _reference_key(prefix: tuple[str, ...], name: str, ext: str, n: int) -> NonEmptySafeStrTuple | None:
    """What a listing must make of the file ``name``: strip a valid suffix, then validate."""
    if not name.endswith("." + ext):
        return None
    c = name[: -len(ext) - 1]
    if n:  # only a name with its valid suffix, whose head has none of its own, holds a key
        if not (len(c) > n + 1 and c[-n - 1] == "_" and _reference_digest(c[: -n - 1], n) == c[-n:]):
            return None
        c = c[: -n - 1]
        if len(c) > n + 1 and c[-n - 1] == "_" and _reference_digest(c[: -n - 1], n) == c[-n:]:
            return None
    try:
        return NonEmptySafeStrTuple(*prefix, c)
    except ValueError:
        return None


@given(st.text(max_size=30), st.integers(0, 40))
def test_digest_prefix_is_the_published_base32_md5(s: str, n: int) -> None:
    from persidict.keys import _digest_prefix

    assert _digest_prefix(s, n) == _reference_digest(s, n)
    if n:
        assert add_digest_suffix(s, n) in (s, s + "_" + _reference_digest(s, n))


file_name_parts = st.one_of(
    component,
    st.text(alphabet=SAFE + " /é", min_size=0, max_size=12),
    st.sampled_from([".", "..", "", "x" * 249, "x" * 253, "y" * 300]),
)


@given(
    st.lists(st.tuples(file_name_parts, st.booleans(), st.sampled_from(["pkl", "json", ""])), max_size=30),
    st.sampled_from([0, 1, 4, 5, 8, 9]),
    st.sampled_from([(), ("a",), ("a", "b_c")]),
)
def test_file_keys_decode_names_like_the_reference(
    files: list[tuple[str, bool, str]], n: int, prefix: tuple[str, ...]
) -> None:
    layout = Layout("pkl", n)
    names = []
    for part, suffixed, ext in files:
        if suffixed:
            part = part + "_" + _reference_digest(part, n) if n else part
        names.append(part + ("." + ext if ext else ""))
    cache: dict[str, Any] = {}
    returned = layout.file_keys(prefix, cache, names)
    assert len(returned) == len(names)
    for name, got_back in zip(names, returned, strict=True):
        expected = _reference_key(prefix, name, "pkl", n)
        got = cache[name]
        assert got_back == got or (not got_back and not got)
        assert (got or None) == expected, name
        if got:
            assert type(got) is NonEmptySafeStrTuple
        if not prefix:
            assert layout.key_of((name,)) == expected  # the per-location decoder agrees


def test_file_name_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Layout, "_DECODED_LIMIT", 50)
    layout = Layout("pkl", 4)
    seen = 0
    for folder in range(20):
        prefix, cache = layout.folder((add_digest_suffix(f"f{folder}", 4),))
        assert prefix == (f"f{folder}",)
        for chunk in range(3):
            names = [add_digest_suffix(f"k{folder}_{chunk}_{i}", 4) + ".pkl" for i in range(10)]
            layout.file_keys(prefix, cache, names)
            for name in names:  # every name of the chunk just decoded is there, right
                assert cache[name] == (f"f{folder}", name[:-9])
            seen += len(names)
            total = sum(len(c) for _, c in layout._folders.values())
            assert total <= 50 and len(cache) <= 50
    assert seen == 600
    assert layout.folder(("not a key",))[0] is None


@given(st.lists(st.text(max_size=12), max_size=20), st.data())
def test_suffixes_match_is_the_one_by_one_comparison(heads: list[str], data: st.DataObject) -> None:
    from persidict.keys import _suffixes_match

    suffixes = [_reference_digest(h, 4) for h in heads]
    assert _suffixes_match(heads, "".join(suffixes))
    if heads:
        i = data.draw(st.integers(0, len(heads) - 1))
        j = data.draw(st.integers(0, 3))
        alphabet = "abcdefghijklmnopqrstuvwxyz234567"
        wrong = data.draw(st.sampled_from([c for c in alphabet if c != suffixes[i][j]]))
        changed = [*suffixes[:i], suffixes[i][:j] + wrong + suffixes[i][j + 1 :], *suffixes[i + 1 :]]
        assert not _suffixes_match(heads, "".join(changed))
        assert not _suffixes_match(heads, "".join(suffixes)[:-1])  # one character short
        other = data.draw(st.characters().filter(lambda c: c not in alphabet))
        foreign = [*suffixes[:i], suffixes[i][:j] + other + suffixes[i][j + 1 :], *suffixes[i + 1 :]]
        assert not _suffixes_match(heads, "".join(foreign))  # no other character stands for one


@given(
    st.lists(component, min_size=1, max_size=30),
    st.one_of(st.none(), st.tuples(st.integers(0, 29), file_name_parts)),
    st.sampled_from([(), ("a",), ("a", "b_c")]),
    st.sampled_from(["pkl", "json"]),
)
def test_file_keys_of_suffixed_names_are_checked_together(
    parts: list[str], odd: tuple[int, str] | None, prefix: tuple[str, ...], ext: str
) -> None:
    """Chunks of suffixed names take the batch check; one odd name sends the chunk one by one."""
    layout = Layout(ext, 4)
    names = [p + "_" + _reference_digest(p, 4) + "." + ext for p in parts]
    if odd is not None:
        names.insert(odd[0] % (len(names) + 1), odd[1] + "." + ext)
    one_by_one = []
    original = Layout._file_key

    def spy(self: Layout, prefix: tuple[str, ...], name: str) -> Any:
        one_by_one.append(name)
        return original(self, prefix, name)

    cache: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Layout, "_file_key", spy)
        returned = layout.file_keys(prefix, cache, names)
    for name, got in zip(names, returned, strict=True):
        assert (got or None) == _reference_key(prefix, name, ext, 4), name
        assert cache[name] == got
    plain = all(not p.startswith(("._", ".._")) and len(p) <= 248 for p in parts)
    if odd is None and plain:
        assert one_by_one == []  # the batch path decoded them


@given(
    st.one_of(
        st.text(max_size=300),
        st.text(alphabet=SAFE + "é ", max_size=300),
        st.sampled_from([".", "..", "...", "x" * 253, "x" * 254, "ab" * 127]),
    )
)
def test_is_key_component_is_the_published_rule(s: str) -> None:
    from persidict.keys import is_key_component

    expected = 0 < len(s) < 254 and all(c in SAFE for c in s) and s not in (".", "..")
    assert is_key_component(s) is expected
