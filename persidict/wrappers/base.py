"""WrapperDict: a PersiDict that forwards every primitive to another PersiDict.

Each wrapper (write-once, cached, expiring) subclasses it and overrides only
what differs. Keys reach the primitives already normalised and values
already checked by the public API, so forwarding to the wrapped dict's
protected primitives skips a second round of validation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..codecs import Codec
from ..flags import ETagConditionFlag, ETagIfExists, RetrieveValueFlag, TransformingFunction, ValueType
from ..keys import NonEmptySafeStrTuple
from ..persi_dict import PersiDict
from ..results import ConditionalOperationResult, OperationResult


def check_persidict(name: str, value: object) -> PersiDict[Any]:
    """Raise TypeError unless ``value`` is a PersiDict; return it."""
    if not isinstance(value, PersiDict):
        raise TypeError(f"{name} must be a PersiDict, not {type(value).__name__}")
    return value


def same_store(a: PersiDict[Any], b: PersiDict[Any]) -> bool:
    """Whether two dicts are views of the same storage (same class and parameters)."""
    return a is b or (type(a) is type(b) and a.get_params() == b.get_params())


class WrapperDict(PersiDict[ValueType]):
    """A PersiDict whose items live in ``self._wrapped``; subclasses change what differs."""

    _wrapped: PersiDict[ValueType]

    # ------------------------------------------------------------ properties

    @property
    def append_only(self) -> bool:
        """Whether the wrapped dict is append-only."""
        return self._wrapped.append_only

    @property
    def base_class_for_values(self) -> type | None:
        """The wrapped dict's value class, if any."""
        return self._wrapped.base_class_for_values

    @property
    def serialization_format(self) -> str | Codec:
        """The wrapped dict's storage format."""
        return self._wrapped.serialization_format

    @property
    def capabilities(self) -> Any:
        """What the wrapped dict's backend guarantees (None if it does not say)."""
        return getattr(self._wrapped, "capabilities", None)

    # ------------------------------------------------------------ primitives

    def _get_item_if(
        self,
        key: NonEmptySafeStrTuple,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        return self._wrapped._get_item_if(key, expected_etag, condition, retrieve)

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        return self._wrapped._set_item_if(key, value, expected_etag, condition, retrieve)

    def _setdefault_if(
        self,
        key: NonEmptySafeStrTuple,
        default_value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        return self._wrapped._setdefault_if(key, default_value, expected_etag, condition, retrieve)

    def _discard_if(
        self, key: NonEmptySafeStrTuple, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        return self._wrapped._discard_if(key, expected_etag, condition)

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        return self._wrapped._transform_item(key, transformer, max_attempts)

    def _iter_keys(self) -> Iterator[NonEmptySafeStrTuple]:
        return self._wrapped._iter_keys()

    def _iter_keys_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, float]]:
        return self._wrapped._iter_keys_and_timestamps()

    def _timestamp(self, key: NonEmptySafeStrTuple) -> float:
        return self._wrapped._timestamp(key)

    # ------------------------------------------------------------ hot paths

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        return self._wrapped._get(key)

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        self._wrapped._set(key, value)

    def _discard(self, key: NonEmptySafeStrTuple) -> bool:
        return self._wrapped._discard(key)

    def _default_workers(self) -> int:
        return self._wrapped._default_workers()

    def _serialised(self, key: NonEmptySafeStrTuple, value: Any) -> Any:
        # Checked by the dict that stores it; written again by _set (_set_serialised's default).
        return self._wrapped._serialised(key, value)

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        return self._wrapped._contains(key)

    def __len__(self) -> int:
        """The number of items of the wrapped dict."""
        return len(self._wrapped)

    def _clear(self) -> None:
        """Delete every item of the wrapped dict."""
        self._wrapped.clear()
