"""LmdbDict against raw lmdb + pickle and diskcache, measured in the same run.

Floors (raw lmdb + pickle, as short as correct code can be):
  get                  one read transaction: txn.get + pickle.loads
  set (durable)        one write transaction per item, synced on commit
  set (sync off)       one write transaction per item, sync=False, metasync=False
  set (batched)        every item in one write transaction (LmdbDict: ``with d.transaction()``
                       around ``d[k] = v``, and ``d.update(items)``, which is one transaction)
  contains             one read transaction: txn.get is not None
  iterate              one read transaction: a cursor over every key (LmdbDict: again, and
                       a new dict's first pass, before it has decoded any listed name)
Contestants of a row run in interleaved rounds (best round of each).
Ratios are floor time / LmdbDict time (1.0: as fast as raw lmdb; higher is faster).
diskcache.Cache is the peer: "vs diskcache" is diskcache time / LmdbDict time.

Targets: get >= 1.5x diskcache and >= 0.2x raw lmdb; durable set >= 0.8x raw
per-operation durable; batched set >= 0.5x raw batched.

Batches (issue 14), ``--batch-n`` items (10,000), each row the MEDIAN of interleaved rounds
(garbage collector off while timed, as in ``timeit``):
  write                raw: every item in one write transaction; LmdbDict: ``update(items)`` and
                       ``set_many(items)`` (one transaction each)                  target >= 0.6x raw
  read                 raw: every key in one read transaction, into a dict; LmdbDict: ``get_many(keys)``
                       (an LmdbDict without it, the code before: a loop of ``d[k]``) target >= 0.8x raw
  len()                raw: ``txn.stat()["entries"]``; LmdbDict: ``len(d)`` of a dict without expiry,
                       at 3,000 and at 30,000 keys (constant time: the same)      target >= 0.1x raw
  iterate              raw: a cursor over every key; LmdbDict: ``list(d)``          target >= 0.25x raw

Usage: python benchmarks/bench_lmdb.py [--n 5000] [--batch-n 10000] [--repeat 7] [--only-batches]
       [--out PATH] [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import diskcache
import lmdb

from persidict.lmdb_dict import LmdbDict

MAP = 1 << 30


def best(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> float:
    """The best wall time of ``repeat`` runs of ``fn`` (``setup`` before each, untimed)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """The best wall time of each of ``fns`` over ``repeat`` rounds that run each once.

    Each round starts with the next contestant: a machine whose speed drifts
    during the run slows every contestant alike.
    """
    times = [float("inf")] * len(fns)
    for r in range(repeat):
        for j in range(len(fns)):
            i = (r + j) % len(fns)
            t = time.perf_counter()
            fns[i]()
            times[i] = min(times[i], time.perf_counter() - t)
    return times


def interleaved_median(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """The median wall time of each of ``fns`` over ``max(repeat, 3)`` interleaved rounds (each runs once).

    As ``timeit`` does, the garbage collector is off while a contestant runs
    (and collects before it): otherwise whoever happens to trigger a full
    collection of the process pays for every object the others keep.
    """
    times: list[list[float]] = [[] for _ in fns]
    for r in range(max(repeat, 3)):
        for j in range(len(fns)):
            i = (r + j) % len(fns)
            gc.collect()
            gc.disable()
            try:
                t = time.perf_counter()
                fns[i]()
                times[i].append(time.perf_counter() - t)
            finally:
                gc.enable()
    return [statistics.median(ts) for ts in times]


def value(i: int) -> dict[str, Any]:
    """A small, typical value (~100 bytes pickled)."""
    return {"id": i, "name": f"item-{i}", "tags": ["a", "b"], "score": i * 0.5}


class Raw:
    """Raw lmdb + pickle: the floor."""

    def __init__(self, path: str, durable: bool) -> None:
        self.env = lmdb.open(path, map_size=MAP, sync=durable, metasync=durable)

    def set_each(self, keys: list[bytes], values: list[Any]) -> None:
        env = self.env
        for k, v in zip(keys, values, strict=True):
            with env.begin(write=True) as txn:
                txn.put(k, pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL))

    def set_batched(self, keys: list[bytes], values: list[Any]) -> None:
        with self.env.begin(write=True) as txn:
            for k, v in zip(keys, values, strict=True):
                txn.put(k, pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL))

    def get_each(self, keys: list[bytes]) -> None:
        env = self.env
        loads = pickle.loads
        for k in keys:
            with env.begin() as txn:
                data = txn.get(k)
            assert data is not None
            loads(data)

    def contains_each(self, keys: list[bytes]) -> None:
        env = self.env
        for k in keys:
            with env.begin() as txn:
                assert txn.get(k) is not None

    def iterate(self) -> int:
        with self.env.begin() as txn:
            return sum(1 for _ in txn.cursor().iternext(values=False))

    def get_batched(self, keys: list[bytes]) -> dict[bytes, Any]:
        loads = pickle.loads
        with self.env.begin() as txn:
            return {k: loads(txn.get(k)) for k in keys}  # type: ignore[arg-type]

    def keys(self) -> list[bytes]:
        with self.env.begin() as txn:
            return list(txn.cursor().iternext(values=False))

    def count(self) -> int:
        with self.env.begin() as txn:
            entries: int = txn.stat()["entries"]
            return entries


