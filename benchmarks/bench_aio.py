"""The asyncio view (persidict.aio) at a region's latency, and its overhead in memory (issue 18).

S3: a moto server in its own process, behind the 20 ms latency proxy of
``bench_batch_s3.py`` (imported from it: the same server, proxy and value).
``--n`` (200) small objects are read through ``AsyncPersiDict(BasicS3Dict)``:

- ``awaited one by one``: ``for k in keys: await ad.get_item(k)``;
- ``gather``: ``await asyncio.gather(*(ad.get_item(k) for k in keys))`` on a
  view of ``--concurrency`` (16) threads;
- ``obstore``: obstore's async ``get_async`` + ``bytes_async`` and unpickling,
  with the same concurrency (an asyncio.Semaphore). obstore is not a
  dependency: ``.venv/bin/pip install obstore`` for the benchmark only;
  without it the column is skipped.

Targets: gather >= 5x one by one, and >= 0.8x obstore.

LocalDict: ``d[k]`` against ``await ad.get_item(k)`` (the view runs
in-memory stores inline), and, for reference, the same view forced to
threads (``inline=False``). Target: an awaited get costs at most 3x a sync get.

Rounds are interleaved (the order rotates) and the median of ``--rounds``
(at least 3) is printed as ratios.

    .venv/bin/python benchmarks/bench_aio.py [--n 200] [--rounds 3] [--concurrency 16] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_batch_s3 import BUCKET, VALUE, obstore_store, start_moto, start_proxy

from persidict import LocalDict
from persidict.aio import AsyncPersiDict
from persidict.s3_dict import BasicS3Dict

Contender = Callable[[list[str]], Awaitable[None]]


def ours(ad: AsyncPersiDict[Any]) -> dict[str, Contender]:
    """The view's gets, one by one and gathered."""

    async def one_by_one(keys: list[str]) -> None:
        for k in keys:
            assert await ad.get_item(k) == VALUE

    async def gather(keys: list[str]) -> None:
        values = await asyncio.gather(*(ad.get_item(k) for k in keys))
        assert all(v == VALUE for v in values)

    return {"awaited one by one": one_by_one, "gather": gather}


def obstore_gets(url: str, concurrency: int) -> Contender | None:
    """obstore's async gets, ``concurrency`` at once; None when obstore is not installed."""
    found = obstore_store(url)
    if found is None:
        return None
    obstore, store = found
    sem = asyncio.Semaphore(concurrency)

    async def get(path: str) -> Any:
        async with sem:
            r = await obstore.get_async(store, path)
            return pickle.loads(bytes(await r.bytes_async()))

    async def gather(keys: list[str]) -> None:
        values = await asyncio.gather(*(get(f"aio/{k}.pkl") for k in keys))
        assert all(v == VALUE for v in values)

    return gather


def run_s3(
    n: int, rounds: int, concurrency: int, url: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per round of each contender reading the same ``n`` objects, and the client's CPU seconds."""
    d: BasicS3Dict[Any] = BasicS3Dict(
        bucket_name=BUCKET, root_prefix="aio", endpoint_url=url, region="us-east-1"
    )
    keys = [f"k{i}" for i in range(n)]
    d.set_many({k: VALUE for k in keys})
    ad = AsyncPersiDict(d, max_workers=concurrency)
    contenders = ours(ad)
    ob = obstore_gets(url, concurrency)
    if ob is None:
        print("obstore is not installed: its column is skipped (pip install obstore)", file=sys.stderr)
    else:
        contenders["obstore"] = ob
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}

    async def main() -> None:
        await contenders["gather"](keys[:20])  # warm the threads and connections
        for r in range(rounds):
            for who in names[r % len(names) :] + names[: r % len(names)]:
                t, c = time.perf_counter(), time.process_time()
                await contenders[who](keys)
                samples[who].append(time.perf_counter() - t)
                cpu[who].append(time.process_time() - c)
                print(f"round {r + 1} {who:>18}: {samples[who][-1]:.3f} s", file=sys.stderr)
        await ad.aclose()

    asyncio.run(main())
    return samples, cpu


