"""Every ```python block of README.md and of the documentation pages (docs/) runs as written.

Each block is one test, run on its own (a block must import and build what it uses) in a fresh
temporary working directory, so that it leaves nothing behind, and inside ``moto.mock_aws()``
with test credentials in the environment, so that blocks using S3 run against moto's in-memory S3
as they would against AWS. Tracebacks point at the Markdown file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)$")


class Block(NamedTuple):
    """One fenced code block: its file, first line (1-based, the fence's) and source."""

    path: Path
    line: int
    info: str
    source: str


def markdown_files() -> list[Path]:
    """README.md and every page of the documentation site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of one Markdown file, dedented to their fence's indentation."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    start: int | None = None
    indent, info = "", ""
    for number, line in enumerate(lines, start=1):
        m = FENCE.match(line)
        if m is None:
            continue
        if start is None:
            start, indent, info = number, m["indent"], m["info"].strip()
        elif m["indent"] == indent and not m["info"].strip():
            body = [text.removeprefix(indent) for text in lines[start : number - 1]]
            blocks.append(Block(path, start, info, "\n".join(body) + "\n"))
            start = None
    assert start is None, f"{path}:{start}: a code fence is never closed"
    return blocks


def python_blocks() -> list[Block]:
    """Every ```python block of README.md and docs/."""
    return [b for p in markdown_files() for b in code_blocks(p) if b.info.split()[:1] == ["python"]]


BLOCKS = python_blocks()


def block_id(block: Block) -> str:
    """``README.md:42``: where the block starts."""
    return f"{block.path.relative_to(ROOT)}:{block.line}"


def test_the_runner_finds_every_python_fence() -> None:
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        fences = len(re.findall(r"^[ \t]*```python\b", text, flags=re.MULTILINE))
        found = sum(1 for b in BLOCKS if b.path == path)
        assert found == fences, f"{path}: {fences} ```python fences, {found} blocks parsed"
    assert sum(1 for b in BLOCKS if b.path.name == "README.md") >= 8


def test_the_runner_reports_a_failing_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nx = 1\nassert x == 2\n```\n", encoding="utf-8")
    (block,) = code_blocks(page)
    with pytest.raises(AssertionError) as caught:
        run_block(block)
    assert caught.traceback[-1].lineno + 1 == 5  # pytest's line numbers are 0-based: page.md line 5


def run_block(block: Block) -> None:
    """Execute one block as a fresh module whose line numbers are the Markdown file's."""
    code = compile("\n" * block.line + block.source, str(block.path), "exec")
    exec(code, {"__name__": "__docs_example__"})


@pytest.mark.parametrize("block", BLOCKS, ids=block_id)
def test_code_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "no-such-aws-file"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        run_block(block)
