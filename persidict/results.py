"""Structured results of conditional operations and transforms."""

from __future__ import annotations

from typing import Generic

import attrs

from .flags import ETagIfExists, ItemNotAvailableFlag, ValueNotRetrievedFlag, ValueType


@attrs.frozen
class ConditionalOperationResult(Generic[ValueType]):
    """What a conditional operation (``*_if``) or ``get_with_etag`` found and did.

    Built from four fields; ``value_was_mutated`` is derived from the ETags.

    Attributes:
        condition_was_satisfied: whether the ETag condition held.
        actual_etag: the key's ETag before the operation
            (ITEM_NOT_AVAILABLE when it was absent).
        resulting_etag: the key's ETag after the operation.
        new_value: the value at the key after the operation,
            ITEM_NOT_AVAILABLE when absent, or VALUE_NOT_RETRIEVED when it
            exists but was not fetched.
    """

    condition_was_satisfied: bool
    actual_etag: ETagIfExists
    resulting_etag: ETagIfExists
    new_value: ValueType | ItemNotAvailableFlag | ValueNotRetrievedFlag

    @property
    def value_was_mutated(self) -> bool:
        """Whether the operation changed the key: ``resulting_etag != actual_etag``."""
        return self.resulting_etag != self.actual_etag


@attrs.frozen
class OperationResult(Generic[ValueType]):
    """What an unconditional read-modify-write (``transform_item``) left behind.

    Attributes:
        resulting_etag: the key's ETag after the operation.
        new_value: the value at the key after it (ITEM_NOT_AVAILABLE if absent).
    """

    resulting_etag: ETagIfExists
    new_value: ValueType | ItemNotAvailableFlag
