"""One frozen record per operation. Building one does no I/O."""

from __future__ import annotations

from typing import Any

import attrs

from ..backends.base import Location
from ..codecs import ValueCoder
from ..flags import ETagConditionFlag, ETagIfExists, RetrieveValueFlag, TransformingFunction
from ..keys import NonEmptySafeStrTuple


@attrs.frozen
class Target:
    """Where an operation acts: the user key (for messages), its location, its coder."""

    key: NonEmptySafeStrTuple
    loc: Location
    coder: ValueCoder


@attrs.frozen
class GetItem:
    """``d[key]``: the value, or KeyError."""

    target: Target


@attrs.frozen
class SetItem:
    """``d[key] = value`` with an already encoded value (create-only when append-only)."""

    target: Target
    data: bytes
    append_only: bool = False


@attrs.frozen
class StatItem:
    """The key's metadata (for ``in``, ``timestamp``), or None when absent."""

    target: Target


@attrs.frozen
class DiscardItem:
    """Delete ``key`` if present."""

    target: Target


@attrs.frozen
class GetItemIf:
    """Conditional read."""

    target: Target
    expected_etag: ETagIfExists
    condition: ETagConditionFlag
    retrieve: RetrieveValueFlag


@attrs.frozen
class SetItemIf:
    """Conditional write; ``value`` may be KEEP_CURRENT or DELETE_CURRENT.

    ``data`` is the encoded value (None for jokers).
    """

    target: Target
    value: Any
    data: bytes | None
    expected_etag: ETagIfExists
    condition: ETagConditionFlag
    retrieve: RetrieveValueFlag
    append_only: bool = False


@attrs.frozen
class SetDefaultIf:
    """Conditional insert-if-absent of an encoded default value."""

    target: Target
    default_value: Any
    data: bytes
    expected_etag: ETagIfExists
    condition: ETagConditionFlag
    retrieve: RetrieveValueFlag


@attrs.frozen
class DiscardIf:
    """Conditional delete."""

    target: Target
    expected_etag: ETagIfExists
    condition: ETagConditionFlag


@attrs.frozen
class TransformItem:
    """Read-modify-write retried on conflict; ``max_attempts`` None: forever."""

    target: Target
    transformer: TransformingFunction
    max_attempts: int | None
    append_only: bool = False


@attrs.frozen
class GetMany:
    """Read many keys: each value, or absent, or the error of its key."""

    targets: tuple[Target, ...]


@attrs.frozen
class SetMany:
    """Write many encoded values (create-only when append-only); each key all-or-nothing."""

    items: tuple[tuple[Target, bytes], ...]
    append_only: bool = False


@attrs.frozen
class DiscardMany:
    """Delete many keys if present."""

    targets: tuple[Target, ...]
