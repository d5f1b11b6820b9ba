"""4 processes, each gathering async transform_item increments of one key: nothing is lost.

FileDirDict, LmdbDict and BasicS3Dict (a moto server over HTTP, started by the test). Each
process awaits its increments concurrently (asyncio.gather, 8 in flight) through an AsyncPersiDict, half of
them with an ``async def`` transformer (the façade's retry loop over get_with_etag and
set_item_if) and half with a sync one (the core's own loop, in a worker thread).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict import ITEM_NOT_AVAILABLE, FileDirDict, LmdbDict, PersiDict
from persidict.aio import AsyncPersiDict

from .s3_helpers import SERVER_CREDENTIALS, moto_endpoint

PROCESSES = 4
IN_FLIGHT = 8
"""Increments a process has in flight at once (all of them at once is a thundering herd on S3)."""


def _inc(v: Any) -> Any:
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


async def _ainc(v: Any) -> Any:
    await asyncio.sleep(0)
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


def async_increments(store: PersiDict[Any], key: str, n: int) -> int:
    """In a worker process: ``n`` concurrent increments of ``key``; how many left an int behind."""

    async def main() -> int:
        in_flight = asyncio.Semaphore(IN_FLIGHT)

        async def one(ad: AsyncPersiDict[Any], i: int) -> Any:
            async with in_flight:
                return await ad.transform_item(key, _ainc if i % 2 else _inc, n_retries=None)

        async with AsyncPersiDict(store, max_workers=IN_FLIGHT) as ad:
            results = await asyncio.gather(*(one(ad, i) for i in range(n)))
        return sum(isinstance(r.new_value, int) for r in results)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def pool() -> Iterator[Any]:
    """Four worker processes (spawned: each opens its own files, environment and clients)."""
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as workers:
        yield workers


def _store(kind: str, tmp_path: Path) -> PersiDict[Any]:
    if kind == "files":
        return FileDirDict(base_dir=str(tmp_path / "files"))
    if kind == "lmdb":
        return LmdbDict(base_dir=str(tmp_path / "lmdb"))
    from persidict.s3_dict import BasicS3Dict

    params: dict[str, Any] = {"endpoint_url": moto_endpoint(), **SERVER_CREDENTIALS}
    return BasicS3Dict(bucket_name="aio-processes", root_prefix=uuid.uuid4().hex, **params)


def _contend(pool: Any, store: PersiDict[Any], per_process: int) -> None:
    done = pool.starmap(async_increments, [(store, "counter", per_process)] * PROCESSES)
    assert done == [per_process] * PROCESSES
    assert store["counter"] == PROCESSES * per_process


@pytest.mark.parametrize(("kind", "per_process"), [("files", 25), ("lmdb", 25), ("s3", 10)])
def test_four_processes_lose_no_increment(kind: str, per_process: int, pool: Any, tmp_path: Path) -> None:
    _contend(pool, _store(kind, tmp_path), per_process)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["files", "lmdb", "s3"])
def test_four_processes_times_100_lose_no_increment(kind: str, pool: Any, tmp_path: Path) -> None:
    _contend(pool, _store(kind, tmp_path), 100)
