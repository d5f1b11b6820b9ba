"""Run one function over many items in a bounded pool of threads, keeping every outcome.

Batch operations use it to overlap round trips (S3, network folders): each
item's outcome is its result or the exception it raised, in the order of the
items, so one failure never hides another item's success.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

_T = TypeVar("_T")
_R = TypeVar("_R")

DEFAULT_MAX_WORKERS = 1
"""Workers of a store that gains nothing from concurrency (memory, LMDB): one, in the calling thread."""


def check_max_workers(max_workers: object) -> int | None:
    """Validate a ``max_workers`` argument: None (the store's default) or an int >= 1."""
    if max_workers is None:
        return None
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise TypeError(f"max_workers must be an int >= 1 or None, not {max_workers!r}")
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, not {max_workers}")
    return max_workers


def map_outcomes(
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    max_workers: int,
    on_done: Callable[[int, _R | BaseException], None] | None = None,
) -> list[_R | BaseException]:
    """``[fn(item) or the Exception it raised, ...]`` in item order, at most ``max_workers`` at once.

    ``on_done(index, outcome)`` runs in the calling thread as each item
    finishes. With one worker (or one item) everything runs in the calling
    thread. At most ``2 * max_workers`` calls are in flight, so a long
    sequence of items is not all submitted at once. KeyboardInterrupt and
    other BaseExceptions are not kept: they stop the batch.
    """
    out: list[_R | BaseException] = [None] * len(items)  # type: ignore[list-item]
    if max_workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            outcome: _R | BaseException
            try:
                outcome = fn(item)
            except Exception as e:
                outcome = e
            out[i] = outcome
            if on_done is not None:
                on_done(i, outcome)
        return out
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait  # (imported when first needed)

    workers = min(max_workers, len(items))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="persidict") as pool:
        pending: dict[Future[_R], int] = {}
        next_item = 0
        while next_item < len(items) or pending:
            while next_item < len(items) and len(pending) < 2 * workers:
                pending[pool.submit(fn, items[next_item])] = next_item
                next_item += 1
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                i = pending.pop(future)
                exc = future.exception()
                if exc is not None and not isinstance(exc, Exception):
                    for other in pending:
                        other.cancel()
                    raise exc
                out[i] = exc if exc is not None else future.result()
                if on_done is not None:
                    on_done(i, out[i])
    return out
