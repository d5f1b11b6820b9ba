"""LocalDict against two floors measured in the same run.

Floors:
  dict+lock       a plain dict; writes under a threading.Lock; values stored and returned as they are
                  (no copy: what no correct LocalDict can beat)
  deepcopy+dict   the same, with copy.deepcopy on every write and every read (the contract,
                  written as plainly as possible)
Operations (str keys "k<i>"; a ~100-byte dict value, and an int):
  get, set (overwrite), set (insert into an empty dict), contains, len() of a dict of --n items
  (half of them under the subdict "sub"; LocalDict also: len() of that subdict), and set/get of
  1 MiB bytes values.
Contestants run in interleaved rounds (each round runs each once, starting with the next one; best
round of each). Ratios are floor time / LocalDict time (1.0: as fast as the floor; higher is faster).

The script imports persidict from the folder above its own: to measure another checkout (e.g. a
worktree of HEAD), copy the script into that checkout's benchmarks folder and run it from there.

Usage: python benchmarks/bench_local.py [--n 10000] [--repeat 7] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from persidict import LocalDict

MIB = 1 << 20
N_BIG = 20


def small_value(i: int) -> dict[str, Any]:
    """A small, typical value (~100 bytes pickled)."""
    return {"id": i, "name": f"item-{i}", "tags": ["a", "b"], "score": i * 0.5}


class Floor:
    """A dict with a lock on writes; ``copies`` adds copy.deepcopy on every write and read."""

    def __init__(self, copies: bool) -> None:
        self._items: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        self._copy: Callable[[Any], Any] = copy.deepcopy if copies else (lambda v: v)

    def __getitem__(self, key: str) -> Any:
        return self._copy(self._items[(key,)])

    def __setitem__(self, key: str, value: Any) -> None:
        v = self._copy(value)
        with self._lock:
            self._items[(key,)] = v

    def __contains__(self, key: str) -> bool:
        return (key,) in self._items

    def __len__(self) -> int:
        return len(self._items)

    def put_sub(self, key: str, value: Any) -> None:
        """Store under ("sub", key)."""
        with self._lock:
            self._items[("sub", key)] = self._copy(value)


Store = Any
Op = Callable[[Store], None]


def per_key(n: int, fn: Callable[[Store, str], object]) -> Op:
    """An op running ``fn(store, key)`` for the n keys."""
    keys = [f"k{i}" for i in range(n)]

    def run(d: Store) -> None:
        for k in keys:
            fn(d, k)

    return run


def set_all(n: int, make: Callable[[int], Any]) -> Op:
    """An op storing ``make(i)`` under each of the n keys."""
    pairs = [(f"k{i}", make(i)) for i in range(n)]

    def run(d: Store) -> None:
        for k, v in pairs:
            d[k] = v

    return run


def times_of(fn: Op, d: Store, repeat_inside: int) -> float:
    """Wall time of ``fn(d)`` run ``repeat_inside`` times, per run."""
    t = time.perf_counter()
    for _ in range(repeat_inside):
        fn(d)
    return (time.perf_counter() - t) / repeat_inside


def measure(n: int, repeat: int) -> dict[str, dict[str, float]]:
    """µs per operation: {row: {contestant: µs}}."""
    makers: dict[str, Callable[[], Store]] = {
        "dict+lock": lambda: Floor(copies=False),
        "deepcopy+dict": lambda: Floor(copies=True),
        "LocalDict": LocalDict,
    }
    big = [bytes([i]) * MIB for i in range(N_BIG)]
    rows: dict[str, dict[str, float]] = {}

    def record(row: str, who: str, seconds: float, per: int) -> None:
        us = seconds / per * 1e6
        cell = rows.setdefault(row, {})
        cell[who] = min(cell.get(who, float("inf")), us)

    names = list(makers)
    for r in range(repeat):
        for j in range(len(names)):
            who = names[(r + j) % len(names)]
            # Inserts into an empty store, then every other op on the filled store.
            d = makers[who]()
            record("set, insert (small dict)", who, times_of(set_all(n, small_value), d, 1), n)
            record("set, overwrite (small dict)", who, times_of(set_all(n, small_value), d, 1), n)
            record("get (small dict)", who, times_of(per_key(n, lambda s, k: s[k]), d, 1), n)
            record("contains", who, times_of(per_key(n, lambda s, k: k in s), d, 1), n)
            record("contains, absent key", who, times_of(per_key(n, lambda s, k: (k + "x") in s), d, 1), n)
            record("set, overwrite (int)", who, times_of(set_all(n, int), d, 1), n)
            record("get (int)", who, times_of(per_key(n, lambda s, k: s[k]), d, 1), n)
            # len() of a dict of n items, half of them under "sub".
            d = makers[who]()
            half = n // 2
            for i in range(half):
                d[f"k{i}"] = i
            if isinstance(d, Floor):
                for i in range(n - half):
                    d.put_sub(f"k{i}", i)
                sub = None
            else:
                sub = d.get_subdict("sub")
                for i in range(n - half):
                    sub[f"k{i}"] = i
            assert len(d) == n
            record(f"len() of {n} items", who, times_of(len, d, 20), 1)
            if sub is not None:
                record(f"len() of a subdict of {n - half}", who, times_of(len, sub, 20), 1)
            # 1 MiB bytes values.
            d = makers[who]()

            def set_big(s: Store) -> None:
                for i, b in enumerate(big):
                    s[f"b{i}"] = b

            def get_big(s: Store) -> None:
                for i in range(N_BIG):
                    s[f"b{i}"]

            record("set 1 MiB bytes", who, times_of(set_big, d, 1), N_BIG)
            record("get 1 MiB bytes", who, times_of(get_big, d, 1), N_BIG)
    return rows


def report(rows: dict[str, dict[str, float]], n: int, repeat: int) -> str:
    """The markdown report."""
    lines = [
        f"LocalDict benchmark: {n} items, best of {repeat} interleaved rounds; Python "
        f"{platform.python_version()}, {sys.platform}, {os.cpu_count()} CPUs.",
        "Cells: µs per operation; ratio = floor time / LocalDict time (higher is faster).",
        "",
        "| operation | dict+lock µs | deepcopy+dict µs | LocalDict µs | vs dict+lock | vs deepcopy+dict |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row, cell in rows.items():
        mine = cell["LocalDict"]
        plain = cell.get("dict+lock")
        deep = cell.get("deepcopy+dict")
        if plain is None and row.startswith("len() of a subdict"):
            plain = rows[f"len() of {n} items"]["dict+lock"]
            deep = rows[f"len() of {n} items"]["deepcopy+dict"]
        assert plain is not None and deep is not None
        lines.append(
            f"| {row} | {plain:.2f} | {deep:.2f} | {mine:.2f} | {plain / mine:.2f} | {deep / mine:.2f} |"
        )
    lines.append("")
    lines.append("(The floors have no subdicts: a subdict's len() is set against their len().)")
    return "\n".join(lines)


def main() -> None:
    """Run and print (and optionally write) the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=None, help="write the markdown report here")
    args = parser.parse_args()
    text = report(measure(args.n, args.repeat), args.n, args.repeat)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
