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
