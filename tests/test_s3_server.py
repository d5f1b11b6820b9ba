"""Integration: BasicS3Dict and S3Dict over HTTP against a moto server on 127.0.0.1.

The model-based test of persidict.testing, contention between processes,
and configuration from the environment the way boto3 reads it.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import settings

from persidict import PersiDict
from persidict.backends.s3 import forget_clients
from persidict.s3_dict import BasicS3Dict, S3Dict
from persidict.testing import persidict_state_machine

from .s3_helpers import FAKE_ENV, SERVER_CREDENTIALS, UNSET_ENV, client_of, increment_worker, moto_endpoint

BUCKET = "server-bucket"
EXAMPLES = int(os.environ.get("PERSIDICT_S3_MODEL_EXAMPLES", "10"))
"""Examples per model-based configuration (each example is a fresh prefix of one bucket)."""

_CACHE_ROOT = tempfile.mkdtemp(prefix="persidict-s3-model-")


def _server_params() -> dict[str, Any]:
    """A fresh prefix of the shared bucket on the moto server."""
    return {
        "bucket_name": BUCKET,
        "root_prefix": f"t/{uuid.uuid4().hex}",
        "endpoint_url": moto_endpoint(),
        **SERVER_CREDENTIALS,
    }


def _basic() -> PersiDict[Any]:
    return BasicS3Dict(**_server_params())


def _cached() -> PersiDict[Any]:
    return S3Dict(**_server_params(), base_dir=os.path.join(_CACHE_ROOT, uuid.uuid4().hex))


def _json_append_only() -> PersiDict[Any]:
    return BasicS3Dict(**_server_params(), serialization_format="json", append_only=True)


def _drop(d: PersiDict[Any]) -> None:
    if not d.append_only:
        d.clear()


_SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=25, deadline=None)

TestBasicS3DictModel = persidict_state_machine(_basic, cleanup=_drop).TestCase
TestBasicS3DictModel.settings = _SETTINGS

TestS3DictModel = persidict_state_machine(_cached, cleanup=_drop).TestCase
TestS3DictModel.settings = _SETTINGS

TestBasicS3DictJsonAppendOnlyModel = persidict_state_machine(_json_append_only).TestCase
TestBasicS3DictJsonAppendOnlyModel.settings = settings(
    max_examples=max(EXAMPLES // 2, 5), stateful_step_count=25, deadline=None
)


@pytest.fixture(scope="session")
def endpoint() -> str:
    """The moto server's URL (one server per test process)."""
    return moto_endpoint()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials; a developer's AWS setup cannot leak in."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    forget_clients()
    yield
    forget_clients()


@pytest.fixture(scope="module")
def pool() -> Iterator[Any]:
    """Four worker processes (spawned: each opens its own boto3 client)."""
    with multiprocessing.get_context("spawn").Pool(4) as workers:
        yield workers


def _contend(pool: Any, store: BasicS3Dict[Any], tasks: int, per_task: int) -> None:
    key = "counter"
    done = pool.starmap(increment_worker, [(store, key, per_task)] * tasks)
    assert done == [per_task] * tasks
    assert store[key] == tasks * per_task


def test_contention_basic(endpoint: str, pool: Any) -> None:
    _contend(pool, BasicS3Dict(**_server_params()), 4, 50)


def test_contention_cached_sharing_one_cache_folder(endpoint: str, pool: Any, tmp_path: Path) -> None:
    _contend(pool, S3Dict(**_server_params(), base_dir=str(tmp_path)), 4, 25)


@pytest.mark.slow
def test_contention_stress(endpoint: str, pool: Any, tmp_path: Path) -> None:
    per_task = 25 if os.environ.get("PERSIDICT_STRESS_SCALE") == "small" else 250
    _contend(pool, S3Dict(**_server_params(), base_dir=str(tmp_path)), 8, per_task)


def test_endpoint_from_the_environment(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="env-bucket")
    assert client_of(d).meta.endpoint_url == endpoint
    d["k"] = 1
    raw = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    assert raw.head_object(Bucket="env-bucket", Key="k.pkl")["ContentLength"] > 0
    assert d.get_params()["endpoint_url"] is None  # it keeps following the environment


def test_profile_from_a_config_file(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(f"[profile persidict-test]\nregion = eu-west-3\nendpoint_url = {endpoint}\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[persidict-test]\naws_access_key_id = key\naws_secret_access_key = secret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in (*FAKE_ENV, "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="profile-bucket", profile_name="persidict-test")
    client = client_of(d)
    assert client.meta.region_name == "eu-west-3" and client.meta.endpoint_url == endpoint
    d["k"] = "v"
    assert d["k"] == "v"
    monkeypatch.setenv("AWS_PROFILE", "persidict-test")
    e: BasicS3Dict[Any] = BasicS3Dict(bucket_name="profile-bucket")
    assert client_of(e).meta.region_name == "eu-west-3" and e["k"] == "v"


@pytest.mark.slow
def test_more_than_a_thousand_keys_over_http(endpoint: str) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(**_server_params())
    raw = client_of(d)
    for i in range(1_001):
        raw.put_object(Bucket=BUCKET, Key=f"{d.root_prefix}k{i}.pkl", Body=b"\x80\x04K\x01.")
    assert len(d) == 1_001 and sum(1 for _ in d.keys_and_timestamps()) == 1_001
    d.clear()
    assert len(d) == 0
