"""The hot paths that key equality touches, as ratios to a floor measured in the same process.

Keys are used as dict keys in the stores' caches (StoreDict targets, LmdbDict
LMDB keys), and a key's ``__eq__`` is Python code (a key equals the str or
list it stands for): a cache holding keys would run it whenever a lookup
finds the right hash under another object. This measures ``d[k]``,
``d[k] = v`` and ``k in d`` on LocalDict, FileDirDict(durable=False) and
LmdbDict(durable=False) with:

  str      "k0", "k1", ... (a new key object built from the str on each call)
  tuple    ("g", "k0"), ... (plain tuples: to_key's cached key objects)
  listed   the keys as iteration yields them (both sets, other objects than
           the ones the caches were filled with)

Floor: ``plain[t]``, a plain dict looked up with plain tuples equal to (not
the same objects as) its keys. A cell is ns per key / floor ns (lower is
faster). Rounds are interleaved (each contestant once per round, a different
one first each round) and the best round of each counts.

``--against FOLDER`` compares with another checkout (e.g. a git worktree of
the code before a change): each checkout is measured alone in its own
processes, alternating (``--processes`` each), since two versions imported
into one process disturb each other's figures by several percent; each
process's cells are taken relative to its own floor (whole processes run
faster or slower by as much), and the best of every cell counts. The last
columns are this checkout's figure / the other's.

Usage: python benchmarks/bench_keys.py [--n 200] [--repeat 40] [--dir FOLDER]
                                       [--against CHECKOUT [--processes 5]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def _checkout() -> str:
    """The checkout whose persidict is measured: ``--checkout FOLDER``, else this script's."""
    if "--checkout" in sys.argv:
        return os.path.abspath(sys.argv[sys.argv.index("--checkout") + 1])
    return os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


sys.path.insert(0, _checkout())

import persidict  # noqa: E402 - from the checkout measured


def reads(d: Any, keys: list[Any]) -> Callable[[], None]:
    """``d[k]`` for every key."""

    def run() -> None:
        for k in keys:
            d[k]

    return run


def writes(d: Any, keys: list[Any]) -> Callable[[], None]:
    """``d[k] = 1`` for every key."""

    def run() -> None:
        for k in keys:
            d[k] = 1

    return run


def contains(d: Any, keys: list[Any]) -> Callable[[], None]:
    """``k in d`` for every key."""

    def run() -> None:
        for k in keys:
            k in d  # noqa: B015 - the lookup is what is timed

    return run


def key_sets(d: Any, n: int) -> dict[str, list[Any]]:
    """The str, tuple and listed keys of ``d`` (filled with all of them, caches warm)."""
    strs = [f"k{i}" for i in range(n)]
    tuples = [("g", f"k{i}") for i in range(n)]
    for k in strs + tuples:
        d[k] = 1
    for k in strs + tuples:
        d[k]  # warm the caches with the keys built from str and tuple
    listed = [k for k in d if isinstance(k, tuple)]
    return {"str": strs, "tuple": [tuple(t) for t in tuples], "listed": listed}


def stores(folder: str) -> dict[str, Any]:
    """The stores measured, empty, in ``folder``."""
    from persidict.file_dir_dict import FileDirDict
    from persidict.lmdb_dict import LmdbDict

    return {
        "LocalDict": persidict.LocalDict(),
        "FileDirDict": FileDirDict(base_dir=os.path.join(folder, "files"), durable=False),
        "LmdbDict": LmdbDict(base_dir=os.path.join(folder, "lmdb"), durable=False),
    }


OPS = {"get": reads, "set": writes, "in": contains}


