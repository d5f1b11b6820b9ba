"""Keys: flat, immutable tuples of URL/filename-safe strings.

A key of a PersiDict is a :class:`NonEmptySafeStrTuple`. Users may pass a
plain ``str``, a ``SafeStrTuple`` or any (nested) sequence of those; it is
flattened and every component is checked. A key equals whatever stands for
the same components (``d.random_key() == "k1"``), hashes like the plain
tuple, is its own copy, and reverses into a SafeStrTuple. Caches keyed by
keys hold ``cache_key(k)``, so that their lookups compare in C. This module
also holds the digest suffixes that FileDirDict appends to key components,
since they are a pure function of the key.
"""

from __future__ import annotations

import base64
import hashlib
import re
import string
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache, partial
from itertools import repeat
from typing import Any, Literal, NoReturn, SupportsIndex, TypeAlias, cast, overload


class _ReadOnlySetError(TypeError, AttributeError):
    """Raised on any attempt to change SAFE_CHARS_SET (a TypeError; an AttributeError too, like frozenset)."""


class _ReadOnlySet(set[str]):
    """A ``set`` whose contents cannot change after it is built: every mutator raises.

    Membership tests, iteration and set algebra are the plain ``set`` ones
    (the operators return plain sets). ``get_safe_chars()`` hands out a
    mutable copy.
    """

    __slots__ = ()

    def __init__(self, chars: Iterable[str] = ()) -> None:
        if len(self):
            self._refuse()
        super().__init__(chars)

    def _refuse(self) -> NoReturn:
        raise _ReadOnlySetError("SAFE_CHARS_SET is read-only: use get_safe_chars() for a set you can change")

    def add(self, element: str, /) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def discard(self, element: object, /) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def remove(self, element: str, /) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def pop(self) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def clear(self) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def update(self, *others: Iterable[str]) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def intersection_update(self, *others: Iterable[Any]) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def difference_update(self, *others: Iterable[Any]) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def symmetric_difference_update(self, other: Iterable[str], /) -> NoReturn:
        """Refused: the set is read-only."""
        self._refuse()

    def __ior__(self, other: AbstractSet[str], /) -> NoReturn:  # type: ignore[misc,override]
        self._refuse()

    def __iand__(self, other: AbstractSet[object], /) -> NoReturn:
        self._refuse()

    def __isub__(self, other: AbstractSet[object], /) -> NoReturn:
        self._refuse()

    def __ixor__(self, other: AbstractSet[str], /) -> NoReturn:  # type: ignore[misc,override]
        self._refuse()


SAFE_CHARS_SET: set[str] = _ReadOnlySet(string.ascii_letters + string.digits + "()_-~.=")
"""Characters allowed in a key component (a ``set`` that refuses changes)."""

SAFE_STRING_MAX_LENGTH: int = 254
"""Every key component must be strictly shorter than this."""

_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9()_\-~.=]{1,253}")


def get_safe_chars() -> set[str]:
    """Return the set of characters allowed in a key component."""
    return set(SAFE_CHARS_SET)


def replace_unsafe_chars(a_str: str, replace_with: str) -> str:
    """Return ``a_str`` with every character outside the safe set replaced.

    ``replace_with`` must itself be made of safe characters (it may be empty):
    otherwise the result would not be safe, and ValueError is raised.
    """
    if not isinstance(a_str, str) or not isinstance(replace_with, str):
        raise TypeError("replace_unsafe_chars expects two strings")
    unsafe = sorted({c for c in replace_with if c not in SAFE_CHARS_SET})
    if unsafe:
        raise ValueError(
            f"replace_with={replace_with!r} contains unsafe characters {unsafe!r} (allowed: A-Za-z0-9()_-~.=)"
        )
    return "".join(c if c in SAFE_CHARS_SET else replace_with for c in a_str)


def is_key_component(s: str) -> bool:
    """Whether the str ``s`` is a valid key component (safe characters, 1-253 long, not . or ..)."""
    if s.isascii() and s.isalnum():  # letters and digits only: no regex needed
        return len(s) < SAFE_STRING_MAX_LENGTH
    return _SAFE_COMPONENT.fullmatch(s) is not None and s != "." and s != ".."


