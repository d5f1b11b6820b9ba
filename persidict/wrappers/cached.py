"""Read-through caches in front of a PersiDict: ETag-validated (mutable) and trusting (append-only).

``MutableDictCached`` validates every read with one conditional read of the
main dict, so a cached value is served only while the main dict still holds
that exact version: another process's write is seen on the next read. Its
``etag_cache`` binds each cached value to the main dict's ETag *and* to the
data cache's own ETag of the cached copy, so concurrent fillers (threads
sharing the caches) can never pair a value with the wrong version.

``AppendOnlyDictCached`` needs no validation: an item of an append-only dict
never changes once written.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import MutationPolicyError
from ..flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    ETAG_HAS_CHANGED,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
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
from ..keys import NonEmptyPersiDictKey, NonEmptySafeStrTuple, SafeStrTuple
from ..ops.decide import condition_holds, wants_value
from ..persi_dict import PersiDict
from ..results import ConditionalOperationResult, OperationResult
from .base import WrapperDict, check_persidict, same_store


def _is_value(v: object) -> bool:
    return not isinstance(v, ItemNotAvailableFlag | ValueNotRetrievedFlag)


def _pair(main_etag: str, cache_etag: str) -> str:
    """One etag_cache entry: the main ETag and the data cache's ETag, length-prefixed."""
    return f"{len(main_etag)}:{main_etag}{cache_etag}"


def _unpair(entry: object) -> tuple[str, str] | None:
    if not isinstance(entry, str):
        return None
    n, sep, rest = entry.partition(":")
    if not sep or not n.isdigit() or int(n) > len(rest):
        return None
    return rest[: int(n)], rest[int(n) :]


def _class_name(cls: type | None) -> str:
    return "None" if cls is None else cls.__qualname__


