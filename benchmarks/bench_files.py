"""FileDirDict against the filesystem's own speed, measured in the same run.

Floors (written here, as short as correct code can be):
  set (durable)      pickle.dumps, temp file, write, fsync, os.replace, fsync of the folder
  set (not durable)  the same without the two fsyncs
  get                open + read + pickle.loads
  contains           os.stat
  iterate            a bare recursive os.scandir walk counting files ("cold": the store's
                     first pass, before its decoded-name cache is warm)
  delete             os.unlink (durable: and fsync of the folder)
Ratios are floor time / store time (1.0: as fast as the floor; higher is faster).
diskcache and sqlitedict are printed beside them as peers.

Usage: python benchmarks/bench_files.py [--n 5000] [--big 20] [--repeat 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from persidict.file_dir_dict import FileDirDict

Timing = dict[str, float]


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


# ---------------------------------------------------------------- floors


def floor_set(folder: str, items: Iterable[tuple[str, Any]], durable: bool) -> None:
    """Atomic writes done by hand."""
    for name, value in items:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        path = os.path.join(folder, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.write(fd, data)
        if durable:
            os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
        if durable:
            dfd = os.open(folder, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)


def floor_get(folder: str, names: Iterable[str]) -> None:
    """Reads done by hand."""
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            pickle.loads(f.read())


def floor_contains(folder: str, names: Iterable[str]) -> None:
    """Existence checks done by hand."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.stat(os.path.join(folder, name))


def floor_walk(folder: str) -> int:
    """A bare recursive scandir walk."""
    n = 0
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    n += 1
    return n


def floor_delete(folder: str, names: Iterable[str], durable: bool) -> None:
    """Deletes done by hand (durable: then fsync the folder)."""
    for name in names:
        os.unlink(os.path.join(folder, name))
        if durable:
            dfd = os.open(folder, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)


def floor_get_raw(folder: str, names: Iterable[str]) -> None:
    """Reads with os.open/os.read, below Python's io stack."""
    for name in names:
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        data = os.read(fd, 1 << 16)
        os.close(fd)
        pickle.loads(data)


# ---------------------------------------------------------------- stores


def run_store(make: Callable[[], Any], keys: list[str], values: list[Any], repeat: int) -> Timing:
    """Time one dict-like store on every operation."""
    out: Timing = {}
    store = make()
    pairs = list(zip(keys, values, strict=True))

    def clear() -> None:
        for k in list(iter(store)):
            del store[k]

    def set_all() -> None:
        for k, v in pairs:
            store[k] = v

    out["set"] = best(set_all, repeat, clear)
    out["overwrite"] = best(set_all, repeat)

    def get_all() -> None:
        for k in keys:
            store[k]

    out["get"] = best(get_all, repeat)

    def contains_all() -> None:
        for k in keys:
            _ = k in store

    out["contains"] = best(contains_all, repeat)

    def iterate() -> None:
        n = sum(1 for _ in iter(store))
        assert n == len(keys), n

    cold = make()  # a fresh dict object: no decoded names cached yet
    out["iterate cold"] = best(lambda: sum(1 for _ in iter(cold)), 1)
    out["iterate"] = best(iterate, repeat)

    def delete_all() -> None:
        for k in keys:
            del store[k]

    out["delete"] = best(delete_all, repeat, set_all)
    close = getattr(store, "close", None)
    if close is not None:
        close()
    return out


def run_floor(folder: str, keys: list[str], values: list[Any], repeat: int, durable: bool) -> Timing:
    """Time the floors on files named like FileDirDict's."""
    names = [k + ".pkl" for k in keys]
    pairs = list(zip(names, values, strict=True))
    out: Timing = {}

    def clear() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)

    def set_all() -> None:
        floor_set(folder, pairs, durable)

    out["set"] = best(set_all, repeat, clear)
    out["overwrite"] = best(set_all, repeat)
    out["get"] = best(lambda: floor_get(folder, names), repeat)
    out["contains"] = best(lambda: floor_contains(folder, names), repeat)
    out["iterate"] = best(lambda: floor_walk(folder), repeat)
    out["iterate cold"] = out["iterate"]
    out["get raw"] = best(lambda: floor_get_raw(folder, names), repeat)
    out["delete"] = best(lambda: floor_delete(folder, names, durable), repeat, set_all)
    return out


def peers(root: str) -> dict[str, Callable[[], Any]]:
    """diskcache and sqlitedict, when installed."""
    out: dict[str, Callable[[], Any]] = {}
    try:
        import diskcache  # type: ignore[import-untyped,unused-ignore]

        out["diskcache"] = lambda: diskcache.Cache(os.path.join(root, "diskcache"))
    except ImportError:
        pass
    try:
        import sqlitedict  # type: ignore[import-untyped,unused-ignore]

        out["sqlitedict"] = lambda: sqlitedict.SqliteDict(
            os.path.join(root, "sqlitedict.db"), autocommit=True
        )
    except ImportError:
        pass
    return out


