"""Flags: jokers, ETag conditions, retrieve modes and sentinels.

Every flag class is a one-member ``enum.Enum`` (the sentinel pattern type
checkers understand), so a flag is one object that survives ``copy`` and
``pickle`` and is compared with ``is``; ``x is ITEM_NOT_AVAILABLE`` narrows
``x`` under mypy. The family classes (``Joker``, ``ETagConditionFlag``,
``RetrieveValueFlag``) are member-less enums the flag classes subclass, so
``isinstance(KEEP_CURRENT, Joker)`` holds. Calling a flag class with no
argument (``KeepCurrentFlag()``) returns its flag, as it always did.
"""

from __future__ import annotations

from enum import Enum, EnumType
from typing import TYPE_CHECKING, Any, Final, NewType, Protocol, Self, TypeAlias, runtime_checkable

from typing_extensions import TypeVar


class _FlagType(EnumType):
    """Metaclass of the flags: ``FlagClass()`` returns the class's one member."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        members: list[Any] = list(cls.__members__.values())
        if len(members) != 1:
            raise TypeError(f"{cls.__name__} is a family of flags, not a flag")
        return members[0]


class _Flag(Enum, metaclass=_FlagType):
    """Base of all flags: printed as its public name, no instance state."""

    def __repr__(self) -> str:
        return self._name_

    def __str__(self) -> str:
        return self._name_

    if TYPE_CHECKING:
        # What _FlagType.__call__ does, said to the type checker.
        def __new__(cls, value: object = ...) -> Self: ...

    else:

        def __setattr__(self, name: str, value: object) -> None:
            if not name.startswith("_"):
                raise AttributeError(f"{self._name_} has no attribute {name!r} to set")
            super().__setattr__(name, value)


class Joker(_Flag):
    """A command-like value: assigning it to a key acts instead of storing."""


class KeepCurrentFlag(Joker):
    """Assigning KEEP_CURRENT leaves the stored value unchanged."""

    KEEP_CURRENT = "KEEP_CURRENT"


class DeleteCurrentFlag(Joker):
    """Assigning DELETE_CURRENT deletes the stored value."""

    DELETE_CURRENT = "DELETE_CURRENT"


class ETagConditionFlag(_Flag):
    """How an expected ETag is compared with the actual one."""


class AnyETagFlag(ETagConditionFlag):
    """The condition always holds (an unconditional operation)."""

    ANY_ETAG = "ANY_ETAG"


class ETagIsTheSameFlag(ETagConditionFlag):
    """The condition holds when expected == actual."""

    ETAG_IS_THE_SAME = "ETAG_IS_THE_SAME"


class ETagHasChangedFlag(ETagConditionFlag):
    """The condition holds when expected != actual."""

    ETAG_HAS_CHANGED = "ETAG_HAS_CHANGED"


class RetrieveValueFlag(_Flag):
    """Whether a conditional operation fetches the stored value."""


class AlwaysRetrieveFlag(RetrieveValueFlag):
    """Always return the stored value."""

    ALWAYS_RETRIEVE = "ALWAYS_RETRIEVE"


class NeverRetrieveFlag(RetrieveValueFlag):
    """Never fetch the value: VALUE_NOT_RETRIEVED stands in for it."""

    NEVER_RETRIEVE = "NEVER_RETRIEVE"


class IfETagChangedRetrieveFlag(RetrieveValueFlag):
    """Fetch the value only when its ETag differs from the expected one."""

    IF_ETAG_CHANGED = "IF_ETAG_CHANGED"


class ItemNotAvailableFlag(_Flag):
    """Stands for an absent key: its ETag and its value."""

    ITEM_NOT_AVAILABLE = "ITEM_NOT_AVAILABLE"


class ValueNotRetrievedFlag(_Flag):
    """Stands for a value that exists but was not fetched."""

    VALUE_NOT_RETRIEVED = "VALUE_NOT_RETRIEVED"


KEEP_CURRENT: Final = KeepCurrentFlag.KEEP_CURRENT
"""Assign it to a key to leave the stored value unchanged."""
DELETE_CURRENT: Final = DeleteCurrentFlag.DELETE_CURRENT
"""Assign it to a key to delete the stored value."""
ANY_ETAG: Final = AnyETagFlag.ANY_ETAG
"""ETag condition that always holds."""
ETAG_IS_THE_SAME: Final = ETagIsTheSameFlag.ETAG_IS_THE_SAME
"""ETag condition: expected == actual."""
ETAG_HAS_CHANGED: Final = ETagHasChangedFlag.ETAG_HAS_CHANGED
"""ETag condition: expected != actual."""
ALWAYS_RETRIEVE: Final = AlwaysRetrieveFlag.ALWAYS_RETRIEVE
"""Retrieve mode: always return the stored value."""
NEVER_RETRIEVE: Final = NeverRetrieveFlag.NEVER_RETRIEVE
"""Retrieve mode: never fetch the value."""
IF_ETAG_CHANGED: Final = IfETagChangedRetrieveFlag.IF_ETAG_CHANGED
"""Retrieve mode: fetch the value only when its ETag differs from the expected one."""
ITEM_NOT_AVAILABLE: Final = ItemNotAvailableFlag.ITEM_NOT_AVAILABLE
"""Sentinel for an absent key (its ETag and its value)."""
VALUE_NOT_RETRIEVED: Final = ValueNotRetrievedFlag.VALUE_NOT_RETRIEVED
"""Sentinel for a value that exists but was not fetched."""

ETagValue = NewType("ETagValue", str)
"""An opaque per-key version string."""

ETagIfExists: TypeAlias = ETagValue | ItemNotAvailableFlag
"""An ETag, or ITEM_NOT_AVAILABLE for an absent key."""

ValueType = TypeVar("ValueType", default=Any)
"""The type of the values a PersiDict holds (``Any`` when not given: ``FileDirDict(...)``)."""

_V = TypeVar("_V", default=Any)


@runtime_checkable
class TransformingFunction(Protocol[_V]):
    """``f(current value or ITEM_NOT_AVAILABLE) -> new value, KEEP_CURRENT or DELETE_CURRENT``.

    Any callable is one (``isinstance(f, TransformingFunction)``); it is
    generic in the value type: ``TransformingFunction[int]``.
    """

    def __call__(self, current: _V | ItemNotAvailableFlag, /) -> _V | Joker:
        """The new value for the key, given its current one."""
        ...
