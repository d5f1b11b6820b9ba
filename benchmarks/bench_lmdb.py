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

Usage: python benchmarks/bench_lmdb.py [--n 5000] [--repeat 7] [--out PATH] [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
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


def report(rows: list[tuple[str, float, float, float | None]], n: int) -> str:
    """A markdown table of the rows, with the targets checked."""
    lines = [
        f"LmdbDict vs raw lmdb + pickle and diskcache ({n} items, ~100-byte values, best of runs; "
        "ratio = other time / LmdbDict time, higher is better for LmdbDict)",
        "",
        "| operation | raw lmdb µs | LmdbDict µs | diskcache µs | vs raw | vs diskcache | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, floor, ours, peer in rows:
        vs_raw = floor / ours
        vs_dc = None if peer is None else peer / ours
        target = ""
        if name in TARGETS:
            t_raw, t_dc = TARGETS[name]
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
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=None, help="write the markdown report here")
    parser.add_argument("--dir", default=None, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    text = report(run(args.n, args.repeat, args.dir), args.n)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
