"""ExpiringDict: items older than a time-to-live are invisible, and ``purge()`` deletes them."""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..flags import (
    ANY_ETAG,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    NEVER_RETRIEVE,
    ETagConditionFlag,
    ETagIfExists,
    RetrieveValueFlag,
    TransformingFunction,
    ValueType,
)
from ..keys import NonEmptySafeStrTuple, SafeStrTuple
from ..ops.decide import condition_holds
from ..persi_dict import PersiDict
from ..progress import ProgressOption, Reporter
from ..results import ConditionalOperationResult, OperationResult
from .base import WrapperDict, check_persidict

_SECONDS_PER_DAY = 86400.0


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, not {value!r}")
    return float(value)


def ttl_seconds(ttl: float | datetime.timedelta | None, expiration_days: float | None) -> float:
    """Validate the two spellings of the time-to-live (exactly one) and return seconds."""
    if (ttl is None) == (expiration_days is None):
        raise ValueError("Pass exactly one of ttl (seconds or a timedelta) and expiration_days")
    if expiration_days is not None:
        return _positive("expiration_days", expiration_days) * _SECONDS_PER_DAY
    if isinstance(ttl, datetime.timedelta):
        return _positive("ttl", ttl.total_seconds())
    return _positive("ttl", ttl)


class ExpiringDict(WrapperDict[ValueType]):
    """Wraps a mutable PersiDict: an item whose timestamp is ``ttl`` or more seconds old has expired.

    An item written at time ``t`` is visible while ``clock() < t + ttl``.
    Expired items are invisible to reads, ``in``, ``len`` and iteration, and
    conditional operations treat them as absent (ITEM_NOT_AVAILABLE): a
    conditional write to an expired key first deletes the expired item
    (pinned to its ETag, so a concurrent fresh write survives) and then runs
    against the now-absent key. ``purge()`` deletes every expired item.
    Expiry is computed from the stored timestamps, so it survives reopening.

    ``ttl`` is seconds or a ``datetime.timedelta``; ``expiration_days`` is
    the same in days (PersistDict's spelling). ``clock`` (POSIX seconds)
    should agree with the clock that stamps the wrapped dict's items; the
    ttl should be far larger than any skew between them. An item that
    expires while an operation on it runs may be treated as still live.
    """

    def __init__(
        self,
        *,
        wrapped_dict: PersiDict[ValueType],
        ttl: float | datetime.timedelta | None = None,
        expiration_days: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        wrapped = check_persidict("wrapped_dict", wrapped_dict)
        if wrapped.append_only:
            raise ValueError("ExpiringDict needs a mutable wrapped_dict: expired items get deleted")
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning POSIX seconds, not {clock!r}")
        self._wrapped = wrapped
        self._ttl = ttl_seconds(ttl, expiration_days)
        self._clock = clock

    @property
    def ttl(self) -> float:
        """The time-to-live in seconds."""
        return self._ttl

    @property
    def wrapped_dict(self) -> PersiDict[ValueType]:
        """The dict that holds the items, expired or not."""
        return self._wrapped

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted (the ttl in seconds; ``clock`` only if not time.time)."""
        params: dict[str, Any] = {"ttl": self._ttl, "wrapped_dict": self._wrapped}
        if self._clock is not time.time:
            params = {"clock": self._clock, **params}
        return params

    def _subdict(self, prefix: SafeStrTuple) -> ExpiringDict[ValueType]:
        return ExpiringDict(wrapped_dict=self._wrapped._subdict(prefix), ttl=self._ttl, clock=self._clock)

    # ------------------------------------------------------------ expiry

    def _is_expired(self, timestamp: float, now: float) -> bool:
        return now >= timestamp + self._ttl

    def _live_timestamp(self, key: NonEmptySafeStrTuple) -> float | None:
        """The key's timestamp if it is stored and live, else None."""
        try:
            ts = self._wrapped._timestamp(key)
        except KeyError:
            return None
        return None if self._is_expired(ts, self._clock()) else ts

    def _purge_key(self, key: NonEmptySafeStrTuple) -> bool:
        """Delete ``key`` if it has expired, pinned to the expired version; return whether deleted."""
        seen = self._wrapped._get_item_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)
        if seen.actual_etag is ITEM_NOT_AVAILABLE:
            return False
        # The timestamp is read after the ETag: any version newer than the one
        # seen is fresh, so an expired timestamp belongs to the version seen.
        try:
            ts = self._wrapped._timestamp(key)
        except KeyError:
            return False
        if not self._is_expired(ts, self._clock()):
            return False
        return self._wrapped._discard_if(key, seen.actual_etag, ETAG_IS_THE_SAME).value_was_mutated

    def purge(self, *, progress: ProgressOption = None) -> int:
        """Delete every expired item; return how many were deleted (``progress``: persidict.progress)."""
        now = self._clock()
        expired = [k for k, ts in self._wrapped._iter_keys_and_timestamps() if self._is_expired(ts, now)]
        n = 0
        with Reporter(progress, total=len(expired), desc="purge") as rep:
            for k in expired:
                n += self._purge_key(k)
                rep.advance(k)
        return n

    # ------------------------------------------------------------ reads

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        if self._live_timestamp(key) is None:
            raise KeyError(key)
        return self._wrapped._get(key)

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        return self._live_timestamp(key) is not None

    def _timestamp(self, key: NonEmptySafeStrTuple) -> float:
        ts = self._live_timestamp(key)
        if ts is None:
            raise KeyError(key)
        return ts

    def _iter_keys_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, float]]:
        now = self._clock()
        ttl = self._ttl
        for k, ts in self._wrapped._iter_keys_and_timestamps():
            if now < ts + ttl:
                yield k, ts

    def _iter_keys(self) -> Iterator[NonEmptySafeStrTuple]:
        for k, _ in self._iter_keys_and_timestamps():
            yield k

    def __len__(self) -> int:
        """The number of live items."""
        return sum(1 for _ in self._iter_keys_and_timestamps())

    def _get_item_if(
        self,
        key: NonEmptySafeStrTuple,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        """An expired item reads as absent; the timestamp is checked first, then the item read."""
        try:
            ts = self._wrapped._timestamp(key)
        except KeyError:
            ts = None
        if ts is not None and self._is_expired(ts, self._clock()):
            holds = condition_holds(condition, expected_etag, ITEM_NOT_AVAILABLE)
            na = ITEM_NOT_AVAILABLE
            return ConditionalOperationResult(holds, na, na, na)
        return self._wrapped._get_item_if(key, expected_etag, condition, retrieve)

    # ------------------------------------------------------------ writes

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        self._purge_key(key)
        return self._wrapped._set_item_if(key, value, expected_etag, condition, retrieve)

    def _setdefault_if(
        self,
        key: NonEmptySafeStrTuple,
        default_value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        self._purge_key(key)
        return self._wrapped._setdefault_if(key, default_value, expected_etag, condition, retrieve)

    def _discard_if(
        self, key: NonEmptySafeStrTuple, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        self._purge_key(key)
        return self._wrapped._discard_if(key, expected_etag, condition)

    def _discard(self, key: NonEmptySafeStrTuple) -> bool:
        self._purge_key(key)
        return self._wrapped._discard(key)

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        self._purge_key(key)
        return self._wrapped._transform_item(key, transformer, max_attempts)
