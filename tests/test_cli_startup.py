"""Fast start (issue 17 item 3): what ``import persidict`` and ``persidict --help`` import, and the version.

Behaviour, not time: the heavy modules stay out of a bare import (the times
are measured by benchmarks/bench_startup.py). Every public name still
imports, and mypy --strict sees its real type (``_typed_names`` below is
checked by ``make typecheck``: ``assert_type`` fails on ``Any``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal, assert_type

import persidict
from persidict import (
    BasicS3Dict,
    CopySummary,
    FileDirDict,
    LmdbDict,
    LocalDict,
    PersiDict,
    S3Dict,
    copy,
    open,
)

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("boto3", "botocore", "lmdb", "numpy", "importlib.metadata", "concurrent.futures", "cattrs", "click")


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)), file=sys.__stderr__)"
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    modules: list[str] = json.loads(p.stderr.strip().splitlines()[-1])
    return set(modules)


def test_import_persidict_imports_nothing_heavy() -> None:
    loaded = _modules_after("import persidict")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY}
    assert not {m for m in loaded if m.startswith("persidict.")}  # every name loads on first use


def test_cli_help_imports_no_store() -> None:
    loaded = _modules_after("from persidict.cli import run\nrun(['--help'])")
    assert "click" in loaded
    for name in ("boto3", "lmdb", "numpy", "cattrs", "importlib.metadata", "persidict.persi_dict"):
        assert name not in loaded, name


def test_every_public_name_imports_in_a_fresh_process() -> None:
    code = "import persidict\nfor n in persidict.__all__: getattr(persidict, n)\nfrom persidict import *"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert set(persidict.__all__) <= set(dir(persidict))


def test_version_is_pyproject_version() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        assert persidict.__version__ == tomllib.load(f)["project"]["version"]


def test_the_cli_default_store_variable_is_the_library_one() -> None:
    from persidict.cli.commands import SPEC_ENV as CLI_ENV
    from persidict.specs import SPEC_ENV

    assert CLI_ENV == SPEC_ENV


def _typed_names() -> None:
    """Never run: mypy --strict checks that the lazily imported names keep their types."""
    assert_type(open("x"), PersiDict[Any])
    assert_type(copy("a", "b"), CopySummary)  # type: ignore[arg-type]
    assert_type(FileDirDict(base_dir="x"), FileDirDict[Any])
    assert_type(LmdbDict(base_dir="x"), LmdbDict[Any])
    assert_type(LocalDict(), LocalDict[Any])
    assert_type(BasicS3Dict(bucket_name="b"), BasicS3Dict[Any])
    assert_type(S3Dict(bucket_name="b"), S3Dict[Any])
    assert_type(open("x")["k"], Any)
    assert_type(persidict.ITEM_NOT_AVAILABLE, Literal[persidict.ItemNotAvailableFlag.ITEM_NOT_AVAILABLE])