def measure(n: int, repeat: int, folder: str) -> dict[str, float]:
    """ns per key of every cell ("store kind op"), and of the floor, in this process."""
    plain = {("g", f"k{i}"): 1 for i in range(n)}
    probe = [("g", "k" + str(i)) for i in range(n)]  # equal tuples, other objects
    fns: dict[str, Callable[[], Any]] = {"floor": reads(plain, probe)}
    counts = {"floor": n}
    for store_name, d in stores(folder).items():
        for kind, keys in key_sets(d, n).items():
            for op, make in OPS.items():
                fns[f"{store_name} {kind} {op}"] = make(d, keys)
                counts[f"{store_name} {kind} {op}"] = len(keys)
    times = interleaved(fns, repeat)
    return {name: t / counts[name] * 1e9 for name, t in times.items()}


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """The best wall time of each of ``fns`` over ``repeat`` rounds that run each once (in turn first)."""
    names = list(fns)
    best = dict.fromkeys(names, float("inf"))
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            fns[name]()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def measure_in_processes(checkouts: list[str], a: argparse.Namespace) -> list[dict[str, float]]:
    """Each checkout measured alone in ``a.processes`` processes, alternating.

    A process's cells are taken relative to its own floor (processes differ
    by several percent as a whole); the best of each cell counts. The floor
    is then 1.0, and "floor ns" the best floor in ns.
    """
    best: list[dict[str, float]] = [{} for _ in checkouts]
    for p in range(a.processes):
        order = list(enumerate(checkouts))
        for i, checkout in order[p % 2 :] + order[: p % 2]:  # each checkout first in turn
            cmd = [sys.executable, os.path.abspath(__file__), "--json", "--checkout", checkout]
            cmd += ["--n", str(a.n), "--repeat", str(a.repeat)] + (["--dir", a.dir] if a.dir else [])
            ns = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            relative = {name: x / ns["floor"] for name, x in ns.items()}
            relative["floor ns"] = ns["floor"]
            for name, x in relative.items():
                best[i][name] = min(best[i].get(name, float("inf")), x)
    return best


def print_table(results: list[dict[str, float]]) -> None:
    """One row per store and kind of key: ns per key / floor ns (then this / against, if measured)."""
    rows = sorted({name.rsplit(" ", 1)[0] for name in results[0] if "floor" not in name}, key=_row_order)
    header = [*OPS]
    if len(results) > 1:
        header += [f"{op} against" for op in OPS] + [f"{op} this/against" for op in OPS]
    print(" / ".join(f"floor {r.get('floor ns', r['floor']):.1f} ns" for r in results))
    print("| store | keys | " + " | ".join(header) + " |")
    print("|---|---|" + "---|" * len(header))
    for row in rows:
        ratios = [[r[f"{row} {op}"] / r["floor"] for op in OPS] for r in results]
        cells = [f"{x:.2f}" for rs in ratios for x in rs]
        if len(results) > 1:
            cells += [f"{results[0][f'{row} {op}'] / results[1][f'{row} {op}']:.2f}" for op in OPS]
        store, kind = row.split()
        print(f"| {store} | {kind} | " + " | ".join(cells) + " |")


def _row_order(row: str) -> tuple[int, int]:
    store, kind = row.split()
    return (["LocalDict", "FileDirDict", "LmdbDict"].index(store), ["str", "tuple", "listed"].index(kind))


def main() -> None:
    """Measure, and print a markdown table (or, with --json, this process's figures)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--against", default=None, help="another checkout, measured in alternating processes")
    ap.add_argument("--processes", type=int, default=5, help="processes per checkout with --against")
    ap.add_argument("--json", action="store_true", help="measure in this process only and print JSON")
    ap.add_argument("--checkout", default=None, help="measure this checkout's persidict (default: this one)")
    a = ap.parse_args()
    assert os.path.abspath(persidict.__file__).startswith(_checkout() + os.sep), persidict.__file__
    if a.against:
        print_table(measure_in_processes([_checkout(), os.path.abspath(a.against)], a))
        return
    folder = tempfile.mkdtemp(prefix="persidict-bench-keys-", dir=a.dir)
    try:
        results = measure(a.n, a.repeat, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if a.json:
        print(json.dumps(results))
    else:
        print_table([results])


if __name__ == "__main__":
    main()
