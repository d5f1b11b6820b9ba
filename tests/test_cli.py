"""The ``persidict`` command line (issue 17), run as a real subprocess on a folder, LMDB and S3 over HTTP.

Each command is checked by its stdout, stderr and exit code (0 done, 1 a
failure, 2 a usage error); errors are one line on stderr without a traceback.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import pty
import shutil
import struct
import subprocess
import sys
import termios
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import persidict

from .cli_helpers import cli, cli_bytes, cli_env, popen
from .s3_helpers import FAKE_ENV, moto_endpoint

COMMANDS = ("ls", "get", "put", "rm", "cp", "stat", "purge")


@pytest.fixture(scope="module")
def endpoint() -> str:
    """The moto server (in this process; the CLI reaches it over HTTP)."""
    return moto_endpoint()


@pytest.fixture
def s3_url(endpoint: str) -> str:
    """A fresh bucket on the moto server, as a store URL."""
    return f"s3://cli-{uuid.uuid4().hex[:12]}/app?endpoint={endpoint}&region=us-east-1"


@pytest.fixture(params=["folder", "lmdb", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of each kind."""
    if request.param == "folder":
        return str(tmp_path / "folder")
    if request.param == "lmdb":
        return f"lmdb://{tmp_path}/db.lmdb"
    return str(request.getfixturevalue("s3_url"))


