"""PersiDict: the abstract, dict-like interface shared by every store and wrapper.

Public methods validate and normalise their arguments (keys, flags, values,
the mutation policy's jokers) and call a small set of protected primitives
that concrete classes implement: ``_get_item_if``, ``_set_item_if``,
``_setdefault_if``, ``_discard_if``, ``_transform_item``, ``_iter_keys``,
``_iter_keys_and_timestamps``, ``_timestamp``, ``_subdict`` and
``get_params``. The rest — the plain dict API, sampling, ordering by time,
subdicts — is derived here once. Stores override the derived hot paths
(``_get``, ``_set``, ``_discard``, ``_contains``) with single backend calls.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
from abc import ABC, abstractmethod
from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from typing import Any, Generic, Literal, Self, TypeVar, overload

from .codecs import Codec, TextCodec, codec_for
from .concurrency import DEFAULT_MAX_WORKERS, check_max_workers, map_outcomes
from .errors import MutationPolicyError, batch_error
from .flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ETagConditionFlag,
    ETagIfExists,
    ETagValue,
    ItemNotAvailableFlag,
    Joker,
    RetrieveValueFlag,
    TransformingFunction,
    ValueNotRetrievedFlag,
    ValueType,
)
from .keys import (
    NonEmptyPersiDictKey,
    NonEmptySafeStrTuple,
    PersiDictKey,
    SafeStrTuple,
    to_key,
    to_prefix,
)
from .ops.run_many import ABSENT, OnDone
from .progress import ProgressOption, Reporter
from .results import ConditionalOperationResult, OperationResult

_T = TypeVar("_T")
_SENTINELS = (ItemNotAvailableFlag, ValueNotRetrievedFlag, ETagConditionFlag, RetrieveValueFlag)


class PersiDictView:
    """What stands for a PersiDict without being one (``persidict.aio.AsyncPersiDict``): never a value."""

    __slots__ = ()
PLAIN_VALUE_TYPES: frozenset[type] = frozenset(
    {dict, list, tuple, str, bytes, int, float, bool, set, frozenset, type(None)}
)
"""Builtin value types that are surely no joker, flag or PersiDict (a fast path on writes)."""
_MISSING: Any = object()


def _is_text_format(fmt: object) -> bool:
    """Whether ``fmt`` names a plain-text format (str values only), as ``codec_for`` decides."""
    return isinstance(fmt, str) and isinstance(codec_for(fmt), TextCodec)


def check_condition(condition: object) -> ETagConditionFlag:
    """Validate an ETag condition argument."""
    if not isinstance(condition, ETagConditionFlag):
        raise TypeError(
            "condition must be ANY_ETAG, ETAG_IS_THE_SAME or ETAG_HAS_CHANGED, "
            f"not {condition!r}"
        )
    return condition


def check_expected_etag(expected_etag: object) -> ETagIfExists:
    """Validate an expected ETag argument (a str or ITEM_NOT_AVAILABLE)."""
    if isinstance(expected_etag, ItemNotAvailableFlag):
        return expected_etag
    if not isinstance(expected_etag, str):
        raise TypeError(
            f"expected_etag must be an ETag string or ITEM_NOT_AVAILABLE, not {expected_etag!r}"
        )
    return ETagValue(expected_etag)


def check_retrieve(retrieve_value: object, always_retrieve_value: bool | None) -> RetrieveValueFlag:
    """Validate a retrieve mode; ``always_retrieve_value`` is the older boolean spelling."""
    if always_retrieve_value is not None:
        if not isinstance(always_retrieve_value, bool):
            raise TypeError(f"always_retrieve_value must be a bool, not {always_retrieve_value!r}")
        return ALWAYS_RETRIEVE if always_retrieve_value else IF_ETAG_CHANGED
    if isinstance(retrieve_value, RetrieveValueFlag):
        return retrieve_value
    raise TypeError(
        "retrieve_value must be ALWAYS_RETRIEVE, NEVER_RETRIEVE or IF_ETAG_CHANGED, "
        f"not {retrieve_value!r}"
    )


def check_n_retries(n_retries: int | None) -> int | None:
    """Validate ``n_retries`` and turn it into a number of attempts (None: forever).

    TypeError for anything but an int or None, ValueError for a negative int.
    """
    if n_retries is None:
        return None
    if isinstance(n_retries, bool) or not isinstance(n_retries, int):
        raise TypeError(f"n_retries must be an int or None, not {n_retries!r}")
    if n_retries < 0:
        raise ValueError(f"n_retries must be >= 0 (or None: retry forever), not {n_retries}")
    return n_retries + 1


def check_max_n(max_n: int | None) -> int | None:
    """Validate ``max_n`` of the ordering methods: None (all), or an int (<= 0: none)."""
    if max_n is not None and (isinstance(max_n, bool) or not isinstance(max_n, int)):
        raise TypeError(f"max_n must be an int or None, not {max_n!r}")
    return max_n


def _same_value(stored: object, given: object) -> bool:
    """``stored == given`` as a bool; a comparison that cannot be one (arrays) is a mismatch."""
    if stored is given:
        return True
    try:
        return bool(stored == given)
    except Exception:
        return False


def _on_done(rep: Reporter | None, keys: list[Any]) -> OnDone | None:
    """An ``on_done`` callback advancing ``rep`` by the key of each finished item (None: silent)."""
    if rep is None or rep.silent:
        return None
    return lambda i, outcome: rep.advance(keys[i], ok=not isinstance(outcome, BaseException))


def _failures(keys: list[Any], outcomes: list[Any]) -> list[tuple[object, Exception]]:
    """The (key, exception) of every failed item."""
    return [(k, o) for k, o in zip(keys, outcomes, strict=True) if isinstance(o, Exception)]


class _Values(ValuesView[ValueType]):
    """Values, skipping keys deleted by someone else during iteration."""

    _mapping: PersiDict[ValueType]

    def __iter__(self) -> Iterator[ValueType]:
        m = self._mapping
        for k in m._iter_keys():
            try:
                yield m._get(k)
            except KeyError:
                continue


class _Items(ItemsView[NonEmptySafeStrTuple, ValueType]):  # type: ignore[type-var,unused-ignore]
    """(key, value) pairs, skipping keys deleted by someone else during iteration."""

    _mapping: PersiDict[ValueType]

    def __iter__(self) -> Iterator[tuple[NonEmptySafeStrTuple, ValueType]]:
        m = self._mapping
        for k in m._iter_keys():
            try:
                yield k, m._get(k)
            except KeyError:
                continue


class PersiDict(MutableMapping[NonEmptyPersiDictKey, ValueType], ABC, Generic[ValueType]):
    """A persistent, dict-like mapping from safe-string keys to values.

    Keys may be given as a str, a sequence of str or a SafeStrTuple; keys
    returned are NonEmptySafeStrTuple. Every key has an ETag (an opaque
    version) and a timestamp. Conditional operations (``*_if``) compare an
    expected ETag with the actual one and return a ConditionalOperationResult.
    """

    # ------------------------------------------------------------ properties

    @property
    @abstractmethod
    def append_only(self) -> bool:
        """Whether items, once written, can be neither changed nor deleted."""

    @property
    @abstractmethod
    def base_class_for_values(self) -> type | None:
        """If set, every value must be an instance of this class."""

    @property
    @abstractmethod
    def serialization_format(self) -> str | Codec:
        """The format values are stored in: "pkl", "json", a text format, or a Codec."""

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, sorted by name: ``type(d)(**d.get_params())`` opens the same store."""

    # ------------------------------------------------------------ primitives

    @abstractmethod
    def _get_item_if(
        self,
        key: NonEmptySafeStrTuple,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]: ...

    @abstractmethod
    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]: ...

    @abstractmethod
    def _setdefault_if(
        self,
        key: NonEmptySafeStrTuple,
        default_value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]: ...

    @abstractmethod
    def _discard_if(
        self, key: NonEmptySafeStrTuple, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]: ...

    @abstractmethod
    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]: ...

    @abstractmethod
    def _iter_keys(self) -> Iterator[NonEmptySafeStrTuple]: ...

    @abstractmethod
    def _iter_keys_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, float]]: ...

    @abstractmethod
    def _timestamp(self, key: NonEmptySafeStrTuple) -> float: ...

    @abstractmethod
    def _subdict(self, prefix: SafeStrTuple) -> PersiDict[ValueType]: ...

    # Hot paths: derived here, overridden by stores with one backend call each.

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        r = self._get_item_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
        if r.new_value is ITEM_NOT_AVAILABLE:
            raise KeyError(key)
        return r.new_value  # type: ignore[return-value]

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        self._set_item_if(key, value, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)

    def _discard(self, key: NonEmptySafeStrTuple) -> bool:
        return self._discard_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG).value_was_mutated

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        r = self._get_item_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)
        return r.actual_etag is not ITEM_NOT_AVAILABLE

    # ------------------------------------------------------------ checks

    def _check_value(self, key: NonEmptySafeStrTuple, value: object) -> None:
        """Reject values no store may hold; jokers pass (they are commands)."""
        if type(value) not in PLAIN_VALUE_TYPES:
            if isinstance(value, (PersiDict, PersiDictView)):
                what = "a PersiDict" if isinstance(value, PersiDict) else f"a view of a PersiDict ({value!r})"
                raise TypeError(f"Cannot store {what} as the value of key {key!r}")
            if isinstance(value, Joker):
                return
            if isinstance(value, _SENTINELS):
                # A stored ITEM_NOT_AVAILABLE would make results lie about the key.
                raise TypeError(f"Cannot store the flag {value!r} as the value of key {key!r}")
        base = self.base_class_for_values
        if base is not None and not isinstance(value, base):
            raise TypeError(
                f"Value for key {key!r} must be an instance of {base.__name__}, "
                f"not {type(value).__name__}"
            )

    def _missing(self, key: NonEmptySafeStrTuple) -> KeyError:
        """The KeyError for a key found absent (stores may chain what revealed it)."""
        return KeyError(key)

    def _forbid_delete(self, key: NonEmptySafeStrTuple | str) -> None:
        """Raise MutationPolicyError on an append-only dict.

        ``key`` is the key to delete (always a tuple), or a str naming a bulk
        operation: ``"clear"`` or ``"popitem"``.
        """
        if self.append_only:
            raise self._delete_refused(key)

    def _delete_refused(self, key: NonEmptySafeStrTuple | str) -> MutationPolicyError:
        """The error refusing to delete ``key`` (or to run a bulk operation) from an append-only dict."""
        name = type(self).__name__
        if isinstance(key, tuple):
            msg = f"Cannot delete key {key!r}: {name} is append-only"
        elif key == "popitem":
            msg = f"Cannot pop an item (popitem) from {name}: it is append-only"
        else:
            msg = f"Cannot {key} {name}: it is append-only"
        return MutationPolicyError("append-only", msg)

    # ------------------------------------------------------------ dict API

    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        """The value stored under ``key``; KeyError when absent."""
        return self._get(to_key(key))

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        """Store ``value``; KEEP_CURRENT does nothing, DELETE_CURRENT deletes."""
        k = to_key(key)
        if value is KEEP_CURRENT:
            return
        if value is DELETE_CURRENT:
            self._forbid_delete(k)
            self._discard(k)
            return
        self._check_value(k, value)
        self._set(k, value)

    def __delitem__(self, key: NonEmptyPersiDictKey) -> None:
        """Delete ``key``; KeyError when absent."""
        k = to_key(key)
        self._forbid_delete(k)
        if not self._discard(k):
            raise self._missing(k)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is stored (a malformed key raises, as it can never be stored)."""
        return self._contains(to_key(key))

    def __iter__(self) -> Iterator[NonEmptySafeStrTuple]:
        """Keys, in no particular order, streamed."""
        return self._iter_keys()

    def __len__(self) -> int:
        """The number of stored keys."""
        return sum(1 for _ in self._iter_keys())

    def keys(self) -> KeysView[NonEmptySafeStrTuple]:
        """A view of the keys (always NonEmptySafeStrTuple)."""
        return KeysView(self)

    def values(self) -> ValuesView[ValueType]:
        """A view of the values; keys deleted meanwhile are skipped."""
        return _Values(self)

    def items(self) -> ItemsView[NonEmptySafeStrTuple, ValueType]:
        """A view of the (key, value) pairs; keys deleted meanwhile are skipped."""
        return _Items(self)

    @overload
    def get(self, key: NonEmptyPersiDictKey, /) -> ValueType | None: ...
    @overload
    def get(self, key: NonEmptyPersiDictKey, /, default: ValueType | _T) -> ValueType | _T: ...
    def get(self, key: NonEmptyPersiDictKey, /, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` when absent."""
        try:
            return self._get(to_key(key))
        except KeyError:
            return default

    def setdefault(self, key: NonEmptyPersiDictKey, default: ValueType | None = None) -> ValueType:
        """Insert ``default`` if ``key`` is absent (atomically); return the stored value.

        As with ``dict.setdefault``, a default that is not inserted (the key
        exists) is not checked: ``setdefault(key)`` with the default None works
        on a dict with ``base_class_for_values`` when ``key`` is stored.
        """
        k = to_key(key)
        if isinstance(default, Joker):
            raise TypeError(f"setdefault() does not accept {default!r} as the default for key {k!r}")
        try:
            self._check_value(k, default)
        except TypeError as unusable:
            # Not a value this dict may hold: fine as long as it is not needed.
            try:
                return self._get(k)
            except KeyError:
                raise unusable from None
        r = self._setdefault_if(k, default, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
        if r.new_value is ITEM_NOT_AVAILABLE:  # a null store keeps nothing
            return default  # type: ignore[return-value]
        return r.new_value  # type: ignore[return-value]

    @overload
    def pop(self, key: NonEmptyPersiDictKey, /) -> ValueType: ...
    @overload
    def pop(self, key: NonEmptyPersiDictKey, /, default: ValueType | _T) -> ValueType | _T: ...
    def pop(self, key: NonEmptyPersiDictKey, /, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``; KeyError without one)."""
        k = to_key(key)
        self._forbid_delete(k)
        while True:
            r = self._get_item_if(k, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
            if r.actual_etag is ITEM_NOT_AVAILABLE:
                if default is _MISSING:
                    raise KeyError(k)
                return default
            if self._discard_if(k, r.actual_etag, ETAG_IS_THE_SAME).value_was_mutated:
                return r.new_value

    def popitem(self) -> tuple[NonEmptySafeStrTuple, ValueType]:
        """Remove and return some (key, value) pair; KeyError when empty."""
        self._forbid_delete("popitem")
        for k in self._iter_keys():
            try:
                return k, self.pop(k)
            except KeyError:
                continue  # deleted by someone else meanwhile
        raise KeyError("popitem(): the dictionary is empty")

    def clear(self, *, progress: ProgressOption = None) -> None:
        """Delete every item (``progress``: see persidict.progress; it lists the keys first)."""
        self._forbid_delete("clear")
        if progress is None or progress is False:
            self._clear()
        else:
            self.discard_many(list(self._iter_keys()), progress=progress)

    def _clear(self) -> None:
        """Delete every item, the fastest way the store knows (the policy is already checked)."""
        for k in list(self._iter_keys()):
            self._discard(k)

    def update(self, other: Any = (), /, **kwargs: ValueType) -> None:
        """Store every (key, value) of a mapping, an iterable of pairs, and ``kwargs``.

        ``set_many`` with the store's default concurrency: every key is
        normalised, and every value checked and serialised, before the first
        write, so an invalid item leaves the dict unchanged. A key given twice
        is written once, with its last value (LmdbDict makes the whole update
        one transaction).
        """
        self._write_items(self._checked_items(other, kwargs), self._default_workers(), None)

    def set_many(
        self,
        items: Mapping[Any, ValueType | Joker] | Iterable[tuple[Any, ValueType | Joker]],
        *,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> None:
        """Write many items (a mapping or (key, value) pairs), concurrently where the store gains.

        Every key is normalised, and every value checked and serialised,
        before the first write: a bad item (a malformed key, a value of the
        wrong class or that cannot be serialised, DELETE_CURRENT on an
        append-only dict) raises and leaves the dict unchanged. The serialised
        values are held in memory until written (``persidict.copy`` streams a
        large store). A key given twice is written once, with its last value;
        jokers act as in ``d[k] = v``. Then each key is written all-or-nothing;
        when some fail (a storage error, an existing key of an append-only
        dict), the others are still written and the failure is raised: the
        exception itself for one key, else a BatchError naming every failed key.
        """
        workers = self._workers(max_workers)
        checked = self._checked_items(items, {})
        with Reporter(progress, total=len({k for k, _ in checked}), desc="set_many") as rep:
            self._write_items(checked, workers, rep)

    def _write_items(
        self, items: list[tuple[NonEmptySafeStrTuple, Any]], workers: int, rep: Reporter | None
    ) -> None:
        """Write validated (key, value) pairs (each key's last), all serialised before the first write."""
        last = dict(items)
        writes = [(k, v, self._serialised(k, v)) for k, v in last.items() if not isinstance(v, Joker)]
        deletes = [k for k, v in last.items() if v is DELETE_CURRENT]
        failures: list[tuple[object, Exception]] = []
        if writes:
            outcomes = self._set_serialised_many(writes, workers, _on_done(rep, [k for k, _, _ in writes]))
            failures += _failures([k for k, _, _ in writes], outcomes)
        if deletes:
            failures += _failures(deletes, self._discard_many(deletes, workers, _on_done(rep, deletes)))
        if rep is not None:
            for k in [k for k, v in last.items() if v is KEEP_CURRENT]:
                rep.advance(k)
        if failures:
            raise batch_error("set_many", failures)

    def _set_serialised_many(
        self, items: list[tuple[NonEmptySafeStrTuple, Any, Any]], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        """Store each (key, value, its ``_serialised`` payload); the outcome of each (exceptions kept)."""
        return map_outcomes(lambda item: self._set_serialised(*item), items, workers, on_done)

    @overload
    def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: Literal[False] = False,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], ValueType]: ...
    @overload
    def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: Literal[True],
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], tuple[ValueType, ETagValue]]: ...
    @overload
    def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: bool,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], Any]: ...
    def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: bool = False,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], Any]:
        """Read many keys, concurrently where the store gains: ``{key: value}`` of those that exist.

        The keys of the result are NonEmptySafeStrTuples (typed as tuples of
        str, so ``got[("a",)]`` type-checks); a str does not find its entry,
        as ``{("a",): 1}["a"]`` does not.

        With ``with_etags=True`` each entry is ``(value, etag)``, read
        together. Every key is checked before the first read. Missing keys
        are left out; when reading some keys fails (a storage error, a
        corrupt value), the exception itself is raised for one key, else a
        BatchError naming every failed key.
        """
        return self._found_many(keys, with_etags, max_workers, progress)

    def _found_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        with_etags: bool,
        max_workers: int | None,
        progress: ProgressOption,
    ) -> dict[tuple[str, ...], Any]:
        """``get_many``'s work (stores with a faster whole-batch read override this)."""
        workers = self._workers(max_workers)
        ks = list(dict.fromkeys(to_key(k) for k in keys))
        with Reporter(progress, total=len(ks), desc="get_many") as rep:
            outcomes = self._get_many(ks, workers, _on_done(rep, ks))
        found: dict[tuple[str, ...], Any] = {}
        failures: list[tuple[object, Exception]] = []
        for k, outcome in zip(ks, outcomes, strict=True):
            if isinstance(outcome, Exception):
                failures.append((k, outcome))
            elif outcome is not ABSENT:
                found[k] = outcome if with_etags else outcome[0]
        if failures:
            raise batch_error("get_many", failures)
        return found

    def _get_many(
        self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        """Each key's (value, ETag), ABSENT, or the exception reading it raised."""

        def one(k: NonEmptySafeStrTuple) -> Any:
            r = self._get_item_if(k, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
            return ABSENT if r.actual_etag is ITEM_NOT_AVAILABLE else (r.new_value, r.actual_etag)

        return map_outcomes(one, keys, workers, on_done)

    def discard_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> int:
        """Delete many keys if present, concurrently where the store gains; return how many existed.

        Every key is checked first (and an append-only dict refuses at once).
        Each key is deleted all-or-nothing; when some fail, the others are
        still deleted and the failure is raised: the exception itself for one
        key, else a BatchError naming every failed key.
        """
        workers = self._workers(max_workers)
        ks = list(dict.fromkeys(to_key(k) for k in keys))
        if ks:
            self._forbid_delete(ks[0])
        with Reporter(progress, total=len(ks), desc="discard_many") as rep:
            outcomes = self._discard_many(ks, workers, _on_done(rep, ks))
        failures = _failures(ks, outcomes)
        if failures:
            raise batch_error("discard_many", failures)
        return sum(1 for o in outcomes if o is True)

    def _discard_many(
        self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        """Whether each key existed (and was deleted), or the exception deleting it raised."""
        return map_outcomes(self._discard, keys, workers, on_done)

    def _default_workers(self) -> int:
        """How many items a batch operation runs at once unless told (stores say; here one)."""
        return DEFAULT_MAX_WORKERS

    def _workers(self, max_workers: int | None) -> int:
        n = check_max_workers(max_workers)
        return self._default_workers() if n is None else n

    def _serialised(self, key: NonEmptySafeStrTuple, value: Any) -> Any:
        """``value`` as this dict will store it, raising what a write of it would raise.

        Here the value itself; stores return their encoded bytes, wrappers ask
        the dict they wrap.
        """
        return value

    def _set_serialised(self, key: NonEmptySafeStrTuple, value: Any, payload: Any) -> None:
        """Store ``value`` whose ``_serialised`` form is ``payload``."""
        self._set(key, value)

    def _checked_items(self, other: Any, kwargs: Mapping[str, Any]) -> list[tuple[NonEmptySafeStrTuple, Any]]:
        """The (normalised key, value) pairs of ``update``'s arguments, all validated."""
        pairs: Iterable[Any]
        if isinstance(other, Mapping):
            pairs = [(k, other[k]) for k in other]
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 - duck-typed mappings
        else:
            pairs = other
        text_only = _is_text_format(self.serialization_format)
        out: list[tuple[NonEmptySafeStrTuple, Any]] = []
        for key, value in itertools.chain(pairs, kwargs.items()):
            k = to_key(key)
            if value is DELETE_CURRENT:
                self._forbid_delete(k)
            elif value is not KEEP_CURRENT:
                self._check_value(k, value)
                if text_only and not isinstance(value, str):
                    raise TypeError(
                        f"A dict with serialization_format={self.serialization_format!r} stores str "
                        f"values only, not {type(value).__name__} (key {k!r})"
                    )
            out.append((k, value))
        return out

    def __ior__(self, other: Any) -> Self:
        """``d |= other`` updates ``d`` in place."""
        self.update(other)
        return self

    def __eq__(self, other: object) -> bool:
        """Same class and parameters (same store), or the same items as ``other``, any Mapping.

        Each key of ``other`` is normalised like any key (``{"a": 1}`` and
        ``{("a",): 1}`` both work); an invalid or missing key makes the dicts
        unequal. A non-Mapping gives NotImplemented.
        """
        if self is other:
            return True
        if type(other) is type(self) and other.get_params() == self.get_params():
            return True
        if not isinstance(other, Mapping):
            return NotImplemented
        if len(self) != len(other):
            return False
        for key, value in other.items():
            try:
                if not _same_value(self._get(to_key(key)), value):
                    return False
            except (KeyError, TypeError, ValueError):
                return False  # a missing key, or one no PersiDict can hold
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def __str__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"

    def __copy__(self) -> PersiDict[ValueType]:
        return type(self)(**self.get_params())

    def __bool__(self) -> bool:
        for _ in self._iter_keys():
            return True
        return False

    # ------------------------------------------------------------ extras

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes where the store can (LmdbDict: one LMDB transaction).

        On other stores this does nothing: each operation inside stays atomic
        on its own, but the group is not atomic.
        """
        yield

    def discard(self, key: NonEmptyPersiDictKey) -> bool:
        """Delete ``key`` if present; return whether it was."""
        k = to_key(key)
        self._forbid_delete(k)
        return self._discard(k)

    def delete_if_exists(self, key: NonEmptyPersiDictKey) -> bool:
        """Same as ``discard``."""
        return self.discard(key)

    def timestamp(self, key: NonEmptyPersiDictKey) -> float:
        """POSIX time of the key's last modification; KeyError when absent."""
        return self._timestamp(to_key(key))

    def etag(self, key: NonEmptyPersiDictKey) -> ETagValue:
        """The key's current ETag; KeyError when absent."""
        k = to_key(key)
        r = self._get_item_if(k, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)
        if r.actual_etag is ITEM_NOT_AVAILABLE:
            raise self._missing(k)
        return r.actual_etag

    def get_with_etag(self, key: NonEmptyPersiDictKey) -> ConditionalOperationResult[ValueType]:
        """The value and its ETag, read together, as an unconditional read.

        ``condition_was_satisfied`` is True, ``new_value`` is the value and
        ``actual_etag == resulting_etag`` its ETag. A missing key is no error:
        the value and both ETags are ITEM_NOT_AVAILABLE.
        """
        r = self._get_item_if(to_key(key), ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
        return ConditionalOperationResult(True, r.actual_etag, r.actual_etag, r.new_value)

    def get_item_if(
        self,
        key: NonEmptyPersiDictKey,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        *,
        retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED,
        always_retrieve_value: bool | None = None,
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional read: report whether the condition holds, and the value."""
        return self._get_item_if(
            to_key(key),
            check_expected_etag(expected_etag),
            check_condition(condition),
            check_retrieve(retrieve_value, always_retrieve_value),
        )

    def set_item_if(
        self,
        key: NonEmptyPersiDictKey,
        value: ValueType | Joker,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        *,
        retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED,
        always_retrieve_value: bool | None = None,
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional write: store (or KEEP_CURRENT / DELETE_CURRENT) only if the condition holds."""
        k = to_key(key)
        self._check_value(k, value)
        e = check_expected_etag(expected_etag)
        c = check_condition(condition)
        r = check_retrieve(retrieve_value, always_retrieve_value)
        if value is DELETE_CURRENT:
            self._forbid_delete(k)
        return self._set_item_if(k, value, e, c, r)

    def setdefault_if(
        self,
        key: NonEmptyPersiDictKey,
        default_value: ValueType,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        *,
        retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED,
        always_retrieve_value: bool | None = None,
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional insert-if-absent of ``default_value``."""
        k = to_key(key)
        if isinstance(default_value, Joker):
            raise TypeError(f"setdefault_if() does not accept {default_value!r} as the default for key {k!r}")
        self._check_value(k, default_value)
        return self._setdefault_if(
            k,
            default_value,
            check_expected_etag(expected_etag),
            check_condition(condition),
            check_retrieve(retrieve_value, always_retrieve_value),
        )

    def discard_if(
        self, key: NonEmptyPersiDictKey, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional delete.

        On an append-only dict the condition is still evaluated: an absent key,
        or a present one whose condition does not hold, gives its result with
        no error; only a delete that would take place raises
        MutationPolicyError.
        """
        k = to_key(key)
        e = check_expected_etag(expected_etag)
        c = check_condition(condition)
        if self.append_only:
            return self._refuse_discard_if(k, e, c)
        return self._discard_if(k, e, c)

    def _refuse_discard_if(
        self, key: NonEmptySafeStrTuple, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        """``discard_if`` on an append-only dict: the result when nothing would be deleted, else refuse."""
        r = self._get_item_if(key, expected_etag, condition, NEVER_RETRIEVE)
        if r.actual_etag is ITEM_NOT_AVAILABLE or not r.condition_was_satisfied:
            return r
        raise self._delete_refused(key)

    def discard_item_if(
        self, key: NonEmptyPersiDictKey, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        """Same as ``discard_if``."""
        return self.discard_if(key, expected_etag, condition)

    def transform_item(
        self,
        key: NonEmptyPersiDictKey,
        transformer: TransformingFunction[ValueType],
        *,
        n_retries: int | None = 6,
    ) -> OperationResult[ValueType]:
        """Atomically replace the value with ``transformer(value)``, retrying on conflict.

        The transformer gets the current value (ITEM_NOT_AVAILABLE when absent)
        and returns the new value, KEEP_CURRENT or DELETE_CURRENT. It may run
        more than once. ``n_retries=None`` retries forever; when the retries are
        used up, ConcurrencyConflictError is raised.
        """
        k = to_key(key)
        if not callable(transformer):
            raise TypeError(f"transformer must be callable, not {transformer!r}")
        attempts = check_n_retries(n_retries)

        def checked(current: Any) -> Any:
            new = transformer(current)
            if new is DELETE_CURRENT:
                self._forbid_delete(k)
            self._check_value(k, new)
            return new

        return self._transform_item(k, checked, attempts)

    # ------------------------------------------------------------ iteration

    def keys_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, float]]:
        """(key, timestamp) pairs, streamed."""
        return self._iter_keys_and_timestamps()

    def values_and_timestamps(self) -> Iterator[tuple[ValueType, float]]:
        """(value, timestamp) pairs; keys deleted meanwhile are skipped."""
        for _, v, t in self.items_and_timestamps():
            yield v, t

    def items_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, ValueType, float]]:
        """(key, value, timestamp) triples; keys deleted meanwhile are skipped."""
        for k, t in self._iter_keys_and_timestamps():
            try:
                yield k, self._get(k), t
            except KeyError:
                continue

    def random_key(self) -> NonEmptySafeStrTuple | None:
        """A uniformly random key (reservoir sampling: constant memory); None when empty."""
        chosen: NonEmptySafeStrTuple | None = None
        rng = random.random
        for i, k in enumerate(self._iter_keys(), 1):
            if rng() * i < 1.0:
                chosen = k
        return chosen

    def _by_time(self, newest: bool, max_n: int | None) -> list[NonEmptySafeStrTuple]:
        max_n = check_max_n(max_n)
        if max_n is not None and max_n <= 0:
            return []
        pairs = self._iter_keys_and_timestamps()
        pick = heapq.nlargest if newest else heapq.nsmallest
        if max_n is None:
            ordered = sorted(pairs, key=lambda p: (p[1], p[0]), reverse=newest)
        else:
            ordered = pick(max_n, pairs, key=lambda p: (p[1], p[0]))
        return [k for k, _ in ordered]

    def oldest_keys(self, max_n: int | None = None) -> list[NonEmptySafeStrTuple]:
        """Keys from the least to the most recently modified (at most ``max_n``)."""
        return self._by_time(False, max_n)

    def newest_keys(self, max_n: int | None = None) -> list[NonEmptySafeStrTuple]:
        """Keys from the most to the least recently modified (at most ``max_n``)."""
        return self._by_time(True, max_n)

    def _values_of(self, keys: Iterable[NonEmptySafeStrTuple]) -> list[ValueType]:
        out: list[ValueType] = []
        for k in keys:
            try:
                out.append(self._get(k))
            except KeyError:
                continue
        return out

    def oldest_values(self, max_n: int | None = None) -> list[ValueType]:
        """Values of ``oldest_keys(max_n)``."""
        return self._values_of(self.oldest_keys(max_n))

    def newest_values(self, max_n: int | None = None) -> list[ValueType]:
        """Values of ``newest_keys(max_n)``."""
        return self._values_of(self.newest_keys(max_n))

    # ------------------------------------------------------------ hierarchy

    def get_subdict(self, prefix_key: PersiDictKey) -> PersiDict[ValueType]:
        """A view of the keys under ``prefix_key``, with the prefix removed; shares storage."""
        return self._subdict(to_prefix(prefix_key))

    def subdicts(self) -> dict[str, PersiDict[ValueType]]:
        """Each first-level prefix (of keys with two or more parts) and its subdict."""
        firsts: set[str] = set()
        for k in self._iter_keys():
            if len(k) > 1:
                firsts.add(k[0])
        return {f: self.get_subdict(f) for f in sorted(firsts)}
