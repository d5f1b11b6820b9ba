"""A store whose optional dependency is missing raises an ImportError naming the extra to install.

Each case runs in a subprocess where a ``sys.meta_path`` finder makes the dependency unimportable,
as it is in an environment installed without the extra.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import persidict

HIDE = """
import sys

class Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ImportError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Hidden())
"""

CASES = {
    "BasicS3Dict": ({"boto3", "botocore"}, "import persidict as p\np.BasicS3Dict(bucket_name='bkt')", "aws"),
    "S3Dict": ({"boto3"}, "from persidict import S3Dict\nS3Dict(bucket_name='bkt', base_dir='x')", "aws"),
    "botocore": ({"botocore"}, "import persidict.backends.s3", "aws"),
    "LmdbDict": ({"lmdb"}, "from persidict import LmdbDict\nLmdbDict(base_dir='x')", "lmdb"),
    "PersistDict": ({"lmdb"}, "from persidict import PersistDict\nPersistDict(database_path='x')", "lmdb"),
    "lmdb backend": ({"lmdb"}, "import persidict.backends.lmdb", "lmdb"),
    "lmdb env": ({"lmdb"}, "import persidict.backends.lmdb_env", "lmdb"),
}


def run_hidden(hidden: set[str], code: str, cwd: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which the modules ``hidden`` cannot be imported."""
    program = HIDE.format(hidden=sorted(hidden)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_extra_is_named(case: str, tmp_path: object) -> None:
    hidden, code, extra = CASES[case]
    done = run_hidden(hidden, code, str(tmp_path))
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: "), done.stderr
    assert f"pip install 'persidict[{extra}]'" in last, last
    assert "No module named" in last, last


def test_the_core_needs_no_extra(tmp_path: object) -> None:
    code = """
    import persidict
    from persidict import *  # the lazy names of the S3 and LMDB stores import nothing yet
    d = persidict.FileDirDict(base_dir="data")
    d["k"] = 1
    w = persidict.WriteOnceDict(wrapped_dict=persidict.LocalDict(append_only=True))
    w["k"] = 2
    assert d["k"] == 1 and w["k"] == 2
    assert "boto3" not in sys.modules and "lmdb" not in sys.modules
    """
    done = run_hidden({"boto3", "botocore", "lmdb"}, code, str(tmp_path))
    assert done.returncode == 0, done.stderr


def test_the_version_is_the_installed_distribution_s() -> None:
    from importlib.metadata import version

    assert persidict.__version__ == version("persidict")
    assert tuple(int(p) for p in persidict.__version__.split(".")[:2]) >= (1, 0)  # sorts after 0.309