def _component_problem(s: str) -> str | None:
    """Explain why ``s`` is not a valid key component, or return None."""
    if is_key_component(s):
        return None
    if s == "":
        return "it is empty"
    if len(s) >= SAFE_STRING_MAX_LENGTH:
        return f"it is {len(s)} characters long (the limit is {SAFE_STRING_MAX_LENGTH - 1})"
    if s in (".", ".."):
        return "'.' and '..' are reserved path segments"
    bad = sorted({c for c in s if c not in SAFE_CHARS_SET})
    return f"it contains unsafe characters {bad!r} (allowed: A-Za-z0-9()_-~.=)"


def _flatten(args: Iterable[Any], out: list[str]) -> None:
    for a in args:
        if type(a) is str:
            problem = _component_problem(a)
            if problem is not None:
                raise ValueError(f"Invalid key component {a!r}: {problem}")
            out.append(a)
        elif isinstance(a, SafeStrTuple):
            out.extend(a)
        elif isinstance(a, str):
            _flatten((str(a),), out)
        elif isinstance(a, Sequence) and not isinstance(a, bytes | bytearray):
            _flatten(a, out)
        else:
            raise TypeError(
                f"Invalid key component {a!r} of type {type(a).__name__}: a key is a str or a sequence of str"
            )


_tuple_eq = tuple.__eq__


class SafeStrTuple(tuple[str, ...]):
    """An immutable, flat tuple of URL/filename-safe, non-empty strings.

    Built from strings, SafeStrTuples or nested sequences of those, which are
    flattened. Hashes like the plain tuple of its strings, and equals anything
    the constructor turns into the same strings: that tuple, another key, a
    str (``NonEmptySafeStrTuple("a") == "a"``), a list, nested sequences.
    Anything else compares unequal. Ordering is the plain tuples' ordering.
    """

    __slots__ = ()

    __hash__ = tuple.__hash__  # (defining __eq__ would otherwise remove it)

    def __new__(cls, *args: Any) -> SafeStrTuple:
        if len(args) == 1 and type(args[0]) is cls:
            return args[0]  # type: ignore[no-any-return,unused-ignore]
        out: list[str] = []
        _flatten(args, out)
        return tuple.__new__(cls, out)

    @classmethod
    def _trusted(cls, strings: tuple[str, ...]) -> SafeStrTuple:
        """Build without validation from components known to be valid."""
        return tuple.__new__(cls, strings)

    @property
    def strings(self) -> tuple[str, ...]:
        """The components as a plain tuple."""
        return tuple(self)

    @overload
    def __getitem__(self, i: SupportsIndex) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> SafeStrTuple: ...
    def __getitem__(self, i: SupportsIndex | slice) -> str | SafeStrTuple:
        if isinstance(i, slice):
            return SafeStrTuple._trusted(tuple.__getitem__(self, i))
        return tuple.__getitem__(self, i)

    def __add__(self, other: object) -> SafeStrTuple:  # type: ignore[override,unused-ignore]
        if isinstance(other, SafeStrTuple):
            return SafeStrTuple._trusted(tuple(self) + tuple(other))
        return SafeStrTuple(self, other)

    def __radd__(self, other: object) -> SafeStrTuple:
        return SafeStrTuple(other, self)

    def __eq__(self, other: object) -> bool:
        """Whether ``other`` stands for the same components (see the class docstring)."""
        t = type(other)
        if t is tuple or t is NonEmptySafeStrTuple or t is SafeStrTuple:
            # The common cases, at C speed when equal; a plain tuple unequal as it is may still be nested.
            return _tuple_eq(self, other) or (t is tuple and _same_components(self, other) is True)
        same = _same_components(self, other)
        return NotImplemented if same is None else same

    def __ne__(self, other: object) -> bool:
        """The negation of ``self == other`` (through ``self.__eq__``, so a subclass's override counts)."""
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __copy__(self) -> SafeStrTuple:
        """The key itself: it is immutable."""
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SafeStrTuple:
        """The key itself: it is immutable, and so are its strings."""
        return self

    def __reversed__(self) -> SafeStrTuple:  # type: ignore[override]
        """A SafeStrTuple of the components in reverse order."""
        return SafeStrTuple._trusted(tuple.__getitem__(self, slice(None, None, -1)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(s) for s in self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self)._trusted, (tuple(self),))


