"""The wrappers against the dict they wrap, measured in the same run.

Floor: the same operation on the wrapped dict alone (what you would use
without the wrapper). Ratios are floor time / wrapper time (1.0: no cost;
above 1: the wrapper is faster, as a cache should be for big values).

  MutableDictCached(FileDirDict) get   warm cache: one os.stat validates, the value comes from memory
  AppendOnlyDictCached(FileDirDict) get  warm cache: no validation at all
  MutableDictCached(FileDirDict) set   write + mirror into the caches
  WriteOnceDict(FileDirDict) rewrite   a repeated write of an existing key (p=0): one stat, no write
  ExpiringDict(LocalDict) get          timestamp check + read
  MutableDictCached(LocalDict) get     the pure bookkeeping cost of the cache

Usage: python benchmarks/bench_wrappers.py [--n 2000] [--big-mb 1] [--n-big 20] [--repeat 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from persidict import LocalDict, PersiDict
from persidict.file_dir_dict import FileDirDict
from persidict.wrappers.cached import AppendOnlyDictCached, MutableDictCached
from persidict.wrappers.expiring import ExpiringDict
from persidict.wrappers.write_once import WriteOnceDict


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The best wall time of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def reads(d: PersiDict[Any], keys: list[str]) -> Callable[[], None]:
    """Read every key."""

    def run() -> None:
        for k in keys:
            d[k]

    return run


def writes(d: PersiDict[Any], keys: list[str], value: Any) -> Callable[[], None]:
    """Write every key."""

    def run() -> None:
        for k in keys:
            d[k] = value

    return run


def main() -> None:
    """Run the comparisons and print (and optionally write) a markdown table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--big-mb", type=float, default=1.0)
    ap.add_argument("--n-big", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="persidict-bench-wrappers-")
    rows: list[tuple[str, str, float, float]] = []

    def compare(name: str, size: str, floor: Callable[[], None], wrapped: Callable[[], None], n: int) -> None:
        floor()  # warm both (and fill the caches)
        wrapped()
        f = best(floor, a.repeat) / n
        w = best(wrapped, a.repeat) / n
        rows.append((name, size, f * 1e6, w * 1e6))

    try:
        small = b"x" * 100
        big = os.urandom(int(a.big_mb * 2**20))
        for label, value, n in (("100 B", small, a.n), (f"{a.big_mb:g} MB", big, a.n_big)):
            keys = [f"k{i}" for i in range(n)]
            folder = tempfile.mkdtemp(dir=root)
            files: FileDirDict[bytes] = FileDirDict(base_dir=folder, durable=False)
            for k in keys:
                files[k] = value
            cached = MutableDictCached(main_dict=files, data_cache=LocalDict(), etag_cache=LocalDict())
            compare("MutableDictCached(FileDirDict) get", label, reads(files, keys), reads(cached, keys), n)

            ao_folder = tempfile.mkdtemp(dir=root)
            ao_files: FileDirDict[bytes] = FileDirDict(base_dir=ao_folder, durable=False, append_only=True)
            for k in keys:
                ao_files[k] = value
            ao = AppendOnlyDictCached(main_dict=ao_files, data_cache=LocalDict(append_only=True))
            compare("AppendOnlyDictCached(FileDirDict) get", label, reads(ao_files, keys), reads(ao, keys), n)

            compare(
                "MutableDictCached(FileDirDict) set",
                label,
                writes(files, keys, value),
                writes(cached, keys, value),
                n,
            )
            once = WriteOnceDict(wrapped_dict=ao_files)
            # Floor: the cheapest way to skip a rewrite by hand ("if k not in d: d[k] = v").
            def skip_by_hand(d: Any = ao_files, ks: list[str] = keys, v: bytes = value) -> None:
                for k in ks:
                    if k not in d:
                        d[k] = v

            compare("WriteOnceDict(FileDirDict) rewrite", label, skip_by_hand, writes(once, keys, value), n)

        n = a.n
        keys = [f"k{i}" for i in range(n)]
        local: LocalDict[bytes] = LocalDict()
        for k in keys:
            local[k] = small
        expiring = ExpiringDict(wrapped_dict=local, expiration_days=30)
        compare("ExpiringDict(LocalDict) get", "100 B", reads(local, keys), reads(expiring, keys), n)
        lcached = MutableDictCached(main_dict=local, data_cache=LocalDict(), etag_cache=LocalDict())
        compare("MutableDictCached(LocalDict) get", "100 B", reads(local, keys), reads(lcached, keys), n)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    lines = [
        "# Wrappers: cost against the wrapped dict alone (same run)",
        "",
        f"n = {a.n} small items, {a.n_big} big items, best of {a.repeat}; FileDirDict with durable=False.",
        "Ratio = floor / wrapper (higher is faster; > 1: the wrapper beats the dict it wraps).",
        "",
        "| operation | value | floor (wrapped dict alone), µs/op | wrapper, µs/op | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for name, size, f, w in rows:
        lines.append(f"| {name} | {size} | {f:.1f} | {w:.1f} | {f / w:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
