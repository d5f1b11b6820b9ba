"""Helpers for the LmdbDict tests: run Python code in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a new interpreter with the project importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def stress_seconds(full: float, small: float) -> float:
    """Duration of a stress test: ``small`` when PERSIDICT_STRESS_SCALE=small, else ``full``."""
    scale = os.environ.get("PERSIDICT_STRESS_SCALE", "")
    if scale == "small":
        return small
    try:
        return full * float(scale)
    except ValueError:
        return full


def raw_records(base_dir: Path, db: bytes = b"v") -> dict[bytes, bytes]:
    """Every record of one of the database's named databases, read by another process."""
    proc = run_python(
        f"""
        import lmdb, sys
        env = lmdb.open({str(base_dir)!r}, max_dbs=4, readonly=True, lock=False)
        db = env.open_db({db!r}, create=False)
        with env.begin() as txn:
            items = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=db)]
        sys.stdout.write(repr(items))
        """
    )
    return dict(eval(proc.stdout))


class Clock:
    """A controllable time source."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def start_python(code: str) -> subprocess.Popen[str]:
    """Start ``code`` (dedented) in a new interpreter with the project importable; stdout is piped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def put_raw_record(base_dir: Path, lkey: bytes, data: bytes, db: bytes = b"v") -> None:
    """Write ``data`` under ``lkey`` in a named database, as another program would (raw ``lmdb``)."""
    run_python(
        f"""
        import lmdb
        env = lmdb.open({str(base_dir)!r}, max_dbs=4)
        db = env.open_db({db!r})
        with env.begin(write=True) as txn:
            txn.put({lkey!r}, {data!r}, db=db)
        """
    )
