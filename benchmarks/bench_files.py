"""FileDirDict against the filesystem's own speed, measured in the same run.

Floors (written here, as short as correct code can be):
  set (durable)      pickle.dumps, temp file, write, fsync, os.replace, fsync of the folder
  set (not durable)  the same without the two fsyncs
  get                open + read + pickle.loads
  contains           os.stat
  iterate            a bare recursive os.scandir walk counting files ("cold": the store's
                     first pass, before its decoded-name cache is warm)
  delete             os.unlink (durable: and fsync of the folder)
"set" inserts new keys into a fresh folder; "overwrite" replaces existing ones.
Ratios are floor time / store time (1.0: as fast as the floor; higher is faster).
Every operation runs in rounds that alternate floor and stores (each round
starting with the next one), and keeps each one's best round: this machine's
filesystem timings are noisy.
diskcache and sqlitedict are printed beside them as peers.

With ``--nested`` the keys are pairs (one of 16 shard folders, a name), the
floors write into the same shard folders, the peers and the 1 MiB values are
left out: the cost of keys that live in folders.

Usage: python benchmarks/bench_files.py [--n 5000] [--big 20] [--repeat 5] [--nested]
       [--durable both|no|yes] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
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

OPS = ("set", "overwrite", "get", "contains", "iterate", "iterate cold", "delete")

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


def floor_get_raw(folder: str, names: Iterable[str]) -> None:
    """Reads with os.open / os.read, below Python's io stack."""
    for name in names:
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        data = os.read(fd, os.fstat(fd).st_size)
        os.close(fd)
        pickle.loads(data)


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


# ---------------------------------------------------------------- contestants


_BURIED = itertools.count()


def _graveyard(folder: str) -> str:
    """A folder beside ``folder``'s parent's contents where old rounds are set aside."""
    g = os.path.join(os.path.dirname(folder), "_old_rounds")
    os.makedirs(g, exist_ok=True)
    return g


class Contestant:
    """Something that can run every operation on ``keys``; ``fresh`` empties it."""

    name = ""

    def __init__(self, folder: str, keys: list[Any], values: list[Any]) -> None:
        self.folder = folder
        self.keys = keys
        self.pairs = list(zip(keys, values, strict=True))

    def fresh(self) -> None:
        """Start over in an empty, new folder.

        The old folder is renamed aside, not deleted: deleting thousands of
        files slows the next rounds' file creation on this machine's disk for
        a while, whoever runs next. Everything set aside is deleted at the end.
        """
        if os.path.exists(self.folder):
            os.rename(self.folder, os.path.join(_graveyard(self.folder), f"{next(_BURIED)}"))
        os.makedirs(self.folder)

    def close(self) -> None:
        """Release resources."""

    def setup(self, op: str) -> None:
        """Bring the contestant into the state ``op`` starts from (untimed)."""
        if op == "set":
            self.fresh()
        elif op == "delete":
            self.run("overwrite")

    def run(self, op: str) -> None:
        """Run ``op`` over every key."""
        raise NotImplementedError


class Floor(Contestant):
    """The hand-written floor."""

    def __init__(self, folder: str, keys: list[Any], values: list[Any], durable: bool) -> None:
        super().__init__(folder, keys, values)
        self.name = "floor"
        self.durable = durable
        self.names = [(k if isinstance(k, str) else os.path.join(*k)) + ".pkl" for k in keys]
        self.named = list(zip(self.names, values, strict=True))
        self.shards = sorted({os.path.dirname(name) for name in self.names} - {""})

    def fresh(self) -> None:
        """An empty folder, with the shard folders of nested keys made."""
        super().fresh()
        for shard in self.shards:
            os.makedirs(os.path.join(self.folder, shard))

    def run(self, op: str) -> None:
        """Run ``op`` by hand."""
        if op in ("set", "overwrite"):
            floor_set(self.folder, self.named, self.durable)
        elif op == "get":
            floor_get(self.folder, self.names)
        elif op == "get raw":
            floor_get_raw(self.folder, self.names)
        elif op == "contains":
            floor_contains(self.folder, self.names)
        elif op in ("iterate", "iterate cold"):
            assert floor_walk(self.folder) == len(self.names)
        elif op == "delete":
            floor_delete(self.folder, self.names, self.durable)


