"""LocalDict: a PersiDict held in memory, shared by its subdicts and copies.

Values are never serialised: a LocalDict stores a deep copy of each value
(``copy.deepcopy`` semantics) and hands out another deep copy on every read,
so any deep-copyable value can be stored — an instance of a class defined
inside a function, a lambda in a list — and a 1 MiB bytes value costs no
copy at all (immutable values are their own deep copies).
``serialization_format`` only names a namespace: views of one store with
different formats do not see each other's items. A text format (any name but
"pkl" and "json") still holds ``str`` values only.
"""

from __future__ import annotations

import copy
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import attrs

from .backends.memory import MemoryBackend
from .codecs import Codec, TextCodec, ValueCoder
from .flags import Joker, ValueType
from .keys import NonEmptyPersiDictKey, NonEmptySafeStrTuple, PersiDictKey, to_key, to_prefix
from .persi_dict import PLAIN_VALUE_TYPES
from .store_dict import StoreDict

_ATOMIC: frozenset[type] = frozenset(
    {
        type(None), int, float, bool, complex, bytes, str, range, type,
        types.FunctionType, types.BuiltinFunctionType, types.CodeType,
        type(Ellipsis), type(NotImplemented), weakref.ref, property,
    }
)  # fmt: skip
"""Types ``copy.deepcopy`` returns as they are (its ``_deepcopy_atomic`` ones)."""

_NIL: Any = object()


def deep_copy(value: Any) -> Any:
    """``copy.deepcopy(value)``, two to four times faster on lists, dicts and tuples of plain data.

    The result is the one ``copy.deepcopy`` gives, shared parts and cycles
    included: the same memo is kept, and every object that is not a plain
    list, dict, tuple or immutable atom is handed to ``copy.deepcopy`` itself
    (with that memo), so ``__deepcopy__``, ``__reduce_ex__`` and the copy
    registry apply as usual.
    """
    t = type(value)
    if t in _ATOMIC:
        return value
    # A dict or list at the top: _copy's loop, inlined (one call less on every read and write).
    atomic = _ATOMIC
    if t is dict:
        memo: dict[int, Any] = {}
        y: Any = {}
        memo[id(value)] = y
        for k, v in value.items():
            y[k if type(k) in atomic else _copy(k, memo)] = v if type(v) in atomic else _copy(v, memo)
        return y
    if t is list:
        memo = {}
        y = []
        memo[id(value)] = y
        append = y.append
        for a in value:
            append(a if type(a) in atomic else _copy(a, memo))
        return y
    if t is tuple:
        return _copy(value, {})
    return copy.deepcopy(value)


def _copy(
    x: Any, memo: dict[int, Any], _atomic: frozenset[type] = _ATOMIC, _deepcopy: Any = copy.deepcopy
) -> Any:
    """``copy.deepcopy(x, memo)``, with the cases of ``copy``'s list, dict and tuple copiers inlined.

    (``copy.deepcopy`` also keeps each copied object alive in the memo, in
    case it is a temporary; the lists, dicts and tuples copied here belong to
    the value being copied, which the caller keeps alive.)
    """
    t = type(x)
    if t in _atomic:
        return x
    d = id(x)
    y = memo.get(d, _NIL)
    if y is not _NIL:
        return y
    if t is list:
        y = []
        memo[d] = y
        append = y.append
        for a in x:
            append(a if type(a) in _atomic else _copy(a, memo))
        return y
    if t is dict:
        y = {}
        memo[d] = y
        for k, v in x.items():
            y[k if type(k) in _atomic else _copy(k, memo)] = v if type(v) in _atomic else _copy(v, memo)
        return y
    if t is tuple:
        items = [a if type(a) in _atomic else _copy(a, memo) for a in x]
        y = memo.get(d, _NIL)  # the tuple was reached again through its own items
        if y is not _NIL:
            return y
        for a, b in zip(x, items, strict=True):
            if a is not b:
                y = memo[d] = tuple(items)
                return y
        return x  # every item is its own copy: so is the tuple
    return _deepcopy(x, memo)


