"""Running the ``persidict`` command line as a real subprocess, and checking what it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import attrs

from tests.s3_helpers import FAKE_ENV, UNSET_ENV

TIMEOUT = 120


@attrs.frozen
class Result:
    """What one run of the command line did."""

    code: int
    out: str
    err: str

    def json_lines(self) -> list[Any]:
        """stdout parsed as one JSON object per line."""
        return [json.loads(line) for line in self.out.splitlines()]

    def one_error_line(self) -> str:
        """The single line on stderr (asserting there is exactly one, without a traceback)."""
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        return lines[0]


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: fake AWS credentials, no developer AWS setup, no store default."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV and k != "PERSIDICT_STORE"}
    env.update(FAKE_ENV)
    env.pop("NO_COLOR", None)
    env.update(extra or {})
    return env


def cli(
    *args: str,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Result:
    """Run ``python -m persidict ARGS`` and return its exit code, stdout and stderr (text)."""
    data = input.encode() if isinstance(input, str) else input
    p = subprocess.run(
        [sys.executable, "-m", "persidict", *args],
        input=data if data is not None else b"",
        capture_output=True,
        env=cli_env(env),
        cwd=cwd or tempfile.gettempdir(),  # a relative store path never lands in the repository
        timeout=TIMEOUT,
        check=False,
    )
    return Result(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))


def cli_bytes(*args: str, env: Mapping[str, str] | None = None) -> bytes:
    """stdout of a successful run, as bytes."""
    p = subprocess.run(
        [sys.executable, "-m", "persidict", *args],
        input=b"",
        capture_output=True,
        env=cli_env(env),
        cwd=tempfile.gettempdir(),
        timeout=TIMEOUT,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def popen(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m persidict ARGS`` without waiting."""
    return subprocess.Popen(
        [sys.executable, "-m", "persidict", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(env),
        cwd=tempfile.gettempdir(),
    )
