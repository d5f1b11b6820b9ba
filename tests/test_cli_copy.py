"""``persidict cp`` and ``put --if-absent`` across processes (issue 17): round trips, resuming, races.

Real subprocesses against a folder, an LMDB file and a moto server over HTTP.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import persidict

from .cli_helpers import cli, popen
from .s3_helpers import FAKE_ENV, moto_endpoint

N = 1000


@pytest.fixture(scope="module")
def endpoint() -> str:
    """The moto server (in this process; the CLI reaches it over HTTP)."""
    return moto_endpoint()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials here too: the tests open the S3 stores to check them."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    yield


def _s3(endpoint: str) -> str:
    return f"s3://cli-{uuid.uuid4().hex[:12]}/copy?endpoint={endpoint}&region=us-east-1"


def _items(n: int) -> dict[Any, Any]:
    """Keys of one and two parts; values of several types and sizes."""
    out: dict[Any, Any] = {}
    for i in range(n):
        key: Any = (f"g{i % 7}", f"item{i}") if i % 3 else f"item{i}"
        out[key] = {"i": i, "text": "x" * (i % 50), "list": [i, str(i)]} if i % 2 else f"value {i}"
    return out


def _contents(url: str) -> dict[tuple[str, ...], Any]:
    d = persidict.open(url)
    return {tuple(k): v for k, v in d.items()}


def test_round_trip_folder_s3_lmdb_folder(tmp_path: Path, endpoint: str) -> None:
    src = str(tmp_path / "src")
    persidict.open(src).update(_items(N))
    s3, lmdb, back = _s3(endpoint), f"lmdb://{tmp_path}/copy.lmdb", str(tmp_path / "back")
    for a, b in ((src, s3), (s3, lmdb), (lmdb, back)):
        r = cli("cp", a, b, "--json")
        assert r.code == 0, r.err
        (summary,) = r.json_lines()
        assert (summary["copied"], summary["skipped"], summary["failed"]) == (N, 0, 0)
        assert summary["bytes"] > 0 and r.err == ""
    original = _contents(src)
    assert len(original) == N
    assert _contents(back) == original
    assert len(persidict.open(s3)) == N and _contents(lmdb) == original
    r = cli("cp", src, back, "--skip-existing", "--json")
    assert r.json_lines() == [{"copied": 0, "skipped": N, "failed": 0, "bytes": 0}]


def _files_in(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def test_a_killed_copy_resumes_with_skip_existing(tmp_path: Path, endpoint: str) -> None:
    s3, n = _s3(endpoint), N // 2
    items = _items(n)
    persidict.open(s3).update(items)
    dst = tmp_path / "dst"
    p = popen("cp", s3, str(dst))
    deadline = time.monotonic() + 60
    while _files_in(dst) < 50 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    p.kill()
    p.wait(timeout=30)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    p.stderr.close()
    assert p.returncode != 0, "the copy ended before it could be killed"
    done = len(persidict.open(str(dst)))
    assert 0 < done < n
    r = cli("cp", s3, str(dst), "--skip-existing", "--json")
    assert r.code == 0, r.err
    (summary,) = r.json_lines()
    assert summary["failed"] == 0 and summary["skipped"] >= done
    assert summary["copied"] + summary["skipped"] == n
    assert _contents(str(dst)) == {k if isinstance(k, tuple) else (k,): v for k, v in items.items()}


@pytest.mark.parametrize("kind", ["folder", "lmdb", "s3"])
def test_put_if_absent_racing_from_four_processes_has_one_winner(
    tmp_path: Path, endpoint: str, kind: str
) -> None:
    url = {"folder": str(tmp_path / "f"), "lmdb": f"lmdb://{tmp_path}/race.lmdb", "s3": _s3(endpoint)}[kind]
    assert cli("put", url, "other", "x").code == 0  # the store exists before the race
    racers = [popen("put", url, "lock", f"racer-{i}", "--if-absent") for i in range(4)]
    results: list[tuple[int, str, str]] = []
    for p in racers:
        raw_out, raw_err = p.communicate(timeout=120)
        results.append((p.returncode, raw_out.decode(), raw_err.decode()))
    winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    for i, (code, text, error) in enumerate(results):
        if i != winners[0]:
            assert code == 1 and text == "" and "exists" in error and len(error.splitlines()) == 1
    assert persidict.open(url)["lock"] == f"racer-{winners[0]}"


def test_spec_of_an_opened_s3_store_is_its_spec(endpoint: str, tmp_path: Path) -> None:
    from persidict.opening import parse_store
    from persidict.specs import spec_of

    for url in (_s3(endpoint) + "&format=json", _s3(endpoint) + f"&cache_dir={tmp_path}&digest_len=0"):
        spec = parse_store(url)
        assert spec_of(persidict.open(spec)) == spec
