"""Draw the documentation's performance figures from the benchmark results (benchmarks/results/*.md).

Run by ``make docs`` before MkDocs builds the site: each figure is a bar chart of the times in one
table the benchmark scripts wrote, so that the figures always show the latest committed results.
A table that cannot be found (a benchmark changed its output) stops the build with its name.

    python scripts/plot_benchmarks.py [--results benchmarks/results] [--out docs/img]
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display needed

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)")


@dataclass(frozen=True)
class Table:
    """A Markdown table: the heading above it, its column names and its rows of cells."""

    heading: str
    columns: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> int:
        """The index of the column called ``name``."""
        try:
            return self.columns.index(name)
        except ValueError:
            raise LookupError(f"no column {name!r} under {self.heading!r}: {self.columns}") from None


def read_tables(path: Path) -> list[Table]:
    """Every table of a Markdown file, with the heading (or the file's title) it sits under."""
    tables: list[Table] = []
    heading = ""
    current: list[list[str]] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(current) >= 3:
            tables.append(Table(heading, current[0], current[2:]))
        current = []
    return tables


def find_table(path: Path, heading: str, first_column: str) -> Table:
    """The first table of ``path`` under a heading containing ``heading`` whose first column is named."""
    for table in read_tables(path):
        if heading in table.heading and table.columns[:1] == [first_column]:
            return table
    raise LookupError(f"{path}: no table under a heading with {heading!r} and a column {first_column!r}")


def number(cell: str) -> float | None:
    """The leading number of a cell (``"72.7 µs (0.76)"`` -> 72.7), or None for an empty cell."""
    m = NUMBER.match(cell)
    return float(m.group(1)) if m else None


def columns_of(table: Table, labels: dict[str, str]) -> dict[str, list[float | None]]:
    """The numbers of the columns named in ``labels`` (column name -> legend label), row by row."""
    return {label: [number(row[table.column(col)]) for row in table.rows] for col, label in labels.items()}


def bar_chart(
    groups: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    out: Path,
    log: bool = True,
) -> Path:
    """Grouped bars: one group per operation, one bar per contestant; lower is faster."""
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        pairs = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        ax.bar([x for x, _ in pairs], [v for _, v in pairs], width=width, label=name)
    ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out


def plot_files(results: Path, out: Path) -> Path:
    """FileDirDict (durable=False) against its floor, diskcache and sqlitedict."""
    table = find_table(results / "files.md", "durable=False", "store")
    operations = [c for c in table.columns[1:] if c != "iterate cold"]
    names = {"floor": "floor (by hand)", "diskcache": "diskcache", "sqlitedict": "sqlitedict"}
    series: dict[str, list[float | None]] = {}
    for row in table.rows:
        label = names.get(row[0], row[0] if row[0].endswith("use_locks=True)") else "")
        if label:
            series[label] = [number(row[table.column(op)]) for op in operations]
    return bar_chart(
        operations,
        series,
        title="FileDirDict, durable=False, 5000 small values",
        ylabel="µs per operation (log)",
        out=out / "bench-files.png",
    )


def plot_lmdb(results: Path, out: Path) -> Path:
    """LmdbDict against raw lmdb + pickle and diskcache."""
    table = find_table(results / "lmdb.md", "", "operation")
    contestants = {"raw lmdb µs": "raw lmdb + pickle", "LmdbDict µs": "LmdbDict", "diskcache µs": "diskcache"}
    operations = [row[0] for row in table.rows]
    series = columns_of(table, contestants)
    return bar_chart(
        operations,
        series,
        title="LmdbDict, 5000 items of ~100 bytes",
        ylabel="µs per operation (log)",
        out=out / "bench-lmdb.png",
    )


def plot_s3(results: Path, out: Path) -> Path:
    """BasicS3Dict and S3Dict against raw boto3, on a local moto server (wall time)."""
    table = find_table(results / "s3.md", "", "operation")
    contestants = {"wall ms raw": "raw boto3", "Basic (x raw)": "BasicS3Dict", "S3Dict (x raw)": "S3Dict"}
    operations = [row[0] for row in table.rows]
    series = columns_of(table, contestants)
    return bar_chart(
        operations,
        series,
        title="S3 on a local moto server: the same requests as raw boto3",
        ylabel="ms per operation",
        out=out / "bench-s3.png",
        log=False,
    )


def plot_wrappers(results: Path, out: Path) -> Path:
    """Each wrapper against the dict it wraps."""
    table = find_table(results / "wrappers.md", "", "operation")
    operations = [f"{row[0]} ({row[table.column('value')]})" for row in table.rows]
    floor = table.column("floor (wrapped dict alone), µs/op")
    wrapper = table.column("wrapper, µs/op")
    series = {
        "wrapped dict alone": [number(row[floor]) for row in table.rows],
        "through the wrapper": [number(row[wrapper]) for row in table.rows],
    }
    return bar_chart(
        operations,
        series,
        title="Wrappers against the dict they wrap",
        ylabel="µs per operation (log)",
        out=out / "bench-wrappers.png",
    )


PLOTS: list[Callable[[Path, Path], Path]] = [plot_files, plot_lmdb, plot_s3, plot_wrappers]


def main(argv: Sequence[str] | None = None) -> None:
    """Draw every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    for plot in PLOTS:
        path = plot(args.results, args.out)
        print(f"drew {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