def run_local(rounds: int, reps: int = 50_000) -> dict[str, list[float]]:
    """Microseconds per get: sync, awaited (inline), awaited through threads."""
    d: LocalDict[Any] = LocalDict()
    d["k"] = VALUE
    inline = AsyncPersiDict(d)
    threaded = AsyncPersiDict(d, inline=False)
    names = ("sync d[k]", "await get_item (inline)", "await get_item (threads)")
    samples: dict[str, list[float]] = {name: [] for name in names}

    def sync() -> float:
        t = time.perf_counter()
        for _ in range(reps):
            d["k"]
        return (time.perf_counter() - t) / reps * 1e6

    async def awaited(ad: AsyncPersiDict[Any], n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            await ad.get_item("k")
        return (time.perf_counter() - t) / n * 1e6

    for r in range(rounds):
        order = list(samples)[r % 3 :] + list(samples)[: r % 3]
        for who in order:
            if who == "sync d[k]":
                samples[who].append(sync())
            elif who == "await get_item (inline)":
                samples[who].append(asyncio.run(awaited(inline, reps)))
            else:
                samples[who].append(asyncio.run(awaited(threaded, reps // 20)))
    asyncio.run(threaded.aclose())
    return samples


def report(
    s3: tuple[dict[str, list[float]], dict[str, list[float]]],
    local: dict[str, list[float]],
    n: int,
    rounds: int,
    conc: int,
) -> str:
    """Markdown tables of medians, with the ratios the targets speak of."""
    med = {k: statistics.median(v) for k, v in s3[0].items()}
    cpu = {k: statistics.median(v) for k, v in s3[1].items()}
    lines = [
        f"S3 (moto + 20 ms proxy): {n} gets, concurrency {conc}, median of {rounds} interleaved rounds",
        "",
        "| contender | seconds | gets/s | client CPU ms per get |",
        "|---|---|---|---|",
    ]
    for who, sec in med.items():
        lines.append(f"| {who} | {sec:.3f} | {n / sec:.0f} | {cpu[who] / n * 1e3:.2f} |")
    lines.append("")
    speedup = med["awaited one by one"] / med["gather"]
    lines.append(f"- gather vs awaited one by one: **{speedup:.1f}x** (target >= 5x)")
    if "obstore" in med:
        lines.append(f"- gather vs obstore: **{med['obstore'] / med['gather']:.2f}x** (target >= 0.8x)")
        ceiling = med["awaited one by one"] / med["obstore"]
        lines.append(f"- obstore vs awaited one by one: {ceiling:.1f}x (the server's ceiling, any client)")
    lmed = {k: statistics.median(v) for k, v in local.items()}
    base = lmed["sync d[k]"]
    lines += ["", f"LocalDict: µs per get, median of {rounds} interleaved rounds", ""]
    lines += ["| get | µs | vs sync |", "|---|---|---|"]
    for who, us in lmed.items():
        lines.append(f"| {who} | {us:.2f} | {us / base:.2f}x |")
    lines.append("")
    overhead = lmed["await get_item (inline)"] / base
    lines.append(f"- awaited get vs sync get: **{overhead:.2f}x** (target <= 3x)")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, start the server and the proxy, run and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args()
    rounds = max(3, args.rounds)
    load = os.getloadavg()[0]
    local = run_local(rounds)
    moto, moto_port = start_moto()
    proxy, url = start_proxy(moto_port, args.latency_ms)
    try:
        s3 = run_s3(args.n, rounds, args.concurrency, url)
    finally:
        proxy.terminate()
        moto.terminate()
    table = report(s3, local, args.n, rounds, args.concurrency)
    table += f"\nLoad average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.\n"
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
