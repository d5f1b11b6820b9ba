"""Startup time (issue 17): ``import persidict`` and ``persidict --help`` against a bare ``python -c pass``.

Each command runs ``--runs`` times, interleaved (so machine noise hits all
alike); the median wall time of each is printed with its difference from
the bare interpreter in the same run, then the ten slowest imports of
``import persidict`` and of the CLI's ``--help`` (``-X importtime``).
Targets: ``import persidict`` under 50 ms and ``persidict --help`` under
250 ms (whole command, interpreter included).

    .venv/bin/python benchmarks/bench_startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

PY = sys.executable


def _commands() -> dict[str, list[str]]:
    script = shutil.which("persidict", path=os.path.dirname(PY))
    cli = [script] if script else [PY, "-m", "persidict"]
    return {
        "python -c pass": [PY, "-c", "pass"],
        "import persidict": [PY, "-c", "import persidict"],
        "from persidict import FileDirDict": [PY, "-c", "from persidict import FileDirDict"],
        "persidict --help": [*cli, "--help"],
        "python -m persidict --help": [PY, "-m", "persidict", "--help"],
    }


def _wall(cmd: list[str]) -> float:
    """Seconds one run of ``cmd`` takes (output discarded)."""
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def measure(runs: int) -> dict[str, float]:
    """The median seconds of each command over ``runs`` interleaved runs (after one warm-up each)."""
    commands = _commands()
    for cmd in commands.values():
        _wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(_wall(cmd))
    return {name: statistics.median(ts) for name, ts in times.items()}


def slowest_imports(code: str, n: int = 10) -> list[tuple[int, str]]:
    """The ``n`` imports with the largest cumulative time (µs) when running ``code``."""
    p = subprocess.run([PY, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:n]


def _verdict(what: str, seconds: float, target: float) -> str:
    ok = "ok" if seconds < target else "OVER"
    return f"{what}: {seconds * 1e3:.1f} ms (target < {target * 1e3:.0f} ms): {ok}"


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (default 21)")
    args = parser.parse_args()
    medians = measure(args.runs)
    bare = medians["python -c pass"]
    print(f"Python {sys.version.split()[0]}, {args.runs} runs each, median wall time")
    print(f"{'command':<36}{'median ms':>10}{'minus bare ms':>15}{'ratio':>8}")
    for name, t in medians.items():
        print(f"{name:<36}{t * 1e3:>10.1f}{(t - bare) * 1e3:>15.1f}{t / bare:>8.2f}")
    imp, helped = medians["import persidict"], medians["persidict --help"]
    print()
    print(_verdict("import persidict (whole run)", imp, 0.05))
    print(_verdict("import persidict (over bare python)", imp - bare, 0.05))
    print(_verdict("persidict --help (whole run)", helped, 0.25))
    for title, code in (
        ("import persidict", "import persidict"),
        ("persidict --help", "from persidict.cli import run; run(['--help'])"),
    ):
        print(f"\nslowest imports of {title} (cumulative µs):")
        for us, name in slowest_imports(code):
            print(f"  {us:>8}  {name}")


if __name__ == "__main__":
    main()