@attrs.frozen
class CopyCoder(ValueCoder):
    """LocalDict's ValueCoder: a value's stored form is a private deep copy, not bytes.

    The commands (``ops.commands``) and the interpreter (``ops.run``) carry a
    value's stored form, typed ``bytes``, from the coder to the backend and
    back without ever looking inside, and MemoryBackend keeps whatever it is
    given. So a coder whose ``encode`` (and ``dump``) returns a deep copy and
    whose ``decode`` returns another one fits the ValueCoder shape: the
    conditional operations, ``transform_item`` and IF_ETAG_CHANGED reads run
    through the shared interpreter unchanged, and nothing is serialised.
    ``codec`` only names the format (the namespace): it is never called, but
    a text codec means str values only, as on every other store.
    """

    dump: Callable[[Any], Any] = attrs.field(init=False, eq=False, repr=False, default=deep_copy)
    """A deep copy, with no checks."""
    text_only: bool = attrs.field(init=False, eq=False, repr=False)
    """Whether the format is a text format (str values only)."""

    @text_only.default
    def _text_only(self) -> bool:
        return isinstance(self.codec, TextCodec)

    def encode(self, key: object, value: Any) -> Any:
        """Check ``value`` for ``key``; return the deep copy to store (the "bytes": see the class)."""
        if self.base_class_for_values is not None:
            self.check(key, value)
        if self.text_only and not isinstance(value, str):
            raise TypeError(
                f"A dict with serialization_format={self.codec.extension!r} stores str values only, "
                f"not {type(value).__name__} (key {key!r})"
            )
        try:
            return deep_copy(value)
        except TypeError as e:
            raise TypeError(f"Cannot store the value for key {key!r}: it cannot be deep-copied: {e}") from e
        except Exception as e:
            raise ValueError(f"Cannot store the value for key {key!r}: it cannot be deep-copied: {e}") from e

    def decode(self, key: object, data: Any, where: Callable[[], str]) -> Any:
        """A deep copy of the object stored for ``key`` (``where()`` names the place); check its type."""
        base = self.base_class_for_values
        if base is not None and not isinstance(data, base):
            raise TypeError(
                f"The value stored for key {key!r} at {where()} is a {type(data).__name__}, "
                f"not an instance of {base.__name__}"
            )
        return deep_copy(data)


def _check_prune_interval(prune_interval: object) -> int | None:
    """``prune_interval`` as reported: an int > 0, or None (for None or any int <= 0)."""
    if prune_interval is None:
        return None
    if isinstance(prune_interval, bool) or not isinstance(prune_interval, int):
        raise TypeError(f"prune_interval must be an int or None, not {prune_interval!r}")
    return prune_interval if prune_interval > 0 else None


