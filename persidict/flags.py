"""Flags: jokers, ETag conditions, retrieve modes and sentinels.

Every flag class has exactly one instance, which survives ``copy`` and
``pickle`` as the same object, so flags are compared with ``is``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NewType, Self, TypeAlias

from typing_extensions import TypeVar


class _Singleton:
    """Base of all flags: one instance per class, kept through copy/pickle."""

    _instances: ClassVar[dict[type, Any]] = {}
    __slots__ = ()

    def __new__(cls) -> Self:
        inst = _Singleton._instances.get(cls)
        if inst is None:
            inst = object.__new__(cls)
            _Singleton._instances[cls] = inst
        return inst

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (type(self), ())

    def __repr__(self) -> str:
        return _NAMES.get(type(self), type(self).__name__)


class Joker(_Singleton):
    """A command-like value: assigning it to a key acts instead of storing."""

    __slots__ = ()


class KeepCurrentFlag(Joker):
    """Assigning KEEP_CURRENT leaves the stored value unchanged."""

    __slots__ = ()


class DeleteCurrentFlag(Joker):
    """Assigning DELETE_CURRENT deletes the stored value."""

    __slots__ = ()


class ETagConditionFlag(_Singleton):
    """How an expected ETag is compared with the actual one."""

    __slots__ = ()


class AnyETagFlag(ETagConditionFlag):
    """The condition always holds (an unconditional operation)."""

    __slots__ = ()


class ETagIsTheSameFlag(ETagConditionFlag):
    """The condition holds when expected == actual."""

    __slots__ = ()


class ETagHasChangedFlag(ETagConditionFlag):
    """The condition holds when expected != actual."""

    __slots__ = ()


class RetrieveValueFlag(_Singleton):
    """Whether a conditional operation fetches the stored value."""

    __slots__ = ()


class AlwaysRetrieveFlag(RetrieveValueFlag):
    """Always return the stored value."""

    __slots__ = ()


class NeverRetrieveFlag(RetrieveValueFlag):
    """Never fetch the value: VALUE_NOT_RETRIEVED stands in for it."""

    __slots__ = ()


class IfETagChangedRetrieveFlag(RetrieveValueFlag):
    """Fetch the value only when its ETag differs from the expected one."""

    __slots__ = ()


class ItemNotAvailableFlag(_Singleton):
    """Stands for an absent key: its ETag and its value."""

    __slots__ = ()


class ValueNotRetrievedFlag(_Singleton):
    """Stands for a value that exists but was not fetched."""

    __slots__ = ()


KEEP_CURRENT = KeepCurrentFlag()
DELETE_CURRENT = DeleteCurrentFlag()
ANY_ETAG = AnyETagFlag()
ETAG_IS_THE_SAME = ETagIsTheSameFlag()
ETAG_HAS_CHANGED = ETagHasChangedFlag()
ALWAYS_RETRIEVE = AlwaysRetrieveFlag()
NEVER_RETRIEVE = NeverRetrieveFlag()
IF_ETAG_CHANGED = IfETagChangedRetrieveFlag()
ITEM_NOT_AVAILABLE = ItemNotAvailableFlag()
VALUE_NOT_RETRIEVED = ValueNotRetrievedFlag()

_NAMES: dict[type, str] = {
    KeepCurrentFlag: "KEEP_CURRENT",
    DeleteCurrentFlag: "DELETE_CURRENT",
    AnyETagFlag: "ANY_ETAG",
    ETagIsTheSameFlag: "ETAG_IS_THE_SAME",
    ETagHasChangedFlag: "ETAG_HAS_CHANGED",
    AlwaysRetrieveFlag: "ALWAYS_RETRIEVE",
    NeverRetrieveFlag: "NEVER_RETRIEVE",
    IfETagChangedRetrieveFlag: "IF_ETAG_CHANGED",
    ItemNotAvailableFlag: "ITEM_NOT_AVAILABLE",
    ValueNotRetrievedFlag: "VALUE_NOT_RETRIEVED",
}

ETagValue = NewType("ETagValue", str)
"""An opaque per-key version string."""

ETagIfExists: TypeAlias = ETagValue | ItemNotAvailableFlag
"""An ETag, or ITEM_NOT_AVAILABLE for an absent key."""

ValueType = TypeVar("ValueType", default=Any)
"""The type of the values a PersiDict holds (``Any`` when not given: ``FileDirDict(...)``)."""

TransformingFunction: TypeAlias = Callable[[Any], Any]
"""``f(current value or ITEM_NOT_AVAILABLE) -> new value, KEEP_CURRENT or DELETE_CURRENT``."""