def _check_distinct(**dicts: PersiDict[Any]) -> None:
    names = list(dicts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if same_store(dicts[a], dicts[b]):
                raise ValueError(f"{a} and {b} must be different stores")


class MutableDictCached(WrapperDict[ValueType]):
    """A read-through cache over a mutable PersiDict, validated by ETag on every read.

    A read is one ``get_item_if(key, cached_etag, ETAG_HAS_CHANGED,
    retrieve_value=IF_ETAG_CHANGED)`` on ``main_dict``: when the version is
    unchanged the value comes from ``data_cache`` and is not transferred
    again; otherwise both caches are refreshed. Writes go to the main dict
    first, then the value and the resulting ETag are mirrored into the
    caches. Conditional operations run on the main dict (so they keep its
    atomicity) and update or invalidate the caches from their results.

    Both caches must be mutable and distinct; ``etag_cache`` entries are
    internal strings. Cached values are copies made by ``data_cache``; with a
    format that does not round-trip a value exactly (JSON turns tuples into
    lists) a value read from the cache right after a write may differ in
    type from a fresh read of the main dict.
    """

    def __init__(
        self,
        main_dict: PersiDict[ValueType],
        data_cache: PersiDict[ValueType],
        etag_cache: PersiDict[str],
    ) -> None:
        main = check_persidict("main_dict", main_dict)
        data = check_persidict("data_cache", data_cache)
        etags = check_persidict("etag_cache", etag_cache)
        if main.append_only:
            raise ValueError(
                "MutableDictCached needs a mutable main_dict; for an append-only one "
                "use AppendOnlyDictCached (it needs no validation)"
            )
        for name, cache in (("data_cache", data), ("etag_cache", etags)):
            if cache.append_only:
                raise ValueError(f"{name} must not be append-only: cached entries are replaced")
        _check_distinct(main_dict=main, data_cache=data, etag_cache=etags)
        self._wrapped = main
        self._data: PersiDict[ValueType] = data
        self._etags: PersiDict[str] = etags

    @property
    def main_dict(self) -> PersiDict[ValueType]:
        """The dict that holds the items (the source of truth)."""
        return self._wrapped

    @property
    def data_cache(self) -> PersiDict[ValueType]:
        """The cache of values."""
        return self._data

    @property
    def etag_cache(self) -> PersiDict[str]:
        """The cache binding each cached value to the main dict's ETag."""
        return self._etags

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted."""
        return {"data_cache": self._data, "etag_cache": self._etags, "main_dict": self._wrapped}

    def _subdict(self, prefix: SafeStrTuple) -> MutableDictCached[ValueType]:
        return MutableDictCached(
            main_dict=self._wrapped._subdict(prefix),
            data_cache=self._data._subdict(prefix),
            etag_cache=self._etags._subdict(prefix),
        )

    # ------------------------------------------------------------ the caches

    def _cached_etag(self, key: NonEmptySafeStrTuple) -> tuple[str, str] | None:
        try:
            return _unpair(self._etags._get(key))
        except KeyError:
            return None

    def _cached_value(self, key: NonEmptySafeStrTuple, cache_etag: str) -> tuple[bool, Any]:
        """The cached value, if the data cache still holds the copy the etag entry names."""
        r = self._data._get_item_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
        if r.actual_etag != cache_etag or not _is_value(r.new_value):
            return False, None
        return True, r.new_value

    def _fill(self, key: NonEmptySafeStrTuple, main_etag: ETagIfExists, value: Any) -> None:
        """Cache ``value`` as the main dict's version ``main_etag``."""
        if main_etag is ITEM_NOT_AVAILABLE:
            self._invalidate(key)
            return
        r = self._data._set_item_if(key, value, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)
        if r.resulting_etag is ITEM_NOT_AVAILABLE:  # a null cache keeps nothing
            self._etags._discard(key)
            return
        self._etags._set(key, _pair(str(main_etag), str(r.resulting_etag)))

    def _invalidate(self, key: NonEmptySafeStrTuple) -> None:
        self._etags._discard(key)
        self._data._discard(key)

    def _absorb(self, key: NonEmptySafeStrTuple, res: ConditionalOperationResult[ValueType]) -> None:
        """Bring the caches in line with what a main-dict result says about the key."""
        if res.resulting_etag is ITEM_NOT_AVAILABLE:
            self._invalidate(key)
        elif _is_value(res.new_value):
            self._fill(key, res.resulting_etag, res.new_value)
        elif res.value_was_mutated:
            self._invalidate(key)

    # ------------------------------------------------------------ reads

    def _get_item_if(
        self,
        key: NonEmptySafeStrTuple,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        """One main-dict read, validated against the cache; the condition is evaluated here."""
        cached = None if retrieve is NEVER_RETRIEVE else self._cached_etag(key)
        if cached is None:
            res = self._wrapped._get_item_if(key, expected_etag, condition, retrieve)
            self._absorb(key, res)
            return res
        probe = self._wrapped._get_item_if(
            key, ETagValue(cached[0]), ETAG_HAS_CHANGED, IF_ETAG_CHANGED
        )
        actual = probe.actual_etag
        satisfied = condition_holds(condition, expected_etag, actual)
        value: ValueType | ItemNotAvailableFlag | ValueNotRetrievedFlag
        if actual is ITEM_NOT_AVAILABLE:
            self._invalidate(key)
            value = ITEM_NOT_AVAILABLE
        elif _is_value(probe.new_value):
            self._fill(key, actual, probe.new_value)
            value = probe.new_value
        else:
            hit, value = self._cached_value(key, cached[1])
            if not hit:  # the cached copy is gone: read the value itself
                res = self._wrapped._get_item_if(key, expected_etag, condition, retrieve)
                self._absorb(key, res)
                return res
        if _is_value(value) and not wants_value(retrieve, expected_etag, actual):
            value = VALUE_NOT_RETRIEVED
        return ConditionalOperationResult(satisfied, actual, actual, value)

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        r = self._get_item_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
        if not _is_value(r.new_value):
            raise KeyError(key)
        return r.new_value  # type: ignore[return-value]

    # ------------------------------------------------------------ writes

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        res = self._wrapped._set_item_if(key, value, expected_etag, condition, retrieve)
        if res.value_was_mutated and not isinstance(value, Joker):
            self._fill(key, res.resulting_etag, value)
        else:
            self._absorb(key, res)
        return res

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        self._set_item_if(key, value, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)

    def _setdefault_if(
        self,
        key: NonEmptySafeStrTuple,
        default_value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        res = self._wrapped._setdefault_if(key, default_value, expected_etag, condition, retrieve)
        if res.value_was_mutated:
            self._fill(key, res.resulting_etag, default_value)
        else:
            self._absorb(key, res)
        return res

    def _discard_if(
        self, key: NonEmptySafeStrTuple, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        res = self._wrapped._discard_if(key, expected_etag, condition)
        self._absorb(key, res)
        return res

    def _discard(self, key: NonEmptySafeStrTuple) -> bool:
        self._invalidate(key)
        return self._wrapped._discard(key)

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        res = self._wrapped._transform_item(key, transformer, max_attempts)
        if res.new_value is ITEM_NOT_AVAILABLE:
            self._invalidate(key)
        else:
            self._fill(key, res.resulting_etag, res.new_value)
        return res

    def _clear(self) -> None:
        """Delete every item of the main dict and empty both caches."""
        self._wrapped.clear()
        self._etags.clear()
        self._data.clear()


class AppendOnlyDictCached(WrapperDict[ValueType]):
    """A read-through cache over an append-only PersiDict; cached values are trusted.

    An item of an append-only dict never changes once written, so a cached
    value needs no validation. A miss reads the main dict and fills the cache;
    writes go to the main dict, then to the cache. Both ``main_dict`` and
    ``data_cache`` must be append-only PersiDicts with the same
    ``base_class_for_values``: the wrapper trusts cached values, so a mutable
    cache could serve a value the main dict never held.
    """

    def __init__(self, main_dict: PersiDict[ValueType], data_cache: PersiDict[ValueType]) -> None:
        main = check_persidict("main_dict", main_dict)
        data = check_persidict("data_cache", data_cache)
        if not main.append_only:
            raise ValueError(
                f"AppendOnlyDictCached needs an append-only main_dict; {type(main).__name__} "
                "has append_only=False (use MutableDictCached for a mutable one)"
            )
        if not data.append_only:
            raise ValueError(
                f"AppendOnlyDictCached needs an append-only data_cache; {type(data).__name__} "
                "has append_only=False (cached values are trusted, so a mutable cache could "
                "serve values the main dict never held)"
            )
        if main.base_class_for_values is not data.base_class_for_values:
            raise ValueError(
                "main_dict and data_cache must have the same base_class_for_values, not "
                f"{_class_name(main.base_class_for_values)} and {_class_name(data.base_class_for_values)}"
            )
        _check_distinct(main_dict=main, data_cache=data)
        self._wrapped = main
        self._data: PersiDict[ValueType] = data

    @property
    def main_dict(self) -> PersiDict[ValueType]:
        """The dict that holds the items."""
        return self._wrapped

    @property
    def data_cache(self) -> PersiDict[ValueType]:
        """The cache of values."""
        return self._data

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted."""
        return {"data_cache": self._data, "main_dict": self._wrapped}

    def _subdict(self, prefix: SafeStrTuple) -> AppendOnlyDictCached[ValueType]:
        return AppendOnlyDictCached(
            main_dict=self._wrapped._subdict(prefix), data_cache=self._data._subdict(prefix)
        )

    def _fill(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        self._data._setdefault_if(key, value, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)

    def _absorb(self, key: NonEmptySafeStrTuple, res: ConditionalOperationResult[ValueType]) -> None:
        if _is_value(res.new_value):
            self._fill(key, res.new_value)

    def discard_if(
        self, key: NonEmptyPersiDictKey, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        """Always ``MutationPolicyError("append-only")``, whatever the key, ETag or condition.

        The published wrapper refuses every conditional delete, where other
        append-only dicts evaluate the condition and refuse only a delete.
        """
        raise MutationPolicyError(
            "append-only", f"Cannot delete key {key!r}: AppendOnlyDictCached refuses every discard_if"
        )

    # ------------------------------------------------------------ reads

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        try:
            return self._data._get(key)
        except KeyError:
            pass
        value = self._wrapped._get(key)
        self._fill(key, value)
        return value

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        return self._data._contains(key) or self._wrapped._contains(key)

    def _get_item_if(
        self,
        key: NonEmptySafeStrTuple,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        """The ETag comes from the main dict; the value from the cache when it has it."""
        if retrieve is not NEVER_RETRIEVE:
            hit = self._data._get_item_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE)
            if _is_value(hit.new_value):
                res = self._wrapped._get_item_if(key, expected_etag, condition, NEVER_RETRIEVE)
                if res.actual_etag is not ITEM_NOT_AVAILABLE and wants_value(
                    retrieve, expected_etag, res.actual_etag
                ):
                    res = attrs.evolve(res, new_value=hit.new_value)
                return res
        res = self._wrapped._get_item_if(key, expected_etag, condition, retrieve)
        self._absorb(key, res)
        return res

    # ------------------------------------------------------------ writes

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        res = self._wrapped._set_item_if(key, value, expected_etag, condition, retrieve)
        self._absorb(key, res)
        return res

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        self._wrapped._set(key, value)
        self._fill(key, value)

    def _setdefault_if(
        self,
        key: NonEmptySafeStrTuple,
        default_value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        res = self._wrapped._setdefault_if(key, default_value, expected_etag, condition, retrieve)
        self._absorb(key, res)
        return res

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        res = self._wrapped._transform_item(key, transformer, max_attempts)
        if res.new_value is not ITEM_NOT_AVAILABLE:
            self._fill(key, res.new_value)
        return res