def run_batches(
    n: int, repeat: int, folder: str | None = None
) -> list[tuple[str, float, float, float | None]]:
    """The batch rows (issue 14): (operation, floor µs/item, LmdbDict µs/item, None), medians."""
    tmp = tempfile.mkdtemp(prefix="bench-lmdb-batch-", dir=folder)
    keys = [f"k{i}" for i in range(n)]
    bkeys = [k.encode() for k in keys]
    values = [value(i) for i in range(n)]
    pairs = dict(zip(keys, values, strict=True))
    rows: list[tuple[str, float, float, float | None]] = []
    try:
        raw = Raw(os.path.join(tmp, "raw"), False)
        d = LmdbDict[Any](base_dir=os.path.join(tmp, "ld"), map_size=MAP, durable=False)
        set_many = getattr(d, "set_many", d.update)  # (the code before issue 14 has update() only)
        raw.set_batched(bkeys, values)
        d.update(pairs)
        t_raw, t_up, t_sm = interleaved_median(
            [lambda: raw.set_batched(bkeys, values), lambda: d.update(pairs), lambda: set_many(pairs)], repeat
        )
        rows.append((f"batch write {n} items: update() (1 txn)", t_raw / n, t_up / n, None))
        rows.append((f"batch write {n} items: set_many() (1 txn)", t_raw / n, t_sm / n, None))

        get_many: Callable[[list[str]], Any] = getattr(d, "get_many", None) or (
            lambda ks: {k: d[k] for k in ks}  # (the code before issue 14: a loop of d[k])
        )
        assert len(get_many(keys)) == len(raw.get_batched(bkeys)) == n
        t_raw, t_gm = interleaved_median([lambda: raw.get_batched(bkeys), lambda: get_many(keys)], repeat)
        rows.append((f"batch read {n} items: get_many() (1 read txn)", t_raw / n, t_gm / n, None))

        t_raw, t_it = interleaved_median([raw.keys, lambda: list(d)], repeat)
        rows.append((f"batch iterate {n} keys: list(d)", t_raw / n, t_it / n, None))

        for count in (3000, 30000):
            sub_raw = Raw(os.path.join(tmp, f"raw-{count}"), False)
            sub = LmdbDict[Any](base_dir=os.path.join(tmp, f"ld-{count}"), map_size=MAP, durable=False)
            ks = [f"c{i}" for i in range(count)]
            sub_raw.set_batched([k.encode() for k in ks], list(range(count)))
            sub.update(dict.fromkeys(ks, 0))
            assert len(sub) == sub_raw.count() == count
            # (a slow len(), the code before, gets fewer calls: the time per call is what counts)
            calls = 20 if _per_call(sub.__len__) > 1e-4 else 2000

            def raw_len(r: Raw = sub_raw, calls: int = calls) -> None:
                for _ in range(calls):
                    r.count()

            def ld_len(x: LmdbDict[Any] = sub, calls: int = calls) -> None:
                for _ in range(calls):
                    len(x)

            t_raw, t_len = interleaved_median([raw_len, ld_len], repeat)
            rows.append((f"batch len() at {count} keys (per call)", t_raw / calls, t_len / calls, None))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _per_call(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes (a first estimate)."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(n: int, repeat: int, folder: str | None = None) -> list[tuple[str, float, float, float | None]]:
    """(operation, floor µs/op, LmdbDict µs/op, diskcache µs/op)."""
    tmp = tempfile.mkdtemp(prefix="bench-lmdb-", dir=folder)
    keys = [f"k{i}" for i in range(n)]
    bkeys = [k.encode() for k in keys]
    values = [value(i) for i in range(n)]
    rows: list[tuple[str, float, float, float | None]] = []
    try:
        raw_durable = Raw(os.path.join(tmp, "raw-durable"), True)
        raw_fast = Raw(os.path.join(tmp, "raw-fast"), False)
        durable = LmdbDict[Any](base_dir=os.path.join(tmp, "ld-durable"), map_size=MAP)
        fast = LmdbDict[Any](base_dir=os.path.join(tmp, "ld-fast"), map_size=MAP, durable=False)
        cache = diskcache.Cache(os.path.join(tmp, "diskcache"))
        m = min(n, 200)  # durable writes are slow: time fewer of them

        def ld_set(d: LmdbDict[Any], count: int) -> Callable[[], None]:
            def go() -> None:
                for k, v in zip(keys[:count], values[:count], strict=True):
                    d[k] = v

            return go

        def ld_batched() -> None:
            with fast.transaction():
                for k, v in zip(keys, values, strict=True):
                    fast[k] = v

        def dc_set(count: int) -> Callable[[], None]:
            def go() -> None:
                for k, v in zip(keys[:count], values[:count], strict=True):
                    cache[k] = v

            return go

        # Durable writes wait for the disk, whose speed drifts: interleave the rounds.
        t_raw = t_ld = t_dc = float("inf")
        for _ in range(max(repeat, 5)):
            t_raw = min(t_raw, best(lambda: raw_durable.set_each(bkeys[:m], values[:m]), 1) / m)
            t_ld = min(t_ld, best(ld_set(durable, m), 1) / m)
            t_dc = min(t_dc, best(dc_set(m), 1) / m)
        rows.append(("set (durable, 1 txn/op)", t_raw, t_ld, t_dc))

        t_raw, t_ld = interleaved([lambda: raw_fast.set_each(bkeys, values), ld_set(fast, n)], repeat)
        rows.append(("set (sync off, 1 txn/op)", t_raw / n, t_ld / n, None))

        pairs = dict(zip(keys, values, strict=True))
        t_raw, t_ld, t_up = interleaved(
            [lambda: raw_fast.set_batched(bkeys, values), ld_batched, lambda: fast.update(pairs)], repeat
        )
        rows.append(("set (batched, 1 txn)", t_raw / n, t_ld / n, None))
        rows.append(("set (batched: update(), 1 txn)", t_raw / n, t_up / n, None))

        cache.clear()
        dc_set(n)()

        def ld_get() -> None:
            for k in keys:
                fast[k]

        def dc_get() -> None:
            for k in keys:
                cache[k]

        t_raw, t_ld, t_dc = interleaved([lambda: raw_fast.get_each(bkeys), ld_get, dc_get], repeat)
        rows.append(("get", t_raw / n, t_ld / n, t_dc / n))

        def ld_contains() -> None:
            for k in keys:
                assert k in fast

        def dc_contains() -> None:
            for k in keys:
                assert k in cache

        t_raw, t_ld, t_dc = interleaved(
            [lambda: raw_fast.contains_each(bkeys), ld_contains, dc_contains], repeat
        )
        rows.append(("contains", t_raw / n, t_ld / n, t_dc / n))

        t_raw, t_ld, t_dc = interleaved(
            [raw_fast.iterate, lambda: sum(1 for _ in fast), lambda: sum(1 for _ in cache.iterkeys())], repeat
        )
        rows.append(("iterate keys (per key)", t_raw / n, t_ld / n, t_dc / n))

        def ld_first_pass() -> None:  # a new dict: its caches of listed names are empty
            sum(1 for _ in LmdbDict[Any](base_dir=os.path.join(tmp, "ld-fast"), durable=False))

        t_raw, t_ld, t_dc = interleaved(
            [raw_fast.iterate, ld_first_pass, lambda: sum(1 for _ in cache.iterkeys())], repeat
        )
        rows.append(("iterate keys, a new dict's first pass", t_raw / n, t_ld / n, t_dc / n))

        cached = LmdbDict[Any](base_dir=os.path.join(tmp, "ld-fast"), durable=False, cache_size=n)

        def cached_get() -> None:
            for k in keys:
                cached[k]

        cached_get()
        t_ld = best(cached_get, repeat) / n
        get_row = next(r for r in rows if r[0] == "get")
        rows.append(("get (cache_size=n, warm)", get_row[1], t_ld, get_row[3]))

        # Larger values (a 2000-item list, ~20 KB): decoding dominates, the cache skips it.
        big_keys = keys[:200]
        big = [list(range(i, i + 2000)) for i in range(len(big_keys))]
        raw_fast.set_batched(bkeys[:200], big)
        fast.update(zip(big_keys, big, strict=True))
        for k, v in zip(big_keys, big, strict=True):
            cache[k] = v
        big_cached = LmdbDict[Any](base_dir=os.path.join(tmp, "ld-fast"), durable=False, cache_size=n)

        def big_get(d: LmdbDict[Any] | diskcache.Cache) -> Callable[[], None]:
            def go() -> None:
                for k in big_keys:
                    d[k]

            return go

        big_get(big_cached)()
        t_raw, t_ld, t_dc, t_cached = interleaved(
            [lambda: raw_fast.get_each(bkeys[:200]), big_get(fast), big_get(cache), big_get(big_cached)],
            repeat,
        )
        rows.append(("get 20 KB values", t_raw / 200, t_ld / 200, t_dc / 200))
        rows.append(("get 20 KB values (cache_size=n, warm)", t_raw / 200, t_cached / 200, t_dc / 200))
        cache.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


TARGETS = {
    "get": (0.2, 1.5),
    "set (durable, 1 txn/op)": (0.8, None),
    "set (batched, 1 txn)": (0.5, None),
    "set (batched: update(), 1 txn)": (0.5, None),
}

BATCH_TARGETS = {  # (the start of a row's name: the least ratio to raw lmdb)
    "batch write": 0.6,
    "batch read": 0.8,
    "batch iterate": 0.25,
    "batch len()": 0.1,
}


def _target(name: str) -> tuple[float, float | None] | None:
    """The (raw, diskcache) target of a row, if it has one."""
    if name in TARGETS:
        return TARGETS[name]
    for start, t_raw in BATCH_TARGETS.items():
        if name.startswith(start):
            return (t_raw, None)
    return None


def report(rows: list[tuple[str, float, float, float | None]], n: int, title: str | None = None) -> str:
    """A markdown table of the rows, with the targets checked."""
    lines = [
        title
        or f"LmdbDict vs raw lmdb + pickle and diskcache ({n} items, ~100-byte values, best of runs; "
        "ratio = other time / LmdbDict time, higher is better for LmdbDict)",
        "",
        "| operation | raw lmdb µs | LmdbDict µs | diskcache µs | vs raw | vs diskcache | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, floor, ours, peer in rows:
        vs_raw = floor / ours
        vs_dc = None if peer is None else peer / ours
        target = ""
        wanted = _target(name)
        if wanted is not None:
            t_raw, t_dc = wanted
            ok = vs_raw >= t_raw and (t_dc is None or (vs_dc is not None and vs_dc >= t_dc))
            target = f">= {t_raw}x raw" + (f", >= {t_dc}x diskcache" if t_dc else "")
            target += " — " + ("met" if ok else "MISSED")
        lines.append(
            f"| {name} | {floor * 1e6:.2f} | {ours * 1e6:.2f} | "
            f"{'' if peer is None else f'{peer * 1e6:.2f}'} | {vs_raw:.2f} | "
            f"{'' if vs_dc is None else f'{vs_dc:.2f}'} | {target} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run and print (and optionally write) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batch-n", type=int, default=10000, help="items of the batch rows (issue 14)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only-batches", action="store_true", help="run the batch rows only")
    parser.add_argument("--out", default=None, help="write the markdown report here")
    parser.add_argument("--dir", default=None, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    text = "" if args.only_batches else report(run(args.n, args.repeat, args.dir), args.n) + "\n"
    title = (
        f"LmdbDict batches vs raw lmdb + pickle ({args.batch_n} items, ~100-byte values, median of "
        f"{max(args.repeat, 3)} interleaved rounds; ratio = raw time / LmdbDict time, higher is better)"
    )
    text += report(run_batches(args.batch_n, args.repeat, args.dir), args.batch_n, title)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
