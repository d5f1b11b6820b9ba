"""EmptyDict: the null device. Accepts every write, keeps nothing."""

from __future__ import annotations

from typing import Any

from .backends.null import NullBackend
from .codecs import Codec
from .flags import ValueType
from .store_dict import StoreDict


class EmptyDict(StoreDict[ValueType]):
    """A PersiDict that discards every write and is always empty.

    Reads raise KeyError; conditional operations find ITEM_NOT_AVAILABLE.
    Values are still checked and serialised, so a bad value fails here as it
    would on a real store.
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
