"""LocalDict: a PersiDict held in memory, shared by its subdicts and copies."""

from __future__ import annotations

from typing import Any

from .backends.memory import MemoryBackend
from .codecs import Codec
from .flags import ValueType
from .keys import PersiDictKey, to_prefix
from .store_dict import StoreDict


class LocalDict(StoreDict[ValueType]):
    """An in-memory, thread-safe PersiDict for tests, caches and ephemeral data.

    Values are stored serialised (``serialization_format``), so a value read
    back is a copy. ETags come from one counter per store. Pass ``backend``
    to open another view of an existing store (as ``get_params`` does).
    """

    def __init__(
        self,
        *,
        backend: MemoryBackend | None = None,
        root_prefix: PersiDictKey = (),
        serialization_format: str | Codec = "pkl",
        append_only: bool = False,
        base_class_for_values: type | None = None,
    ) -> None:
        if backend is not None and not isinstance(backend, MemoryBackend):
            raise TypeError(f"backend must be a MemoryBackend or None, not {backend!r}")
        self._init_store(
            backend=backend if backend is not None else MemoryBackend(),
            root=tuple(to_prefix(root_prefix)),
            serialization_format=serialization_format,
            append_only=append_only,
            base_class_for_values=base_class_for_values,
        )

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted; they share this dict's memory store."""
        params = {**self._common_params(), "backend": self._backend, "root_prefix": self._root}
        return dict(sorted(params.items()))
