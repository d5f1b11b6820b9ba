"""Run mypy --strict on a program that must pass and on programs that must each fail as expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING_CASES = ROOT / "tests" / "typing_cases"


def assert_mypy_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good: Path, header: str, bad: dict[str, tuple[str, str]]
) -> None:
    """``good`` type-checks cleanly; each ``bad`` body (after ``header``) fails with its error text."""
    from mypy import api  # (the callers skip when mypy is not installed)

    monkeypatch.chdir(ROOT)  # mypy.ini's mypy_path is relative to the working directory
    for name, (body, _) in bad.items():
        (tmp_path / f"bad_{name}.py").write_text(header + textwrap.dedent(body))
    out, err, _ = api.run(
        [
            "--config-file", str(ROOT / "mypy.ini"),
            "--strict",
            "--cache-dir", str(tmp_path / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(good),
            *(str(tmp_path / f"bad_{name}.py") for name in bad),
        ]
    )
    assert err == ""
    lines = out.splitlines()
    assert not [line for line in lines if good.name in line], out
    for name, (_, expected) in bad.items():
        mine = [line for line in lines if f"bad_{name}.py:" in line]
        assert any(expected in line for line in mine), f"bad_{name}.py: want {expected!r}, got:\n{out}"
