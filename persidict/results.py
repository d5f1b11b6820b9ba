"""Structured results of conditional operations and transforms."""

from __future__ import annotations

from typing import Generic

import attrs

from .flags import ETagIfExists, ItemNotAvailableFlag, ValueNotRetrievedFlag, ValueType


@attrs.frozen
class ConditionalOperationResult(Generic[ValueType]):
    """What a conditional operation (``*_if``) found and did.

    Attributes:
        condition_was_satisfied: whether the ETag condition held.
        actual_etag: the key's ETag before the operation
            (ITEM_NOT_AVAILABLE when it was absent).
        resulting_etag: the key's ETag after the operation.
        new_value: the value at the key after the operation,
            ITEM_NOT_AVAILABLE when absent, or VALUE_NOT_RETRIEVED when it
            exists but was not fetched.
        value_was_mutated: whether the operation wrote or deleted the value.
    """

    condition_was_satisfied: bool
    actual_etag: ETagIfExists
    resulting_etag: ETagIfExists
    new_value: ValueType | ItemNotAvailableFlag | ValueNotRetrievedFlag
    value_was_mutated: bool = False


@attrs.frozen
class OperationResult(Generic[ValueType]):
    """What an unconditional read-modify-write (``transform_item``) did.

    Attributes:
        resulting_etag: the key's ETag after the operation.
        new_value: the value at the key after it (ITEM_NOT_AVAILABLE if absent).
        value_was_mutated: whether the operation wrote or deleted the value.
    """

    resulting_etag: ETagIfExists
    new_value: ValueType | ItemNotAvailableFlag
    value_was_mutated: bool = False