OPS = ("set", "overwrite", "get", "contains", "iterate", "iterate cold", "delete")


def table(title: str, n: int, floor: Timing, rows: dict[str, Timing], note: str) -> str:
    """A markdown table: µs per op and ratio to the floor."""
    lines = [f"### {title}", "", note, ""]
    lines.append("| store | " + " | ".join(OPS) + " |")
    lines.append("|---|" + "---|" * len(OPS))

    def cell(t: float, f: float | None) -> str:
        us = t / n * 1e6
        return f"{us:.1f} µs" if f is None else f"{us:.1f} µs ({f / t:.2f})"

    lines.append("| floor | " + " | ".join(cell(floor[o], None) for o in OPS) + " |")
    for name, t in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(t[o], floor[o]) for o in OPS) + " |")
    return "\n".join(lines) + "\n"


def big_row(root: str, keys: list[str], value: bytes, durable: bool, repeat: int) -> str:
    """One row of the big-value table."""
    floor_dir = os.path.join(root, f"bigfloor{durable}")
    os.makedirs(floor_dir)
    names = [k + ".pkl" for k in keys]
    f_set = best(lambda: floor_set(floor_dir, [(n, value) for n in names], durable), repeat)
    f_get = best(lambda: floor_get(floor_dir, names), repeat)
    d: FileDirDict[bytes] = FileDirDict(base_dir=os.path.join(root, f"big{durable}"), durable=durable)

    def set_all() -> None:
        for k in keys:
            d[k] = value

    def get_all() -> None:
        for k in keys:
            d[k]

    s_set = best(set_all, repeat)
    s_get = best(get_all, repeat)
    ms = 1e3 / len(keys)
    return (
        f"| durable={durable} | {f_set * ms:.2f} ms | {s_set * ms:.2f} ms ({f_set / s_set:.2f}) "
        f"| {f_get * ms:.2f} ms | {s_get * ms:.2f} ms ({f_get / s_get:.2f}) |"
    )


def big_values(root: str, n_big: int, repeat: int) -> str:
    """Set and get of 1 MiB values."""
    value = os.urandom(1 << 20)
    keys = [f"big{i}" for i in range(n_big)]
    head = [
        f"### {n_big} values of 1 MiB (time per value; ratio to the floor)",
        "",
        "| | set floor | FileDirDict set | get floor | FileDirDict get |",
        "|---|---|---|---|---|",
    ]
    rows = [big_row(root, keys, value, durable, repeat) for durable in (True, False)]
    return "\n".join(head + rows) + "\n"


def main() -> None:
    """Run everything and print (and optionally save) markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--big", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="")
    ap.add_argument("--dir", default=None, help="where to put the test folders (default: a temp dir)")
    args = ap.parse_args()
    n: int = args.n
    keys = [f"key{i:06d}" for i in range(n)]
    values = [("v" * 70, i, float(i)) for i in range(n)]
    size = len(pickle.dumps(values[0], protocol=pickle.HIGHEST_PROTOCOL))
    root = tempfile.mkdtemp(prefix="bench_files_", dir=args.dir)
    parts = [
        "## FileDirDict benchmark",
        "",
        f"{n} keys, values of {size} bytes pickled, best of {args.repeat}; "
        f"Python {sys.version.split()[0]}, {sys.platform}, folder {root}.",
        "Cells: µs per operation (ratio = floor time / store time; higher is faster, 1.0 = the floor).",
        "",
    ]
    try:
        for durable in (True, False):
            floor = run_floor(os.path.join(root, f"floor{durable}"), keys, values, args.repeat, durable)
            rows = {}
            for locks in (True, False):
                folder = os.path.join(root, f"fdd_{durable}_{locks}")
                make_fdd = functools.partial(FileDirDict, base_dir=folder, durable=durable, use_locks=locks)
                rows[f"FileDirDict(durable={durable}, use_locks={locks})"] = run_store(
                    make_fdd, keys, values, args.repeat
                )
            if not durable:
                for name, make in peers(root).items():
                    rows[name] = run_store(make, keys, values, args.repeat)
            what = "floors fsync file and folder" if durable else "no fsync"
            ours = rows[f"FileDirDict(durable={durable}, use_locks=True)"]
            note = (
                f"Get against a stricter floor (os.open + os.read + pickle.loads, "
                f"{floor['get raw'] / n * 1e6:.1f} µs): {floor['get raw'] / ours['get']:.2f}."
            )
            if not durable:
                note += (
                    " Peers (not durable by default): diskcache.Cache, "
                    "sqlitedict.SqliteDict(autocommit=True)."
                )
            parts.append(table(f"durable={durable} ({what})", n, floor, rows, note))
        parts.append(big_values(root, args.big, args.repeat))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(parts)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