class Store(Contestant):
    """A dict-like store, made by ``make(folder)``."""

    def __init__(
        self, name: str, make: Callable[[str], Any], folder: str, keys: list[Any], values: list[Any]
    ) -> None:
        super().__init__(folder, keys, values)
        self.name = name
        self.make = make
        self.store: Any = None
        self.fresh()

    def fresh(self) -> None:
        """A new store in a new folder."""
        self.close()
        super().fresh()
        self.store = self.make(self.folder)

    def close(self) -> None:
        """Close the store if it has ``close``."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def run(self, op: str) -> None:
        """Run ``op`` through the store's dict API."""
        store = self.store
        if op in ("set", "overwrite"):
            for k, v in self.pairs:
                store[k] = v
        elif op == "get":
            for k in self.keys:
                store[k]
        elif op == "contains":
            for k in self.keys:
                _ = k in store
        elif op == "iterate":
            assert sum(1 for _ in iter(store)) == len(self.keys)
        elif op == "iterate cold":
            again = self.make(self.folder)  # a new object: nothing decoded yet
            assert sum(1 for _ in iter(again)) == len(self.keys)
            close = getattr(again, "close", None)
            if close is not None:
                close()
        elif op == "delete":
            for k in self.keys:
                del store[k]


def race(contestants: list[Contestant], ops: Iterable[str], repeat: int) -> dict[str, dict[str, float]]:
    """Per contestant and op, the best of ``repeat`` alternating rounds (seconds).

    Each round starts with the next contestant, so that none always runs right
    after the same one (a durable write's timing depends on the journal work
    the previous contestant left behind).
    """
    best: dict[str, dict[str, float]] = {c.name: {} for c in contestants}
    for op in ops:
        for r in range(repeat):
            first = r % len(contestants)
            for c in contestants[first:] + contestants[:first]:
                c.setup(op)
                t = time.perf_counter()
                c.run(op)
                elapsed = time.perf_counter() - t
                best[c.name][op] = min(best[c.name].get(op, elapsed), elapsed)
    return best


def peers() -> dict[str, Callable[[str], Any]]:
    """diskcache and sqlitedict, when installed."""
    out: dict[str, Callable[[str], Any]] = {}
    try:
        import diskcache  # type: ignore[import-untyped,unused-ignore]

        out["diskcache"] = lambda folder: diskcache.Cache(folder)
    except ImportError:
        pass
    try:
        import sqlitedict  # type: ignore[import-untyped,unused-ignore]

        out["sqlitedict"] = lambda folder: sqlitedict.SqliteDict(
            os.path.join(folder, "db.sqlite"), autocommit=True
        )
    except ImportError:
        pass
    return out