class NonEmptySafeStrTuple(SafeStrTuple):
    """A SafeStrTuple with at least one component: the type of every key."""

    __slots__ = ()

    def __new__(cls, *args: Any) -> NonEmptySafeStrTuple:
        if len(args) == 1 and type(args[0]) is cls:
            return args[0]  # type: ignore[no-any-return,unused-ignore]
        out: list[str] = []
        _flatten(args, out)
        if not out:
            raise ValueError("Invalid key: a key needs at least one non-empty string")
        return tuple.__new__(cls, out)

    @classmethod
    def _trusted(cls, strings: tuple[str, ...]) -> NonEmptySafeStrTuple:
        return tuple.__new__(cls, strings)


def _same_components(key: SafeStrTuple, other: object) -> bool | None:
    """``key == other`` for anything but an equal tuple or key: the constructor decides.

    A str or a sequence equals the key when it flattens to the same
    components; one that is no valid key is unequal. Anything else gives
    None: not comparable (``__eq__`` returns NotImplemented, so the other
    side may decide; by default unequal).
    """
    if isinstance(other, str):
        return len(key) == 1 and tuple.__getitem__(key, 0) == str(other)
    if type(other) is tuple and all(type(s) is str for s in other):
        return False  # flat strings, already found unequal as they are
    if isinstance(other, Sequence) and not isinstance(other, bytes | bytearray):
        out: list[str] = []
        try:
            _flatten(other, out)
        except Exception:  # not a valid key (a wrong type, an unsafe string, a cycle...)
            return False
        return _tuple_eq(key, tuple(out))
    return None


_new_key: Callable[[Iterable[str]], NonEmptySafeStrTuple] = partial(tuple.__new__, NonEmptySafeStrTuple)
"""A NonEmptySafeStrTuple of components known to be valid, built without checks."""


PersiDictKey: TypeAlias = SafeStrTuple | str | Sequence[str]
"""What may be passed where a (possibly empty) key prefix is expected."""

NonEmptyPersiDictKey: TypeAlias = NonEmptySafeStrTuple | str | Sequence[str]
"""What may be passed where a key is expected."""


@lru_cache(maxsize=65536)
def _cached_key(key: str | tuple[Any, ...]) -> NonEmptySafeStrTuple:
    return NonEmptySafeStrTuple(key)


def to_key(key: object) -> NonEmptySafeStrTuple:
    """Normalise a user key into a NonEmptySafeStrTuple (a valid str directly, tuples cached)."""
    t = type(key)
    if t is NonEmptySafeStrTuple:
        return key  # type: ignore[return-value,unused-ignore]
    if t is str:
        s = cast(str, key)
        if is_key_component(s):
            return _new_key((s,))
    if t is str or t is tuple:
        try:
            return _cached_key(key)  # type: ignore[arg-type,unused-ignore]
        except TypeError:
            if t is str:
                raise
            # an unhashable component (e.g. a list): validate uncached
    return NonEmptySafeStrTuple(key)


class _CacheKey(tuple[str, ...]):
    """A key as stored in a cache: a tuple subclass that keeps the C tuple comparison.

    A dict compares the key it holds with the one looked up, the held one's
    comparison first unless the looked-up one's type subclasses the held
    one's. SafeStrTuple's ``__eq__`` is Python code (it also takes str and
    lists), so a cache holding keys would run it on every lookup that finds
    an equal key under another object. Holding this sibling type instead,
    which is no base of the key types, makes those lookups compare in C.
    """

    __slots__ = ()


def cache_key(key: SafeStrTuple) -> tuple[str, ...]:
    """The object to store ``key`` under in a cache dict: equal to it, hashed alike, compared in C."""
    return tuple.__new__(_CacheKey, key)


def to_prefix(prefix: object) -> SafeStrTuple:
    """Normalise a user key prefix (which may be empty) into a SafeStrTuple."""
    if isinstance(prefix, SafeStrTuple):
        return SafeStrTuple._trusted(tuple(prefix))
    return SafeStrTuple(prefix)


# ---------------------------------------------------------------- digests


_md5: Callable[[bytes], Any]
try:  # CPython's own md5 is about twice as fast as OpenSSL's on short names
    import _md5 as _builtin_md5

    _md5 = _builtin_md5.md5
