"""The shell examples of README.md's "Command line" section and of docs/cli.md run as written.

Each ```console block holds ``$ command`` lines, each followed by the output
it shows (stdout and stderr together). The blocks of one file run in order,
in bash, in one fresh temporary directory, with the ``persidict`` script on
the PATH and a moto server as the S3 endpoint (``AWS_ENDPOINT_URL``, fake
credentials: what a user's AWS configuration would give). A shown line
matches the actual one exactly, except that ``...`` in it matches any text,
and a line that is only ``...`` matches any number of lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .cli_helpers import cli_env
from .s3_helpers import moto_endpoint
from .test_docs_examples import code_blocks

ROOT = Path(__file__).resolve().parent.parent


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Command line\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _sessions(markdown: str) -> list[tuple[str, list[str]]]:
    """The (command, shown output lines) pairs of the ```console blocks of ``markdown``."""
    pairs: list[tuple[str, list[str]]] = []
    for block in _console_blocks(markdown.splitlines()):
        for line in block:
            if line.startswith("$ "):
                pairs.append((line[2:], []))
            else:
                assert pairs, f"output before any command: {line!r}"
                pairs[-1][1].append(line)
    return pairs


def _console_blocks(lines: list[str]) -> list[list[str]]:
    """The lines of each ```console block."""
    blocks: list[list[str]] = []
    inside: list[str] | None = None
    for line in lines:
        if inside is None and line.strip() == "```console":
            inside = []
        elif inside is not None and line.strip() == "```":
            blocks.append(inside)
            inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def _matches(shown: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` lines fit the ``shown`` ones (``...`` wildcards)."""
    pattern = "".join(r"(?:.*\n)*" if s.strip() == "..." else _line_pattern(s) for s in shown)
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def _line_pattern(shown: str) -> str:
    return ".*".join(map(re.escape, shown.split("..."))) + r"\n"


def _run_session(pairs: list[tuple[str, list[str]]], where: Path) -> None:
    env = cli_env(
        {
            "AWS_ENDPOINT_URL": moto_endpoint(),
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "COLUMNS": "100",
        }
    )
    assert pairs, "no ```console example found"
    for command, shown in pairs:
        p = subprocess.run(
            ["bash", "-c", command],
            cwd=where,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        actual = p.stdout.splitlines()
        assert _matches(shown, actual), f"$ {command}\nshown:\n" + "\n".join(shown) + "\ngot:\n" + p.stdout


def test_the_matcher() -> None:
    assert _matches(["a", "b ... d"], ["a", "b c d"])
    assert _matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert _matches(["..."], [])
    assert not _matches(["a"], ["a", "b"])
    assert not _matches(["b ... d"], ["b c e"])


def test_readme_command_line_examples_run_as_written(tmp_path: Path) -> None:
    pairs = _sessions(_readme_section())
    assert {c.split()[1] for c, _ in pairs if c.startswith("persidict ")} >= {
        "ls",
        "get",
        "put",
        "rm",
        "cp",
        "stat",
        "purge",
    }
    _run_session(pairs, tmp_path)


@pytest.mark.parametrize("page", ["docs/cli.md"])
def test_docs_page_examples_run_as_written(page: str, tmp_path: Path) -> None:
    _run_session(_sessions((ROOT / page).read_text(encoding="utf-8")), tmp_path)


def test_console_blocks_are_seen_by_the_python_block_runner_too() -> None:
    infos = [b.info for b in code_blocks(ROOT / "README.md")]
    assert infos.count("console") == len(_console_blocks(_readme_section().splitlines()))
