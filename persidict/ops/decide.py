"""Pure decisions: ETag conditions, retrieve modes, and what each command does.

Nothing here does I/O or reads a clock. ``decide_*`` functions take a
command and the ETag observed at its location and return a
:class:`Decision`: whether the condition held, which action to take (with a
precondition pinned to the observation), and where the result's value will
come from.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import attrs

from ..backends.base import IF_ABSENT, IfMatch, Precondition
from ..errors import ConcurrencyConflictError, MutationPolicyError
from ..flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ETagConditionFlag,
    ETagIfExists,
    RetrieveValueFlag,
)
from .commands import DiscardIf, GetItemIf, SetDefaultIf, SetItemIf


def attempt_numbers(key: object, max_attempts: int | None) -> Iterator[int]:
    """The retry policy of a read-transform-write loop: 1, 2, ... up to ``max_attempts`` (None: forever).

    Running out raises ConcurrencyConflictError naming ``key`` and the
    attempts made; every retry loop (conditional operations, and transforms sync and async)
    iterates this.
    """
    n = 0
    while max_attempts is None or n < max_attempts:
        n += 1
        yield n
    raise ConcurrencyConflictError(key, n)


def refuse_overwrite(key: object) -> MutationPolicyError:
    """The error for overwriting an existing key of an append-only dict."""
    return MutationPolicyError(
        "append-only", f"Cannot overwrite key {key!r}: the dict is append-only"
    )


def condition_holds(
    condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists
) -> bool:
    """Evaluate an ETag condition; ITEM_NOT_AVAILABLE is an absent key's ETag."""
    if condition is ANY_ETAG:
        return True
    if condition is ETAG_IS_THE_SAME:
        return expected == actual
    if condition is ETAG_HAS_CHANGED:
        return expected != actual
    raise TypeError(f"Unknown ETag condition {condition!r}")


def wants_value(retrieve: RetrieveValueFlag, expected: ETagIfExists, actual: ETagIfExists) -> bool:
    """Whether the current value should be returned (only meaningful if it exists)."""
    if retrieve is ALWAYS_RETRIEVE:
        return True
    if retrieve is NEVER_RETRIEVE:
        return False
    return expected != actual


def pin(actual: ETagIfExists) -> Precondition:
    """The precondition that holds only while the observed state is unchanged."""
    if actual is ITEM_NOT_AVAILABLE:
        return IF_ABSENT
    return IfMatch(str(actual))


class Outcome(enum.Enum):
    """Where a conditional result's ``new_value`` comes from."""

    WRITTEN = "the value written"
    ABSENT = "nothing: the key is absent afterwards"
    CURRENT = "the value found, subject to the retrieve mode"


@attrs.frozen
class Write:
    """Action: store the encoded bytes under a precondition."""

    data: bytes
    precondition: Precondition


@attrs.frozen
class Delete:
    """Action: delete under a precondition."""

    precondition: Precondition


Action = Write | Delete | None


@attrs.frozen
class Decision:
    """The verdict on a conditional command for one observation."""

    satisfied: bool
    action: Action
    outcome: Outcome


_NOT_SATISFIED = Decision(False, None, Outcome.CURRENT)
_KEEP = Decision(True, None, Outcome.CURRENT)
_ALREADY_ABSENT = Decision(True, None, Outcome.ABSENT)


def _precondition(condition: ETagConditionFlag, actual: ETagIfExists) -> Precondition:
    # An unconditional operation is last-write-wins; a conditional one is
    # pinned to what was observed, so a concurrent change makes it retry.
    return None if condition is ANY_ETAG else pin(actual)


def decide_get_if(cmd: GetItemIf, actual: ETagIfExists) -> Decision:
    """A conditional read never acts; it reports the condition."""
    if condition_holds(cmd.condition, cmd.expected_etag, actual):
        return _KEEP
    return _NOT_SATISFIED


def decide_set_if(cmd: SetItemIf, actual: ETagIfExists) -> Decision:
    """Write, delete (DELETE_CURRENT) or keep (KEEP_CURRENT) if the condition holds."""
    if not condition_holds(cmd.condition, cmd.expected_etag, actual):
        return _NOT_SATISFIED
    if cmd.value is KEEP_CURRENT:
        return _KEEP
    if cmd.value is DELETE_CURRENT:
        if actual is ITEM_NOT_AVAILABLE:
            return _ALREADY_ABSENT
        return Decision(True, Delete(_precondition(cmd.condition, actual)), Outcome.ABSENT)
    assert cmd.data is not None
    if cmd.append_only:
        if actual is not ITEM_NOT_AVAILABLE:
            raise refuse_overwrite(cmd.target.key)
        return Decision(True, Write(cmd.data, IF_ABSENT), Outcome.WRITTEN)
    return Decision(True, Write(cmd.data, _precondition(cmd.condition, actual)), Outcome.WRITTEN)


def decide_setdefault_if(cmd: SetDefaultIf, actual: ETagIfExists) -> Decision:
    """Insert the default only if the condition holds and the key is absent."""
    if not condition_holds(cmd.condition, cmd.expected_etag, actual):
        return _NOT_SATISFIED
    if actual is ITEM_NOT_AVAILABLE:
        return Decision(True, Write(cmd.data, IF_ABSENT), Outcome.WRITTEN)
    return _KEEP


def decide_discard_if(cmd: DiscardIf, actual: ETagIfExists) -> Decision:
    """Delete if the condition holds and the key exists."""
    if not condition_holds(cmd.condition, cmd.expected_etag, actual):
        return _NOT_SATISFIED
    if actual is ITEM_NOT_AVAILABLE:
        return _ALREADY_ABSENT
    return Decision(True, Delete(_precondition(cmd.condition, actual)), Outcome.ABSENT)


def decide_transform(
    new_value: Any, data: bytes | None, actual: ETagIfExists, append_only: bool = False, key: object = None
) -> Decision:
    """What to do with a transformer's output, pinned to the observed ETag."""
    if new_value is KEEP_CURRENT:
        return _KEEP
    if new_value is DELETE_CURRENT:
        if actual is ITEM_NOT_AVAILABLE:
            return _ALREADY_ABSENT
        return Decision(True, Delete(pin(actual)), Outcome.ABSENT)
    assert data is not None
    if append_only and actual is not ITEM_NOT_AVAILABLE:
        raise refuse_overwrite(key)
    return Decision(True, Write(data, pin(actual)), Outcome.WRITTEN)


def may_need_value(cmd: GetItemIf | SetItemIf | SetDefaultIf | DiscardIf) -> bool:
    """Whether the result might carry the current value (so observe by reading)."""
    if isinstance(cmd, DiscardIf) or cmd.retrieve is NEVER_RETRIEVE:
        return False
    if isinstance(cmd, SetItemIf):
        # An unconditional write or delete reports what it wrote, not what it found.
        return cmd.condition is not ANY_ETAG or cmd.value is KEEP_CURRENT
    return True


def if_none_match_for(cmd: GetItemIf | SetItemIf | SetDefaultIf) -> str | None:
    """The ETag to send as If-None-Match when observing by reading.

    Under IF_ETAG_CHANGED an unchanged value need not be transferred.
    """
    if cmd.retrieve is ALWAYS_RETRIEVE or cmd.retrieve is NEVER_RETRIEVE:
        return None
    expected = cmd.expected_etag
    return None if expected is ITEM_NOT_AVAILABLE else str(expected)
