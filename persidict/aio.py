"""AsyncPersiDict: an asyncio view of any PersiDict, over the same core.

``AsyncPersiDict(d)`` offers every operation of the PersiDict ``d`` as a
coroutine (``await ad.get(k)``, ``await ad.set_item_if(...)``, ``async for
k in ad``...). It decides nothing itself: each call runs the sync method of
``d`` — the same key checks, codecs, conditions, retries and batch machinery
— in a bounded pool of threads, so the event loop never waits for a disk or
a network round trip. The one piece written here is the retry loop of
``transform_item`` with an *async* transformer, and it is built from ``d``'s
own ``get_with_etag`` and ``set_item_if(..., ETAG_IS_THE_SAME)``: the core
decides every condition, as in the sync loop of ``persidict.ops.run``.

Execution model:

- Each view owns a ``ThreadPoolExecutor`` of ``max_workers`` threads,
  created on first use and shut down by ``aclose()`` (or ``async with``);
  its subdicts share it. Pass ``executor=`` to share one pool between views
  (the view then never shuts it down).
- Stores that live in memory (LocalDict, EmptyDict) run inline, on the loop:
  a thread hand-off would cost far more than the operation. ``inline=False``
  forces threads (e.g. for huge values, which LocalDict deep-copies).
- Cancellation: an operation cancelled before its thread picks it up never
  runs. A write (any operation that may change the store) cancelled while
  its thread runs it cannot be stopped half-way: the cancelled task waits
  for it to finish and then raises CancelledError, so when the cancellation
  arrives the write has either completed or never started, and any lock it
  took is released. A read cancelled while running is abandoned at once
  (its thread finishes it and the result is dropped).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, Self, TypeVar, overload

from .concurrency import check_max_workers
from .empty_dict import EmptyDict
from .flags import (
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ETagConditionFlag,
    ETagIfExists,
    ETagValue,
    ItemNotAvailableFlag,
    Joker,
    RetrieveValueFlag,
    TransformingFunction,
    ValueType,
)
from .keys import NonEmptyPersiDictKey, NonEmptySafeStrTuple, PersiDictKey, to_key
from .local_dict import LocalDict
from .ops.decide import attempt_numbers
from .persi_dict import PersiDict, PersiDictView, check_n_retries
from .progress import ProgressOption
from .results import ConditionalOperationResult, OperationResult

__all__ = ["AsyncPersiDict", "AsyncTransformingFunction", "DEFAULT_MAX_WORKERS"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_P = ParamSpec("_P")

AsyncTransformingFunction = Callable[[ValueType | ItemNotAvailableFlag], Awaitable[ValueType | Joker]]
"""An ``async def`` transformer: ``await f(current or ITEM_NOT_AVAILABLE) -> new value or joker``."""

DEFAULT_MAX_WORKERS = 8
"""Threads of a view over a local store (disk, LMDB); network stores get more (see ``workers_for``)."""

MAX_DEFAULT_WORKERS = 32
"""The most threads a view starts by default (S3: twice the store's batch concurrency, at most this)."""

_CHUNK = 256
"""Keys (or items) fetched per thread hand-off while iterating."""

_MISSING: Any = object()
_IN_MEMORY = (LocalDict, EmptyDict)


def workers_for(d: PersiDict[Any]) -> int:
    """The default thread count of a view over ``d``: more where round trips dominate."""
    caps = getattr(d, "capabilities", None)
    batch = getattr(caps, "batch_workers", 1)
    batch = batch if isinstance(batch, int) and not isinstance(batch, bool) else 1
    return min(MAX_DEFAULT_WORKERS, max(DEFAULT_MAX_WORKERS, 2 * batch))


def _is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine (``async def`` functions, methods, partials, objects)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def _no_awaitable(transformer: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``transformer``, refusing an awaitable result (an async transformer not declared ``async def``)."""

    def checked(current: Any) -> Any:
        new = transformer(current)
        if inspect.isawaitable(new):
            close = getattr(new, "close", None)
            if close is not None:
                close()
            raise TypeError(
                "transformer returned an awaitable: declare an async transformer with `async def` "
                "(or as an object whose __call__ is `async def`)"
            )
        return new

    return checked


class _Pool:
    """The threads of a view and of its subdicts; created on first use."""

    def __init__(self, executor: Executor | None, max_workers: int) -> None:
        self.executor = executor
        self.owned = executor is None
        self.max_workers = max_workers
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this AsyncPersiDict is closed (aclose() was called)")

    def get(self) -> Executor:
        self.check_open()
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="persidict-aio")
        return self.executor

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        ex, self.executor = self.executor, None
        if ex is not None and self.owned:
            # Wait, off the loop, for running operations (a write is never cut short).
            await asyncio.shield(asyncio.to_thread(ex.shutdown, wait=True))


def _consume(fut: asyncio.Future[Any]) -> None:
    """Mark an abandoned future's exception as retrieved (no 'never retrieved' log)."""
    if not fut.cancelled():
        fut.exception()


class AsyncPersiDict(PersiDictView, Generic[ValueType]):
    """An asyncio view of the PersiDict ``d``: every operation, awaitable, same results and errors.

    Args:
        d: any PersiDict (a store or a wrapper).
        max_workers: threads running ``d``'s blocking calls (default: 8, or
            twice the store's batch concurrency on S3, at most 32).
        executor: a ``concurrent.futures.Executor`` to run them in instead,
            e.g. one shared by several views (not shut down by ``aclose``).
        inline: run operations on the event loop (True), in threads (False),
            or decide (None: inline only for in-memory stores).
    """

    __slots__ = ("_d", "_inline", "_pool")

    _d: PersiDict[ValueType]
    _pool: _Pool
    _inline: bool

    def __init__(
        self,
        d: PersiDict[ValueType],
        *,
        max_workers: int | None = None,
        executor: Executor | None = None,
        inline: bool | None = None,
    ) -> None:
        if isinstance(d, AsyncPersiDict):
            raise TypeError("d is already an AsyncPersiDict; pass the PersiDict it views (d.sync)")
        if not isinstance(d, PersiDict):
            raise TypeError(f"d must be a PersiDict, not {type(d).__name__}")
        workers = check_max_workers(max_workers)
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(f"executor must be a concurrent.futures.Executor or None, not {executor!r}")
        if executor is not None and workers is not None:
            raise ValueError("give max_workers or executor, not both")
        if inline is not None and not isinstance(inline, bool):
            raise TypeError(f"inline must be a bool or None, not {inline!r}")
        self._d = d
        self._pool = _Pool(executor, workers or workers_for(d))
        self._inline = isinstance(d, _IN_MEMORY) if inline is None else inline

    @classmethod
    def _view(cls, d: PersiDict[_T], pool: _Pool, inline: bool) -> AsyncPersiDict[_T]:
        """A view of ``d`` sharing ``pool`` (for subdicts)."""
        view: AsyncPersiDict[_T] = object.__new__(AsyncPersiDict)
        view._d = d
        view._pool = pool
        view._inline = inline
        return view

    # ------------------------------------------------------------ running

    async def _run(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``fn(*args, **kwargs)`` in a thread; a read: abandoned when cancelled while running.

        (Cancelling the wrapped future cancels the thread's job if it has not started.)
        """
        if self._inline:
            self._pool.check_open()
            return fn(*args, **kwargs)
        return await asyncio.wrap_future(self._submit(fn, *args, **kwargs))

    def _submit(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_R]:
        """``fn(*args, **kwargs)`` handed to the pool, in a copy of the caller's context."""
        return self._pool.get().submit(contextvars.copy_context().run, functools.partial(fn, *args, **kwargs))

    async def _write(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``fn(*args, **kwargs)`` in a thread; cancelled while running, it is waited for, then cancelled."""
        if self._inline:
            self._pool.check_open()
            return fn(*args, **kwargs)
        cf = self._submit(fn, *args, **kwargs)
        fut = asyncio.wrap_future(cf)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if not cf.cancel():
                # Running: it cannot be stopped half-way. Let it finish (any lock it took is
                # released by then), then pass the cancellation on.
                fut.add_done_callback(_consume)
                while not fut.done():
                    try:
                        await asyncio.shield(fut)
                    except asyncio.CancelledError:
                        continue
                    except BaseException:
                        break
            raise

    async def _chunks(self, make: Callable[[], Iterator[_T]]) -> AsyncIterator[list[_T]]:
        """The items of ``make()`` (a sync iterator, built and advanced in threads), in chunks."""
        it: Iterator[_T] | None = None

        def step() -> list[_T]:
            nonlocal it
            if it is None:
                it = make()
            return list(itertools.islice(it, _CHUNK))

        while True:
            chunk = await self._run(step)
            if chunk:
                yield chunk
            if len(chunk) < _CHUNK:
                return
            if self._inline:
                await asyncio.sleep(0)  # a long in-memory listing still lets other tasks run

    async def _stream(self, make: Callable[[], Iterator[_T]]) -> AsyncIterator[_T]:
        async for chunk in self._chunks(make):
            for x in chunk:
                yield x

    # ------------------------------------------------------------ lifecycle

    @property
    def sync(self) -> PersiDict[ValueType]:
        """The PersiDict this view runs."""
        return self._d

    @property
    def max_workers(self) -> int:
        """The size of the thread pool (when the view made it)."""
        return self._pool.max_workers

    @property
    def inline(self) -> bool:
        """Whether operations run on the event loop instead of in threads."""
        return self._inline

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called (on this view or the view it is a subdict of)."""
        return self._pool.closed

    async def aclose(self) -> None:
        """Wait for running operations, then release the threads (the PersiDict itself stays open).

        Closing a subdict view closes the pool it shares with its parent.
        Calls after closing raise RuntimeError. Idempotent.
        """
        await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncPersiDict({self._d!r})"

    # ------------------------------------------------------------ properties

    @property
    def append_only(self) -> bool:
        """Whether items, once written, can be neither changed nor deleted."""
        return self._d.append_only

    @property
    def base_class_for_values(self) -> type | None:
        """If set, every value must be an instance of this class."""
        return self._d.base_class_for_values

    @property
    def serialization_format(self) -> Any:
        """The format values are stored in."""
        return self._d.serialization_format

    @property
    def capabilities(self) -> Any:
        """What the store guarantees (None if it does not say)."""
        return getattr(self._d, "capabilities", None)

    def get_params(self) -> dict[str, Any]:
        """The PersiDict's constructor parameters."""
        return self._d.get_params()

    # ------------------------------------------------------------ dict API

    async def get_item(self, key: NonEmptyPersiDictKey) -> ValueType:
        """``d[key]``: the value; KeyError when absent."""
        return await self._run(self._d.__getitem__, key)

    @overload
    async def get(self, key: NonEmptyPersiDictKey, /) -> ValueType | None: ...
    @overload
    async def get(self, key: NonEmptyPersiDictKey, /, default: ValueType | _T) -> ValueType | _T: ...
    async def get(self, key: NonEmptyPersiDictKey, /, default: Any = None) -> Any:
        """``d.get(key, default)``."""
        return await self._run(self._d.get, key, default)

    async def set(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        """``d[key] = value`` (KEEP_CURRENT does nothing, DELETE_CURRENT deletes)."""
        await self._write(self._d.__setitem__, key, value)

    async def delete(self, key: NonEmptyPersiDictKey) -> None:
        """``del d[key]``; KeyError when absent."""
        await self._write(self._d.__delitem__, key)

    async def discard(self, key: NonEmptyPersiDictKey) -> bool:
        """Delete ``key`` if present; return whether it was."""
        return await self._write(self._d.discard, key)

    async def delete_if_exists(self, key: NonEmptyPersiDictKey) -> bool:
        """Same as ``discard``."""
        return await self._write(self._d.delete_if_exists, key)

    async def contains(self, key: object) -> bool:
        """``key in d``."""
        return await self._run(self._d.__contains__, key)

    async def len(self) -> int:
        """``len(d)``: the number of stored keys."""
        return await self._run(self._d.__len__)

    async def is_empty(self) -> bool:
        """``not d``."""
        return not await self._run(self._d.__bool__)

    async def equals(self, other: object) -> bool:
        """``d == other``: the same store, or the same items as the Mapping ``other``."""
        if isinstance(other, AsyncPersiDict):
            other = other.sync
        return await self._run(self._d.__eq__, other) is True

    async def setdefault(self, key: NonEmptyPersiDictKey, default: ValueType | None = None) -> ValueType:
        """``d.setdefault(key, default)`` (atomic insert-if-absent)."""
        return await self._write(self._d.setdefault, key, default)

    @overload
    async def pop(self, key: NonEmptyPersiDictKey, /) -> ValueType: ...
    @overload
    async def pop(self, key: NonEmptyPersiDictKey, /, default: ValueType | _T) -> ValueType | _T: ...
    async def pop(self, key: NonEmptyPersiDictKey, /, default: Any = _MISSING) -> Any:
        """``d.pop(key[, default])``."""
        if default is _MISSING:
            return await self._write(self._d.pop, key)
        return await self._write(self._d.pop, key, default)

    async def popitem(self) -> tuple[NonEmptySafeStrTuple, ValueType]:
        """``d.popitem()``; KeyError when empty."""
        return await self._write(self._d.popitem)

    async def clear(self, *, progress: ProgressOption = None) -> None:
        """``d.clear()``: delete every item."""
        await self._write(self._d.clear, progress=progress)

    async def update(self, other: Any = (), /, **kwargs: ValueType) -> None:
        """``d.update(...)``: every item checked and encoded before the first write."""
        await self._write(self._d.update, other, **kwargs)

    # ------------------------------------------------------------ iteration

    def __aiter__(self) -> AsyncIterator[NonEmptySafeStrTuple]:
        """``async for key in ad``: the keys, streamed."""
        return self.keys()

    def keys(self) -> AsyncIterator[NonEmptySafeStrTuple]:
        """The keys, streamed (fetched in chunks)."""
        return self._stream(lambda: iter(self._d))

    def values(self) -> AsyncIterator[ValueType]:
        """The values; keys deleted meanwhile are skipped."""
        return self._stream(lambda: iter(self._d.values()))

    def items(self) -> AsyncIterator[tuple[NonEmptySafeStrTuple, ValueType]]:
        """The (key, value) pairs; keys deleted meanwhile are skipped."""
        return self._stream(lambda: iter(self._d.items()))

    def keys_and_timestamps(self) -> AsyncIterator[tuple[NonEmptySafeStrTuple, float]]:
        """(key, timestamp) pairs, streamed."""
        return self._stream(self._d.keys_and_timestamps)

    def values_and_timestamps(self) -> AsyncIterator[tuple[ValueType, float]]:
        """(value, timestamp) pairs; keys deleted meanwhile are skipped."""
        return self._stream(self._d.values_and_timestamps)

    def items_and_timestamps(self) -> AsyncIterator[tuple[NonEmptySafeStrTuple, ValueType, float]]:
        """(key, value, timestamp) triples; keys deleted meanwhile are skipped."""
        return self._stream(self._d.items_and_timestamps)

    # ------------------------------------------------------------ ETags, timestamps

    async def timestamp(self, key: NonEmptyPersiDictKey) -> float:
        """POSIX time of the key's last modification; KeyError when absent."""
        return await self._run(self._d.timestamp, key)

    async def etag(self, key: NonEmptyPersiDictKey) -> ETagValue:
        """The key's current ETag; KeyError when absent."""
        return await self._run(self._d.etag, key)

    async def get_with_etag(self, key: NonEmptyPersiDictKey) -> ConditionalOperationResult[ValueType]:
        """The value and its ETag, read together (ITEM_NOT_AVAILABLE for both when absent)."""
        return await self._run(self._d.get_with_etag, key)

    # ------------------------------------------------------------ conditional operations

    async def get_item_if(
        self,
        key: NonEmptyPersiDictKey,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        *,
        retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED,
        always_retrieve_value: bool | None = None,
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional read (see ``PersiDict.get_item_if``)."""
        return await self._run(
            self._d.get_item_if,
            key,
            expected_etag,
            condition,
            retrieve_value=retrieve_value,
            always_retrieve_value=always_retrieve_value,
        )

    async def set_item_if(
        self,
        key: NonEmptyPersiDictKey,
        value: ValueType | Joker,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        *,
        retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED,
        always_retrieve_value: bool | None = None,
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional write (see ``PersiDict.set_item_if``)."""
        return await self._write(
            self._d.set_item_if,
            key,
            value,
            expected_etag,
            condition,
            retrieve_value=retrieve_value,
            always_retrieve_value=always_retrieve_value,
        )

    async def setdefault_if(
        self,
        key: NonEmptyPersiDictKey,
        default_value: ValueType,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        *,
        retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED,
        always_retrieve_value: bool | None = None,
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional insert-if-absent (see ``PersiDict.setdefault_if``)."""
        return await self._write(
            self._d.setdefault_if,
            key,
            default_value,
            expected_etag,
            condition,
            retrieve_value=retrieve_value,
            always_retrieve_value=always_retrieve_value,
        )

    async def discard_if(
        self, key: NonEmptyPersiDictKey, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        """Conditional delete (see ``PersiDict.discard_if``)."""
        return await self._write(self._d.discard_if, key, expected_etag, condition)

    async def discard_item_if(
        self, key: NonEmptyPersiDictKey, expected_etag: ETagIfExists, condition: ETagConditionFlag
    ) -> ConditionalOperationResult[ValueType]:
        """Same as ``discard_if``."""
        return await self._write(self._d.discard_item_if, key, expected_etag, condition)

    @overload
    async def transform_item(
        self,
        key: NonEmptyPersiDictKey,
        transformer: TransformingFunction[ValueType],
        *,
        n_retries: int | None = 6,
    ) -> OperationResult[ValueType]: ...
    @overload
    async def transform_item(
        self,
        key: NonEmptyPersiDictKey,
        transformer: AsyncTransformingFunction[ValueType],
        *,
        n_retries: int | None = 6,
    ) -> OperationResult[ValueType]: ...
    async def transform_item(
        self,
        key: NonEmptyPersiDictKey,
        transformer: TransformingFunction[ValueType] | AsyncTransformingFunction[ValueType],
        *,
        n_retries: int | None = 6,
    ) -> OperationResult[ValueType]:
        """Atomically replace the value with ``transformer(value)``, retrying on conflict.

        A sync transformer runs inside ``d.transform_item`` (in a worker
        thread, so it must not touch the event loop). An ``async def``
        transformer is awaited on the loop, between a read
        (``get_with_etag``) and a write pinned to the ETag read
        (``set_item_if(..., ETAG_IS_THE_SAME)``), retried when someone wrote
        in between: no thread waits for it. Either way it may run more than
        once, and ConcurrencyConflictError is raised when ``n_retries`` are
        used up (``None``: retry forever).
        """
        if not _is_async_callable(transformer):
            if callable(transformer):
                transformer = _no_awaitable(transformer)
            # (not callable: the sync method raises its errors, in its order)
            return await self._write(self._d.transform_item, key, transformer, n_retries=n_retries)
        k = to_key(key)
        attempts = check_n_retries(n_retries)
        if isinstance(self._d, EmptyDict):
            # EmptyDict keeps nothing: as its sync transform_item, never call the transformer.
            return await self._run(self._d.transform_item, k, lambda _: KEEP_CURRENT, n_retries=n_retries)
        return await self._transform_async(k, transformer, attempts)  # type: ignore[arg-type]

    async def _transform_async(
        self,
        key: NonEmptySafeStrTuple,
        transformer: AsyncTransformingFunction[ValueType],
        attempts: int | None,
    ) -> OperationResult[ValueType]:
        """The retry loop of ``ops.run.run_transform``, over ``d``'s conditional operations."""
        for _ in attempt_numbers(key, attempts):  # (the core's retry policy: raises when exhausted)
            seen = await self._run(self._d.get_with_etag, key)
            actual, current = seen.actual_etag, seen.new_value
            new = await transformer(current)  # type: ignore[arg-type]
            if new is KEEP_CURRENT:
                return OperationResult(actual, current)  # type: ignore[arg-type]
            r = await self._write(
                self._d.set_item_if, key, new, actual, ETAG_IS_THE_SAME, retrieve_value=NEVER_RETRIEVE
            )
            if not r.condition_was_satisfied:
                continue  # someone wrote since the read: read and transform again
            if new is DELETE_CURRENT or r.resulting_etag is ITEM_NOT_AVAILABLE:
                return OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
            return OperationResult(r.resulting_etag, new)  # type: ignore[arg-type]
        raise AssertionError("unreachable: attempt_numbers raises when the attempts run out")

    # ------------------------------------------------------------ batches

    @overload
    async def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: Literal[False] = False,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], ValueType]: ...
    @overload
    async def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: Literal[True],
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], tuple[ValueType, ETagValue]]: ...
    @overload
    async def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: bool,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], Any]: ...
    async def get_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        with_etags: bool = False,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> dict[tuple[str, ...], Any]:
        """``d.get_many(...)``, concurrent where the store gains, in one worker thread."""
        ks = list(keys)
        return await self._run(
            self._d.get_many, ks, with_etags=with_etags, max_workers=max_workers, progress=progress
        )

    async def set_many(
        self,
        items: Mapping[Any, ValueType | Joker] | Iterable[tuple[Any, ValueType | Joker]],
        *,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> None:
        """``d.set_many(...)``: every item checked and encoded before the first write."""
        pairs = items if isinstance(items, Mapping) else list(items)
        await self._write(self._d.set_many, pairs, max_workers=max_workers, progress=progress)

    async def discard_many(
        self,
        keys: Iterable[NonEmptyPersiDictKey],
        *,
        max_workers: int | None = None,
        progress: ProgressOption = None,
    ) -> int:
        """``d.discard_many(...)``: how many of the keys existed."""
        ks = list(keys)
        return await self._write(self._d.discard_many, ks, max_workers=max_workers, progress=progress)

    # ------------------------------------------------------------ sampling, ordering

    async def random_key(self) -> NonEmptySafeStrTuple | None:
        """A uniformly random key; None when empty."""
        return await self._run(self._d.random_key)

    async def oldest_keys(self, max_n: int | None = None) -> list[NonEmptySafeStrTuple]:
        """Keys from the least to the most recently modified (at most ``max_n``)."""
        return await self._run(self._d.oldest_keys, max_n)

    async def newest_keys(self, max_n: int | None = None) -> list[NonEmptySafeStrTuple]:
        """Keys from the most to the least recently modified (at most ``max_n``)."""
        return await self._run(self._d.newest_keys, max_n)

    async def oldest_values(self, max_n: int | None = None) -> list[ValueType]:
        """Values of ``oldest_keys(max_n)``."""
        return await self._run(self._d.oldest_values, max_n)

    async def newest_values(self, max_n: int | None = None) -> list[ValueType]:
        """Values of ``newest_keys(max_n)``."""
        return await self._run(self._d.newest_values, max_n)

    # ------------------------------------------------------------ hierarchy

    def get_subdict(self, prefix_key: PersiDictKey) -> AsyncPersiDict[ValueType]:
        """An async view of ``d.get_subdict(prefix_key)``, sharing this view's threads.

        Building a subdict does no I/O (stores create folders on first write).
        """
        return self._view(self._d.get_subdict(prefix_key), self._pool, self._inline)

    async def subdicts(self) -> dict[str, AsyncPersiDict[ValueType]]:
        """Each first-level prefix and an async view of its subdict (lists the keys)."""
        subs = await self._run(self._d.subdicts)
        return {name: self._view(sub, self._pool, self._inline) for name, sub in subs.items()}
