"""EmptyDict: the null device. Accepts every write, keeps nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, overload

from .backends.null import NullBackend
from .codecs import Codec
from .concurrency import check_max_workers
from .flags import ITEM_NOT_AVAILABLE, TransformingFunction, ValueType
from .keys import NonEmptyPersiDictKey, to_key
from .persi_dict import check_n_retries
from .progress import ProgressOption
from .results import OperationResult
from .store_dict import StoreDict

_T = TypeVar("_T")
_MISSING: Any = object()


class EmptyDict(StoreDict[ValueType]):
    """A PersiDict that discards every write and is always empty.

    Reads never look at the key (``123 in EmptyDict()`` is False, ``e[123]``
    raises KeyError), as nothing can be found anyway. Writes and conditional
    operations still check the key and the value, and serialise the value,
    so a bad one fails here as it would on a real store; then they discard
    it. ``transform_item`` never calls the transformer.
    """

    def __init__(
        self,
        *,
        serialization_format: str | Codec = "pkl",
        append_only: bool = False,
        base_class_for_values: type | None = None,
    ) -> None:
        self._init_store(
            backend=NullBackend(),
            root=(),
            serialization_format=serialization_format,
            append_only=append_only,
            base_class_for_values=base_class_for_values,
        )

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted."""
        return dict(sorted(self._common_params().items()))

    # ------------------------------------------------------------ reads: nothing to find

    def __contains__(self, key: object) -> bool:
        """Always False."""
        return False

    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        """Always KeyError."""
        raise KeyError(key)

    def __delitem__(self, key: NonEmptyPersiDictKey) -> None:
        """Always KeyError: there is nothing to delete."""
        raise KeyError(key)

    @overload
    def get(self, key: NonEmptyPersiDictKey, /) -> ValueType | None: ...
    @overload
    def get(self, key: NonEmptyPersiDictKey, /, default: ValueType | _T) -> ValueType | _T: ...
    def get(self, key: NonEmptyPersiDictKey, /, default: Any = None) -> Any:
        """Always ``default``."""
        return default

    def setdefault(self, key: NonEmptyPersiDictKey, default: ValueType | None = None) -> ValueType:
        """Always ``default``: nothing is kept."""
        return default  # type: ignore[return-value]

    @overload
    def pop(self, key: NonEmptyPersiDictKey, /) -> ValueType: ...
    @overload
    def pop(self, key: NonEmptyPersiDictKey, /, default: ValueType | _T) -> ValueType | _T: ...
    def pop(self, key: NonEmptyPersiDictKey, /, default: Any = _MISSING) -> Any:
        """``default``, or KeyError without one."""
        if default is _MISSING:
            raise KeyError(key)
        return default

    def discard(self, key: NonEmptyPersiDictKey) -> bool:
        """Always False."""
        return False

    def discard_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> int:
        """Check the keys; always 0: there is nothing to delete."""
        check_max_workers(max_workers)
        for k in keys:
            to_key(k)
        return 0

    def transform_item(
        self,
        key: NonEmptyPersiDictKey,
        transformer: TransformingFunction[ValueType],
        *,
        n_retries: int | None = 6,
    ) -> OperationResult[ValueType]:
        """Check the arguments; the transformer is never called: there is no item to transform."""
        to_key(key)
        if not callable(transformer):
            raise TypeError(f"transformer must be callable, not {transformer!r}")
        check_n_retries(n_retries)
        return OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