class LocalDict(StoreDict[ValueType]):
    """An in-memory, thread-safe PersiDict for tests, caches and ephemeral data.

    Values are stored as deep copies and read back as deep copies; they are
    never serialised, so ``serialization_format`` (a name, or a Codec, which
    is not called) only names a namespace of the store. ETags come from one
    counter per store. ``len()`` is immediate, for the dict and for any
    subdict: the store counts the items under every folder. Pass ``backend``
    to open another view of an existing store (as ``get_params`` does);
    ``copy.copy`` gives such a view, ``copy.deepcopy`` a detached copy of the
    whole store. A LocalDict cannot be pickled (see ``__reduce__``).

    ``prune_interval`` is accepted and reported for compatibility: stores that
    drop empty folders every so many deletions take it; this one drops a
    folder as soon as it is empty, so the value changes nothing.
    """

    _backend: MemoryBackend
    _coder: CopyCoder
    _prune_interval: int | None
    _fast_puts: bool

    def __init__(
        self,
        *,
        backend: MemoryBackend | None = None,
        root_prefix: PersiDictKey = (),
        serialization_format: str | Codec = "pkl",
        append_only: bool = False,
        base_class_for_values: type | None = None,
        prune_interval: int | None = 64,
    ) -> None:
        if backend is not None and not isinstance(backend, MemoryBackend):
            raise TypeError(f"backend must be a MemoryBackend or None, not {backend!r}")
        interval = _check_prune_interval(prune_interval)
        prefix = tuple(to_prefix(root_prefix))
        self._init_store(
            backend=backend if backend is not None else MemoryBackend(),
            root=(),
            serialization_format=serialization_format,
            append_only=append_only,
            base_class_for_values=base_class_for_values,
        )
        self._coder = CopyCoder(self._coder.codec, base_class_for_values)
        # d[k] = v with a str key and a plain value needs no rule but a deep copy.
        self._fast_puts = self._plain_puts and not self._coder.text_only
        # The format's name (its extension) heads every location: one namespace per format.
        self._root = (self._layout.extension, *prefix)
        self._prune_interval = interval

    @property
    def prune_interval(self) -> int | None:
        """As given (None for None or a value <= 0); it changes nothing here (see the class)."""
        return self._prune_interval

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted; they share this dict's memory store."""
        params = {
            **self._common_params(),
            "backend": self._backend,
            "prune_interval": self._prune_interval,
            "root_prefix": self._root[1:],
        }
        return dict(sorted(params.items()))

    # ------------------------------------------------------------ hot paths
    # One lookup or one locked write each; no command, no Stat. A str key goes
    # straight to its location (cached by str: no key object, no Target).

    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        """The value stored under ``key`` (a deep copy); KeyError when absent."""
        if type(key) is str and self._coder.base_class_for_values is None:
            loc = self._str_locs.get(key) or self._loc_of_str(key)
            if loc is not None:
                entry = self._backend.entry(loc)
                if entry is not None:
                    value: ValueType = deep_copy(entry[0])
                    return value
        return self._get(to_key(key))

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        """Store a deep copy of ``value``; KEEP_CURRENT does nothing, DELETE_CURRENT deletes."""
        if type(key) is str and type(value) in PLAIN_VALUE_TYPES and self._fast_puts:
            loc = self._str_locs.get(key) or self._loc_of_str(key)
            if loc is not None:
                try:
                    data = deep_copy(value)
                except Exception:
                    data = self._coder.encode(to_key(key), value)  # raises the error naming the key
                self._backend.put(loc, data)
                return
        super().__setitem__(key, value)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is stored (a malformed key raises, as it can never be stored)."""
        if type(key) is str:
            loc = self._str_locs.get(key) or self._loc_of_str(key)
            if loc is not None:
                return self._backend.contains(loc)
        return self._contains(to_key(key))

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        t = self._targets.get(key) or self._target(key)
        entry = self._backend.entry(t.loc)
        if entry is None:
            raise KeyError(key)
        value: ValueType = t.coder.decode(key, entry[0], lambda: self._backend.where(t.loc))
        return value

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        if self._append_only:
            super()._set(key, value)  # create-only: a command for the interpreter
            return
        t = self._targets.get(key) or self._target(key)
        self._backend.put(t.loc, t.coder.encode(key, value))

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        return self._backend.contains((self._targets.get(key) or self._target(key)).loc)

    def _discard(self, key: NonEmptySafeStrTuple) -> bool:
        return self._backend.delete(self._target(key).loc)

    def _timestamp(self, key: NonEmptySafeStrTuple) -> float:
        stat = self._backend.stat(self._target(key).loc)
        if stat is None:
            raise KeyError(key)
        return stat.mtime

    # ------------------------------------------------------------ the whole dict

    def _iter_keys_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, float]]:
        key_of = self._layout.key_of
        for loc, mtime in self._backend.list_times(self._root):
            k = key_of(loc)
            if k is not None:
                yield k, mtime

    def __len__(self) -> int:
        """The number of items (counted by the store as they come and go: no walk)."""
        return self._backend.count(self._root)

    def __bool__(self) -> bool:
        """Whether the dict holds any item (counted, not listed)."""
        return self._backend.count(self._root) > 0

    def _clear(self) -> None:
        """Delete every item of this dict (and of its subdicts) at once."""
        self._backend.delete_prefix(self._root)

    # ------------------------------------------------------------ copies

    def __reduce__(self) -> NoReturn:
        """Refuse: an unpickled LocalDict would be a detached copy of the store, not this store."""
        raise TypeError(
            "A LocalDict cannot be pickled: its items live in this process's memory, so an unpickled "
            "LocalDict would be a separate, detached copy of the store, not the same store. To share "
            "items between processes, use a FileDirDict, LmdbDict or S3Dict. In this process, "
            "LocalDict(**d.get_params()) opens another view of the same store and copy.deepcopy(d) "
            "makes a detached copy."
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> LocalDict[ValueType]:
        """A detached copy: the same view of a snapshot of the whole store (values deep-copied)."""
        new = copy.copy(self)
        new._backend = copy.deepcopy(self._backend, memo)
        return new
