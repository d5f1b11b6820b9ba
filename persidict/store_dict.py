"""StoreDict: the PersiDict façade over a Backend.

It normalises the key, picks the location (cached with the key's codec as a
``Target``), encodes the value, builds a command and hands it to the
interpreter in ``ops.run``. Concrete stores (LocalDict, EmptyDict,
FileDirDict, BasicS3Dict, LmdbDict) are StoreDicts that choose a backend, a
layout and their constructor parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from .backends.base import Backend, Location
from .codecs import Codec, TextCodec, ValueCoder, codec_for, format_name
from .flags import (
    ETagConditionFlag,
    ETagIfExists,
    Joker,
    RetrieveValueFlag,
    TransformingFunction,
    ValueType,
)
from .keys import Layout, NonEmptySafeStrTuple, SafeStrTuple, cache_key, is_key_component
from .ops import run as interpreter
from .ops import run_many
from .ops.commands import (
    DiscardIf,
    DiscardItem,
    DiscardMany,
    GetItem,
    GetItemIf,
    GetMany,
    SetDefaultIf,
    SetItem,
    SetItemIf,
    SetMany,
    StatItem,
    Target,
    TransformItem,
)
from .ops.run_many import OnDone
from .persi_dict import PersiDict
from .results import ConditionalOperationResult, OperationResult

_TARGET_CACHE_LIMIT = 100_000


class StoreDict(PersiDict[ValueType]):
    """A PersiDict whose items live in a Backend under a root location."""

    _backend: Backend
    _root: Location
    _layout: Layout
    _coder: ValueCoder
    _append_only: bool
    _plain_puts: bool
    _targets: dict[tuple[str, ...], Target]  # held under cache_key(key): lookups compare in C
    _str_locs: dict[str, Location]

    def _init_store(
        self,
        *,
        backend: Backend,
        root: Location,
        serialization_format: str | Codec,
        append_only: bool,
        base_class_for_values: type | None,
        digest_len: int = 0,
    ) -> None:
        """Set up the store; called by the concrete constructors."""
        if not isinstance(append_only, bool):
            raise TypeError(f"append_only must be a bool, not {append_only!r}")
        if base_class_for_values is not None and not isinstance(base_class_for_values, type):
            raise TypeError(f"base_class_for_values must be a class or None, not {base_class_for_values!r}")
        if isinstance(digest_len, bool) or not isinstance(digest_len, int) or digest_len < 0:
            raise ValueError(f"digest_len must be a non-negative int, not {digest_len!r}")
        codec = codec_for(serialization_format)
        if (
            base_class_for_values is not None
            and isinstance(codec, TextCodec)
            and not issubclass(base_class_for_values, str)
        ):
            raise ValueError(
                f"serialization_format={codec.extension!r} stores text: "
                f"base_class_for_values must be str, not {base_class_for_values.__name__}"
            )
        self._backend = backend
        self._root = root
        self._layout = Layout(codec.extension, digest_len)
        self._coder = ValueCoder(codec, base_class_for_values)
        self._append_only = append_only
        # d[k] = v needs no rule but the codec's: the str-key write fast paths apply.
        self._plain_puts = not append_only and base_class_for_values is None
        self._forget_targets()

    # ------------------------------------------------------------ properties

    @property
    def append_only(self) -> bool:
        """Whether items can be neither overwritten nor deleted."""
        return self._append_only

    @property
    def base_class_for_values(self) -> type | None:
        """The class every value must be an instance of, if any."""
        return self._coder.base_class_for_values

    @property
    def serialization_format(self) -> str | Codec:
        """The storage format name (or the user Codec)."""
        return format_name(self._coder.codec)

    @property
    def digest_len(self) -> int:
        """Length of the digest suffix added to key components (0: none)."""
        return self._layout.digest_len

    @property
    def capabilities(self) -> Any:
        """What the backend guarantees (e.g. whether preconditions are atomic)."""
        return self._backend.capabilities

    def _common_params(self) -> dict[str, Any]:
        return {
            "append_only": self._append_only,
            "base_class_for_values": self.base_class_for_values,
            "serialization_format": self.serialization_format,
        }

    # ------------------------------------------------------------ targets

    def _forget_targets(self) -> None:
        """Start with empty caches of targets and str-key locations."""
        self._targets = {}
        self._str_locs = {}

    def _target(self, key: NonEmptySafeStrTuple) -> Target:
        t = self._targets.get(key)
        if t is None:
            t = Target(key, self._root + self._layout.location(key), self._coder)
            if len(self._targets) >= _TARGET_CACHE_LIMIT:
                self._targets.clear()
            self._targets[cache_key(key)] = t
        return t

    def _loc_of_str(self, key: str) -> Location | None:
        """Where the str key ``key`` is stored (cached in ``_str_locs``), None if it is no valid key.

        For write paths that take a str key as given: no key object or Target is built.
        """
        if not is_key_component(key):
            return None
        loc = self._root + self._layout.location((key,))
        if len(self._str_locs) >= _TARGET_CACHE_LIMIT:
            self._str_locs.clear()
        self._str_locs[key] = loc
        return loc

    # ------------------------------------------------------------ hot paths

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        value: ValueType = interpreter.run_get(self._backend, GetItem(self._target(key)))
        return value

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        t = self._target(key)
        data = self._coder.encode(key, value)
        interpreter.run_set(self._backend, SetItem(t, data, self._append_only))

    def _serialised(self, key: NonEmptySafeStrTuple, value: Any) -> bytes:
        """The stored bytes of ``value`` (for ``update``, which encodes everything before writing)."""
        return self._coder.encode(key, value)

    def _set_serialised(self, key: NonEmptySafeStrTuple, value: Any, payload: bytes) -> None:
        interpreter.run_set(self._backend, SetItem(self._target(key), payload, self._append_only))

    # ------------------------------------------------------------ batches

    def _default_workers(self) -> int:
        return int(self._backend.capabilities.batch_workers)

    def _get_many(
        self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        cmd = GetMany(tuple(self._target(k) for k in keys))
        return run_many.run_get_many(self._backend, cmd, workers, on_done)

    def _set_serialised_many(
        self, items: list[tuple[NonEmptySafeStrTuple, Any, Any]], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        cmd = SetMany(tuple((self._target(k), payload) for k, _, payload in items), self._append_only)
        return run_many.run_set_many(self._backend, cmd, workers, on_done)

    def _discard_many(
        self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        cmd = DiscardMany(tuple(self._target(k) for k in keys))
        return run_many.run_discard_many(self._backend, cmd, workers, on_done)

    def _discard(self, key: NonEmptySafeStrTuple) -> bool:
        return interpreter.run_discard(self._backend, DiscardItem(self._target(key)))

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        return interpreter.run_stat(self._backend, StatItem(self._target(key))) is not None

    def _timestamp(self, key: NonEmptySafeStrTuple) -> float:
        stat = interpreter.run_stat(self._backend, StatItem(self._target(key)))
        if stat is None:
            raise self._missing(key)
        return stat.mtime

    # ------------------------------------------------------------ conditional

    def _get_item_if(
        self,
        key: NonEmptySafeStrTuple,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        cmd = GetItemIf(self._target(key), expected_etag, condition, retrieve)
        return interpreter.run_conditional(self._backend, cmd)

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        t = self._target(key)
        data = None if isinstance(value, Joker) else self._coder.encode(key, value)
        cmd = SetItemIf(t, value, data, expected_etag, condition, retrieve, self._append_only)
        return interpreter.run_conditional(self._backend, cmd)

    def _setdefault_if(
        self,
        key: NonEmptySafeStrTuple,
        default_value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        t = self._target(key)
        data = self._coder.encode(key, default_value)
        cmd = SetDefaultIf(t, default_value, data, expected_etag, condition, retrieve)
        return interpreter.run_conditional(self._backend, cmd)

    def _discard_if(
        self, key: NonEmptySafeStrTuple, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        cmd = DiscardIf(self._target(key), expected_etag, condition)
        return interpreter.run_conditional(self._backend, cmd)

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        cmd = TransformItem(self._target(key), transformer, max_attempts, self._append_only)
        return interpreter.run_transform(self._backend, cmd)

    # ------------------------------------------------------------ listing

    def _iter_keys(self) -> Iterator[NonEmptySafeStrTuple]:
        key_of = self._layout.key_of
        for loc in self._backend.list(self._root):
            k = key_of(loc)
            if k is not None:
                yield k

    def _iter_keys_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, float]]:
        key_of = self._layout.key_of
        for loc, stat in self._backend.list_stats(self._root):
            k = key_of(loc)
            if k is not None:
                yield k, stat.mtime

    def __len__(self) -> int:
        """The number of stored items (foreign and temporary files are not counted)."""
        return sum(1 for _ in self._iter_keys())

    def _clear(self) -> None:
        """Delete every item of this dict (and of its subdicts); foreign files stay."""
        key_of = self._layout.key_of
        root = self._root
        self._backend.delete_many(
            root + loc for loc in self._backend.list(root) if key_of(loc) is not None
        )

    # ------------------------------------------------------------ hierarchy

    def _subdict(self, prefix: SafeStrTuple) -> StoreDict[ValueType]:
        sub = copy.copy(self)
        sub._root = self._root + self._layout.encode_prefix(prefix)
        sub._layout = Layout(self._layout.extension, self._layout.digest_len)
        sub._forget_targets()
        return sub

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from parameters: caches stay behind, and a dict sent to a
        # worker process reopens the same storage.
        return (_rebuild, (type(self), self.get_params()))

    def __copy__(self) -> StoreDict[ValueType]:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._forget_targets()
        return new


def _rebuild(cls: type[StoreDict[Any]], params: dict[str, Any]) -> StoreDict[Any]:
    """Unpickle a store by reopening it from its parameters."""
    return cls(**params)