@pytest.fixture(
    params=[
        "folder",
        pytest.param("lmdb", marks=pytest.mark.slow),
        pytest.param("s3", marks=pytest.mark.slow),
    ]
)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A folder (LMDB and S3 in the slow run): for commands already run on every store above."""
    if request.param == "folder":
        return str(tmp_path / "folder")
    if request.param == "lmdb":
        return f"lmdb://{tmp_path}/db.lmdb"
    return str(request.getfixturevalue("s3_url"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials in this process too (the tests open the S3 stores to check them)."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    yield


def _open(url: str) -> Any:
    return persidict.open(url)


# ---------------------------------------------------------------- every command, every store


def test_put_get_ls_stat_rm_on_each_store(store: str, aws_env: None) -> None:
    r = cli("put", store, "a/b", "hello")
    assert r.code == 0 and r.err == ""
    etag = r.out.strip()
    assert etag and "\n" not in etag
    assert cli("put", store, "n", input="42\n").code == 0

    assert cli("get", store, "a/b").out == "hello\n"
    assert cli("get", store, "n").out == "42\n"  # text from stdin, its newline kept
    (got,) = cli("get", store, "a/b", "--json").json_lines()
    assert got == {"key": "a/b", "etag": etag, "type": "str", "value": "hello"}
    assert pickle.loads(cli_bytes("get", store, "a/b", "--raw")) == "hello"

    assert sorted(cli("ls", store).out.splitlines()) == ["a/b", "n"]
    assert cli("ls", store, "--prefix", "a").out.splitlines() == ["a/b"]
    long_lines = {row["key"]: row for row in cli("ls", store, "-l", "--json").json_lines()}
    assert set(long_lines) == {"a/b", "n"}
    assert long_lines["a/b"]["etag"] == etag and long_lines["a/b"]["size"] > 0
    (newest,) = cli("ls", store, "--newest", "1", "--json").json_lines()
    assert newest["key"] == "n" and newest["timestamp"] > 0

    (stat,) = cli("stat", store, "--json").json_lines()
    assert stat["items"] == 2 and stat["bytes"] == sum(r["size"] for r in long_lines.values())
    assert (stat["oldest"]["key"], stat["newest"]["key"]) == ("a/b", "n")
    assert "atomic_preconditions" in stat["capabilities"]
    text = cli("stat", store).out
    assert "items:" in text and "bytes:" in text and "capabilities:" in text

    r = cli("rm", store, "a/b", "--yes")
    assert r.code == 0 and "deleted 1" in r.err
    r = cli("get", store, "a/b")
    assert r.code == 1 and r.out == ""
    assert "no such key: a/b" in r.one_error_line()
    r = cli("purge", store, "--older-than", "0s", "--json")
    assert r.code == 0 and r.json_lines() == [{"purged": 1}]
    assert cli("ls", store).out == ""


def test_conditional_puts(any_store: str) -> None:
    etag = cli("put", any_store, "k", "v1").out.strip()
    r = cli("put", any_store, "k", "v2", "--if-absent")
    assert r.code == 1 and "exists" in r.one_error_line()
    r = cli("put", any_store, "k", "v2", "--if-etag", "not-" + etag)
    assert r.code == 1 and "ETag" in r.one_error_line()
    r = cli("put", any_store, "k", "v2", "--if-etag", etag, "--json")
    assert r.code == 0
    (written,) = r.json_lines()
    assert written["key"] == "k" and written["written"] is True and written["etag"] != etag
    assert cli("get", any_store, "k").out == "v2\n"


def test_rm_asks_first_and_deletes_a_prefix(any_store: str) -> None:
    for k in ("t/1", "t/2", "t/3", "keep"):
        assert cli("put", any_store, k, "x").code == 0
    r = cli("rm", any_store, "--prefix", "t", input="n\n")
    assert r.code == 1 and "nothing deleted" in r.err
    assert len(cli("ls", any_store).out.splitlines()) == 4
    r = cli("rm", any_store, "--prefix", "t", input="y\n", env={})
    assert r.code == 0 and "deleted 3" in r.err
    assert cli("ls", any_store).out.splitlines() == ["keep"]
    r = cli("rm", any_store, "keep", "missing", "--yes", "--json")
    assert r.code == 1
    assert r.json_lines() == [{"deleted": 1, "missing": ["missing"]}]
    assert "no such key: missing" in r.err


def test_purge_older_than(any_store: str) -> None:
    assert cli("put", any_store, "old", "x").code == 0
    r = cli("purge", any_store, "--older-than", "1h", "--json")
    assert r.code == 0 and r.json_lines() == [{"purged": 0}]
    r = cli("purge", any_store, "--older-than", "0s")
    assert r.code == 0 and "purged 1" in r.err
    assert cli("ls", any_store).out == ""


def test_purge_expired_items_of_an_lmdb_store_with_a_ttl(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path}/ttl.lmdb?ttl=1000&purge_at_open=false"
    d = persidict.LmdbDict(base_dir=str(tmp_path / "ttl.lmdb"), ttl=1000, clock=lambda: 0.0)
    d["stale"] = 1
    d.close()
    assert cli("put", url, "fresh", "x").code == 0
    r = cli("purge", url, "--json")
    assert r.code == 0 and r.json_lines() == [{"purged": 1}]
    assert cli("ls", url).out.splitlines() == ["fresh"]


def test_purge_without_expiry_is_a_usage_error(tmp_path: Path) -> None:
    assert cli("put", str(tmp_path / "f"), "k", "v").code == 0
    r = cli("purge", str(tmp_path / "f"))
    assert r.code == 2 and "--older-than" in r.one_error_line()
    r = cli("purge", str(tmp_path / "f"), "--older-than", "soon")
    assert r.code == 2 and "not a duration" in r.one_error_line()


def test_put_from_a_file_and_binary_stdin(tmp_path: Path) -> None:
    folder = str(tmp_path / "f")
    (tmp_path / "v.txt").write_text("from a file")
    assert cli("put", folder, "t", "--file", str(tmp_path / "v.txt")).code == 0
    assert cli("put", folder, "b", input=b"\xff\x00\x01").code == 0
    d = _open(folder)
    assert d["t"] == "from a file" and d["b"] == b"\xff\x00\x01"
    assert cli("get", folder, "b").out == "b'\\xff\\x00\\x01'\n"  # not text: its repr
    (b,) = cli("get", folder, "b", "--json").json_lines()
    assert b["type"] == "bytes" and b["repr"] == "b'\\xff\\x00\\x01'" and "value" not in b
    r = cli("put", folder, "t", "x", "--file", str(tmp_path / "v.txt"))
    assert r.code == 2 and "not both" in r.one_error_line()


def test_values_other_than_text_print_as_their_repr(tmp_path: Path) -> None:
    d = persidict.FileDirDict(base_dir=str(tmp_path / "f"))
    d["n"] = {"a": [1, 2.5]}
    d["x"] = 3 + 4j
    assert cli("get", str(tmp_path / "f"), "n").out == "{'a': [1, 2.5]}\n"
    (n,) = cli("get", str(tmp_path / "f"), "n", "--json").json_lines()
    assert n["value"] == {"a": [1, 2.5]} and n["type"] == "dict"
    assert cli("get", str(tmp_path / "f"), "x").out == "(3+4j)\n"


def test_store_from_the_environment_and_spec_files(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/envstore?format=json"
    assert cli("put", url, "k", "v").code == 0
    assert cli("ls", env={"PERSIDICT_STORE": url}).out == "k\n"  # STORE from $PERSIDICT_STORE
    (tmp_path / "s.toml").write_text(
        f'store = "FileDirDict"\nbase_dir = "{tmp_path}/envstore"\nserialization_format = "json"\n'
    )
    assert cli("ls", f"@{tmp_path}/s.toml").out == "k\n"


# ---------------------------------------------------------------- errors and conventions


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("ls", "ftp://host/x"), 2, "unknown URL scheme 'ftp'"),
        (("ls", "file:///tmp/x?digest_len=abc"), 2, "digest_len='abc'"),
        (("ls", "s3://b?aws_access_key_id=AKIA"), 2, "credentials"),
        (("get", "{TMP}", "a//b"), 2, "bad key"),
        (("ls", "{TMP}", "--bogus"), 2, "No such option"),
        (("frobnicate",), 2, "No such command"),
        (("ls",), 2, "Missing argument 'STORE'"),
        (("rm", "{TMP}"), 2, "give KEYS or --prefix"),
        (("get", "{TMP}", "k", "--raw", "--json"), 2, "cannot be used together"),
        (("get", "{TMP}", "missing"), 1, "no such key: missing"),
        (("ls", "{TMP}/nowhere"), 1, "no store at"),
        (("ls", "{TMP}", "--newest", "0"), 2, "--newest"),
    ],
)
def test_errors_are_one_clear_line_with_the_right_exit_code(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    persidict.FileDirDict(base_dir=str(tmp_path))["present"] = 1
    r = cli(*(a.replace("{TMP}", str(tmp_path)) for a in args))
    assert r.code == code, r
    assert message in r.one_error_line()
    assert r.out == ""


def test_reading_a_missing_bucket_is_an_error_and_creates_nothing(endpoint: str, aws_env: None) -> None:
    bucket = f"cli-typo-{uuid.uuid4().hex[:8]}"
    url = f"s3://{bucket}/app?endpoint={endpoint}&region=us-east-1"
    for args in (("ls", url), ("get", url, "k"), ("stat", url)):
        r = cli(*args)
        assert r.code == 1, r
        assert f"no store at s3://{bucket}" in r.one_error_line()
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    r = cli("--debug", "get", str(tmp_path), "missing")
    assert r.code == 1 and "Traceback" in r.err and r.err.rstrip().endswith("no such key: missing")


def test_every_command_has_help_with_examples() -> None:
    r = cli("--help")
    assert r.code == 0 and all(c in r.out for c in COMMANDS) and "completion" in r.out
    for c in COMMANDS:
        r = cli(c, "--help")
        assert r.code == 0 and "Examples:" in r.out and f"persidict {c} " in r.out, c


def test_no_arguments_prints_the_help() -> None:
    r = cli()
    assert r.code == 0 and r.out.startswith("Usage: persidict") and "Commands:" in r.out


def test_version() -> None:
    r = cli("--version")
    assert (r.code, r.out) == (0, f"persidict {persidict.__version__}\n")


def test_shell_completion_script_and_completions() -> None:
    r = cli(env={"_PERSIDICT_COMPLETE": "bash_source"})
    assert r.code == 0 and "complete" in r.out and "_PERSIDICT_COMPLETE" in r.out
    r = cli(env={"_PERSIDICT_COMPLETE": "bash_complete", "COMP_WORDS": "persidict p", "COMP_CWORD": "1"})
    assert r.code == 0 and {"plain,purge", "plain,put"} <= set(r.out.splitlines())


def test_the_console_script_runs() -> None:
    script = shutil.which("persidict", path=os.path.dirname(sys.executable))
    assert script is not None, "pip install -e '.[cli]' installs the persidict script"
    p = subprocess.run([script, "--version"], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert (p.returncode, p.stdout) == (0, f"persidict {persidict.__version__}\n")


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; return the exit code and what stderr showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "persidict", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=cli_env(env),
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        code = p.wait(timeout=60)
    finally:
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    assert "\x1b[" not in cli("get", str(tmp_path), "missing").err  # a pipe: no colour
    code, shown = _on_a_terminal(["get", str(tmp_path), "missing"], {})
    assert code == 1 and "\x1b[" in shown and "no such key" in shown
    code, shown = _on_a_terminal(["get", str(tmp_path), "missing"], {"NO_COLOR": "1"})
    assert code == 1 and "\x1b[" not in shown and "no such key" in shown


def test_progress_bars_only_on_a_terminal(tmp_path: Path) -> None:
    src = persidict.FileDirDict(base_dir=str(tmp_path / "src"))
    src.update({f"k{i}": i for i in range(50)})
    r = cli("cp", str(tmp_path / "src"), str(tmp_path / "piped"))
    assert (
        r.code == 0 and r.err.startswith("50 copied, 0 skipped, 0 failed, ") and len(r.err.splitlines()) == 1
    )
    code, shown = _on_a_terminal(["cp", str(tmp_path / "src"), str(tmp_path / "tty")], {})
    assert code == 0 and "50 copied" in shown and "copy: " in shown and "/s]" in shown  # tqdm's bar
    keys = [f"k{i}" for i in range(50)]
    r = cli("rm", str(tmp_path / "piped"), *keys, "--yes")
    assert (r.code, r.err) == (0, "deleted 50 item(s)\n")
    code, shown = _on_a_terminal(["rm", str(tmp_path / "tty"), *keys, "--yes"], {})
    assert code == 0 and "discard_many: " in shown and "deleted 50 item(s)" in shown
    code, shown = _on_a_terminal(["purge", str(tmp_path / "src"), "--older-than", "0s"], {})
    assert code == 0 and "discard_many: " in shown and "purged 50 item(s)" in shown


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    d = persidict.LmdbDict(base_dir=str(tmp_path / "db.lmdb"))
    d.set_many({f"a-key-long-enough-to-fill-the-pipe-{i}": i for i in range(5000)})  # 200 kB > a pipe
    d.close()
    p = popen("ls", f"lmdb://{tmp_path}/db.lmdb")
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(10)
    p.stdout.close()
    assert p.stderr.read() == b""  # no traceback, no message
    assert p.wait(timeout=60) in (0, 1)