except ImportError:  # pragma: no cover - a build without it
    _md5 = hashlib.md5


def _digest_uncached(component: str) -> str:
    raw = hashlib.md5(component.encode("utf-8")).digest()
    return base64.b32encode(raw).decode("ascii").lower()


_B32_PAIRS = [a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"]


def _digest_prefix(component: str, n: int) -> str:
    """``_digest_uncached(component)[:n]``, computed from the first bytes of the md5 for n <= 8."""
    d: bytes = _md5(component.encode("utf-8")).digest()
    pairs = _B32_PAIRS
    if n <= 4:  # the default: 20 bits, two pairs of base32 characters
        v = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        return (pairs[v >> 10] + pairs[v & 1023])[:n]
    if n > 8:
        return base64.b32encode(d).decode("ascii").lower()[:n]
    v = int.from_bytes(d[:5], "big")
    return (pairs[v >> 30] + pairs[(v >> 20) & 1023] + pairs[(v >> 10) & 1023] + pairs[v & 1023])[:n]


_B32_ALPHABET = b"abcdefghijklmnopqrstuvwxyz234567"
# Each base32 character's 5 bits; any other byte 255, which no piece below can match.
_B32_VALUES = bytes(_B32_ALPHABET.find(b) if b in _B32_ALPHABET else 255 for b in range(256))


def _shifted(n: int, mask: int) -> bytes:
    """A bytes.translate table taking every byte b to (b >> n) & mask."""
    return bytes((b >> n) & mask for b in range(256))


_SHR1_AND31, _SHR2, _SHR3, _SHR4, _SHR6 = (_shifted(n, 31) for n in (1, 2, 3, 4, 6))
_AND1, _AND3, _AND7, _AND15 = (_shifted(0, m) for m in (1, 3, 7, 15))


def _suffixes_match(heads: list[str], suffixes: str) -> bool:
    """Whether ``suffixes`` is ``_digest_prefix(h, 4)`` of every head ``h``, concatenated in order.

    The same test as comparing one by one, done on whole byte strings: the
    4 base32 characters of a suffix hold the first 20 bits of the md5 (byte
    0, byte 1, the high half of byte 2), compared piece by piece.
    """
    if not suffixes.isascii():
        return False  # no base32 suffix (and no bytes for a lone surrogate of an undecodable file name)
    d = b"".join([_md5(h.encode()).digest() for h in heads])  # utf-8
    b0, b1, b2 = d[0::16], d[1::16], d[2::16]
    v = suffixes.encode().translate(_B32_VALUES)  # character -> its 5 bits
    if len(v) != 4 * len(heads):
        return False
    v0, v1, v2, v3 = v[0::4], v[1::4], v[2::4], v[3::4]
    return (
        b0.translate(_SHR3) == v0  # bits 0-4
        and b0.translate(_AND7) == v1.translate(_SHR2)  # bits 5-7
        and b1.translate(_SHR6) == v1.translate(_AND3)  # bits 8-9
        and b1.translate(_SHR1_AND31) == v2  # bits 10-14
        and b1.translate(_AND1) == v3.translate(_SHR4)  # bit 15
        and b2.translate(_SHR4) == v3.translate(_AND15)  # bits 16-19
    )


def _decode_component(encoded: str, digest_len: int) -> str | None:
    """The key component stored as ``encoded``, or None if ``encoded`` holds none.

    With ``digest_len > 0`` only a name carrying its valid suffix holds one:
    the part before the suffix, if it is a key component that does not end
    in a valid suffix of its own (``add_digest_suffix`` would have left such
    a component alone, so its item is stored under another name). Names
    without the suffix, or with one of another length, are foreign.
    """
    if not digest_len:
        return encoded if is_key_component(encoded) else None
    head = encoded[: -digest_len - 1]
    # The head first: a file name that is no key component (one the file system could not decode,
    # with lone surrogates) has no digest to compute.
    if not is_key_component(head) or not has_digest_suffix(encoded, digest_len):
        return None
    return None if has_digest_suffix(head, digest_len) else head


def add_digest_suffix(component: str, digest_len: int) -> str:
    """Append ``_`` + the first ``digest_len`` chars of the component's digest.

    A component that already ends in its own valid suffix is left alone, so
    the function is idempotent. With ``digest_len == 0`` nothing is added.
    """
    n = digest_len
    if n == 0 or (len(component) > n + 1 and component[-n - 1] == "_" and has_digest_suffix(component, n)):
        return component  # (the cheap test first: most components end in no "_" + n characters)
    return component + "_" + _digest_prefix(component, n)


def has_digest_suffix(component: str, digest_len: int) -> bool:
    """Whether ``component`` ends with ``_`` + the digest of what precedes it."""
    if digest_len == 0 or len(component) <= digest_len + 1 or component[-digest_len - 1] != "_":
        return False
    return _digest_prefix(component[: -digest_len - 1], digest_len) == component[-digest_len:]


def strip_digest_suffix(component: str, digest_len: int) -> str:
    """Remove a valid digest suffix from ``component``; leave anything else."""
    if has_digest_suffix(component, digest_len):
        return component[: -digest_len - 1]
    return component


# ---------------------------------------------------------------- layout

FileKey: TypeAlias = "NonEmptySafeStrTuple | Literal[False]"
"""The key a file name holds, or False when it holds none."""

_UNKNOWN: Any = object()


class Layout:
    """Maps keys to backend locations and back (a pure function of the key).

    Each component gets a digest suffix when ``digest_len > 0`` (FileDirDict's
    defence against case-insensitive filesystems); the last one also gets
    ``"." + extension``. Decoded names are cached: listings decode every file.

    With ``digest_len > 0`` a name holds a key only if it carries its valid
    suffix (see ``_decode_component``), which proves it was written through
    this layout, even a name starting with ".". ``hidden=False`` (a folder on
    disk) makes names starting with "." foreign when no suffix proves
    otherwise, that is with ``digest_len == 0``.
    """

    __slots__ = (
        "_decoded",
        "_dot_ext",
        "_file_count",
        "_folders",
        "_items",
        "digest_len",
        "extension",
        "hidden",
    )

    _DECODED_LIMIT = 65_536

    def __init__(self, extension: str, digest_len: int = 0, *, hidden: bool = True) -> None:
        self.extension = extension
        self.digest_len = digest_len
        self.hidden = hidden
        """Whether a name starting with "." may hold a key when no digest suffix proves it ours."""
        self._dot_ext = "." + extension
        # A chunk of file names joined by "/", each shaped like an item with a
        # 4-character suffix: safe, at most 253 characters before the
        # extension, and the part before the suffix neither "." nor "..".
        item = rf"(?!\.\.?_)[A-Za-z0-9()_\-~.=]{{1,248}}_[a-z2-7]{{4}}{re.escape(self._dot_ext)}"
        self._items = re.compile(f"(?:{item}/)*{item}")
        # Encoded part (extension removed) -> key component, or None if not one.
        self._decoded: dict[str, str | None] = {}
        # Folder parts -> (the key prefix they hold, or None; file name -> key, False if none).
        self._folders: dict[tuple[str, ...], tuple[tuple[str, ...] | None, dict[str, FileKey]]] = {}
        self._file_count = 0

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Layout)
            and other.extension == self.extension
            and other.digest_len == self.digest_len
            and other.hidden == self.hidden
        )

    def __hash__(self) -> int:
        return hash((self.extension, self.digest_len, self.hidden))

    def __repr__(self) -> str:
        hidden = "" if self.hidden else ", hidden=False"
        return f"Layout(extension={self.extension!r}, digest_len={self.digest_len}{hidden})"

    def fresh(self) -> Layout:
        """A layout like this one with empty caches (for a subdict)."""
        return Layout(self.extension, self.digest_len, hidden=self.hidden)

    def encode_prefix(self, prefix: Sequence[str]) -> tuple[str, ...]:
        """Encoded folder parts for a key prefix."""
        n = self.digest_len
        return tuple(add_digest_suffix(c, n) for c in prefix)

    def location(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """The location (relative to a dict's root) where ``key`` is stored (dicts cache it per key)."""
        n = self.digest_len
        if len(key) == 1:
            (c,) = key
            return (add_digest_suffix(c, n) + self._dot_ext,)
        parts = [add_digest_suffix(c, n) for c in key]
        parts[-1] += self._dot_ext
        return tuple(parts)

    def decode_part(self, encoded: str) -> str | None:
        """The key component stored as ``encoded`` (no extension), or None if it is none.

        Cached (bounded): listings call this for every file.
        """
        decoded = self._decoded
        c = decoded.get(encoded, _UNKNOWN)
        if c is _UNKNOWN:
            c = self._decode(encoded)
            if len(decoded) >= self._DECODED_LIMIT:
                decoded.clear()
            decoded[encoded] = c
        return c  # type: ignore[no-any-return]

    def folder(self, parts: tuple[str, ...]) -> tuple[tuple[str, ...] | None, dict[str, FileKey]]:
        """(key prefix, file-name cache) of the folder at ``parts``; the prefix is None if it holds no keys.

        Listings pass the cache to ``file_key`` for every file of the folder.
        """
        known = self._folders.get(parts)
        if known is None:
            decoded = [self.decode_part(p) for p in parts]
            prefix = None if None in decoded else tuple(decoded)
            known = (prefix, {})  # type: ignore[assignment]
            if len(self._folders) >= self._DECODED_LIMIT:
                self._forget_files()
            self._folders[parts] = known  # type: ignore[assignment]
        return known  # type: ignore[return-value]

    def file_keys(self, prefix: tuple[str, ...], names: dict[str, FileKey], new: list[str]) -> list[FileKey]:
        """The keys of the file names ``new`` of a folder holding keys under ``prefix`` (False: none).

        Also remembered in ``names`` (that folder's cache from ``folder``);
        all these caches together hold at most _DECODED_LIMIT names, so
        another thread may clear them at any moment: use the returned list.
        It runs once per file on a dict's first listing, so with the default
        digest length a chunk whose names all look like suffixed items (one
        regex over the chunk says so) has all its suffixes checked at once.
        """
        if self._file_count + len(new) > self._DECODED_LIMIT:
            self._forget_files()
            names.clear()
        keys: list[FileKey] | None = None
        if self.digest_len == 4 and self._items.fullmatch("/".join(new)) is not None:
            cut = -len(self._dot_ext) - 5  # where "_" + 4 digest characters start
            heads = [name[:cut] for name in new]
            if _suffixes_match(heads, "".join([name[cut + 1 : cut + 5] for name in new])):
                keys = list(map(_new_key, zip(*map(repeat, prefix), heads, strict=False)))
                for i, head in enumerate(heads):
                    if head[-5:-4] == "_" and has_digest_suffix(head, 4):
                        keys[i] = False  # a head with a suffix of its own: its key is stored elsewhere
        if keys is None:  # another digest length, or a name that is no suffixed item
            keys = [self._file_key(prefix, name) for name in new]
        known = len(names)
        names.update(zip(new, keys, strict=True))
        self._file_count += max(len(names) - known, 0)  # a name decoded again counts once
        return keys

    def _file_key(self, prefix: tuple[str, ...], name: str) -> FileKey:
        """The key the file ``name`` holds in a folder of keys under ``prefix``, False if none."""
        if not name.endswith(self._dot_ext):
            return False
        c = self._decode(name[: -len(self._dot_ext)])
        return False if c is None else _new_key((*prefix, c))

    def _decode(self, encoded: str) -> str | None:
        """``_decode_component`` under this layout's rule for names starting with "." (uncached)."""
        if not self.hidden and not self.digest_len and encoded[:1] == ".":
            return None
        return _decode_component(encoded, self.digest_len)

    def _forget_files(self) -> None:
        for _, names in list(self._folders.values()):
            names.clear()
        self._folders.clear()
        self._file_count = 0

    def key_of(self, loc: Sequence[str]) -> NonEmptySafeStrTuple | None:
        """The key stored at ``loc``, or None if ``loc`` holds no item of this layout."""
        if not loc:
            return None
        last = loc[-1]
        dot_ext = self._dot_ext
        if not last.endswith(dot_ext):
            return None
        decode = self.decode_part
        if len(loc) == 1:  # (the common case: no folders)
            c = decode(last[: -len(dot_ext)])
            return None if c is None else _new_key((c,))
        parts: list[str] = []
        for encoded in (*loc[:-1], last[: -len(dot_ext)]):
            c = decode(encoded)
            if c is None:
                return None  # a foreign file whose name is not a key
            parts.append(c)
        return _new_key(parts)