def table(n: int, results: dict[str, dict[str, float]]) -> list[str]:
    """A markdown table: µs per op and the ratio to the floor."""
    floor = results["floor"]
    lines = ["| store | " + " | ".join(OPS) + " |", "|---|" + "---|" * len(OPS)]
    for name, t in results.items():
        cells = []
        for op in OPS:
            us = t[op] / n * 1e6
            cells.append(f"{us:.1f} µs" if name == "floor" else f"{us:.1f} µs ({floor[op] / t[op]:.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def small_values(root: str, n: int, durable: bool, repeat: int, nested: bool = False) -> list[str]:
    """The 100-byte table for one durability setting (``nested``: keys in 16 shard folders)."""
    keys: list[Any] = [f"key{i:06d}" for i in range(n)]
    if nested:
        keys = [(f"shard{i % 16:02d}", k) for i, k in enumerate(keys)]
    values = [("v" * 70, i, float(i)) for i in range(n)]
    floor = Floor(os.path.join(root, f"floor_{durable}"), keys, values, durable)
    contestants: list[Contestant] = [floor]
    for locks in (True, False):

        def make(folder: str, locks: bool = locks) -> Any:
            return FileDirDict(base_dir=folder, durable=durable, use_locks=locks)

        name = f"FileDirDict(durable={durable}, use_locks={locks})"
        contestants.append(Store(name, make, os.path.join(root, f"fdd_{durable}_{locks}"), keys, values))
    if not durable and not nested:
        for name, make_peer in peers().items():
            contestants.append(Store(name, make_peer, os.path.join(root, name), keys, values))
    floor.fresh()
    results = race(contestants, OPS, repeat)
    floor.run("overwrite")
    raw = race([floor], ["get raw"], repeat)["floor"]["get raw"]
    ours = results[f"FileDirDict(durable={durable}, use_locks=True)"]["get"]
    for c in contestants:
        c.close()
    what = "floors fsync file and folder" if durable else "no fsync"
    lines = [f"### durable={durable} ({what}){', keys in 16 folders' if nested else ''}", ""]
    note = (
        f"Get against a stricter floor (os.open + fstat + os.read + pickle.loads, "
        f"{raw / n * 1e6:.1f} µs): {raw / ours:.2f}."
    )
    if not durable:
        note += " Peers, not durable: diskcache.Cache, sqlitedict.SqliteDict(autocommit=True)."
    lines.append(note)
    lines.append("")
    return [*lines, *table(n, results), ""]


def big_values(root: str, n_big: int, repeat: int) -> list[str]:
    """Set and get of 1 MiB values."""
    keys = [f"big{i}" for i in range(n_big)]
    values: list[Any] = [os.urandom(1 << 20) for _ in range(n_big)]
    lines = [
        f"### {n_big} values of 1 MiB (ms per value; ratio to the floor)",
        "",
        "| durable | set floor | FileDirDict set | get floor | FileDirDict get |",
        "|---|---|---|---|---|",
    ]
    for durable in (True, False):
        floor = Floor(os.path.join(root, f"bigfloor_{durable}"), keys, values, durable)
        floor.fresh()

        def make(folder: str, durable: bool = durable) -> Any:
            return FileDirDict(base_dir=folder, durable=durable)

        store = Store("FileDirDict", make, os.path.join(root, f"big_{durable}"), keys, values)
        r = race([floor, store], ["overwrite", "get"], repeat)
        f, s = r["floor"], r["FileDirDict"]
        ms = 1e3 / n_big
        lines.append(
            f"| {durable} | {f['overwrite'] * ms:.2f} | {s['overwrite'] * ms:.2f} "
            f"({f['overwrite'] / s['overwrite']:.2f}) | {f['get'] * ms:.2f} | {s['get'] * ms:.2f} "
            f"({f['get'] / s['get']:.2f}) |"
        )
        store.close()
    return [*lines, ""]


def main() -> None:
    """Run everything and print (and optionally save) markdown."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--big", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="")
    ap.add_argument("--dir", default=None, help="where to put the test folders (default: a temp dir)")
    ap.add_argument("--nested", action="store_true", help="keys (shard, name) in 16 folders; no peers")
    ap.add_argument("--durable", choices=("both", "no", "yes"), default="both", help="which tables to run")
    args = ap.parse_args()
    n: int = args.n
    size = len(pickle.dumps(("v" * 70, 0, 0.0), protocol=pickle.HIGHEST_PROTOCOL))
    root = tempfile.mkdtemp(prefix="bench_files_", dir=args.dir)
    parts = [
        "## FileDirDict benchmark",
        "",
        f"{n} keys, values of {size} bytes pickled, best of {args.repeat} alternating rounds; "
        f"Python {sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} CPUs, folder {root}.",
        "Cells: µs per operation (ratio = floor time / store time; higher is faster, 1.0 = the floor).",
        "",
    ]
    try:
        # durable=False first: its set target is the tightest, and the delete
        # rounds of a section slow the disk for the sections after it.
        settings = {"both": (False, True), "no": (False,), "yes": (True,)}[args.durable]
        tables = {durable: small_values(root, n, durable, args.repeat, args.nested) for durable in settings}
        parts += tables.get(True, []) + tables.get(False, [])
        if not args.nested and args.big:
            parts += big_values(root, args.big, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(parts)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
