"""BasicS3Dict and S3Dict against moto in-process (mock_aws): layout, params, hierarchy, cache."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from persidict import (
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    BackendError,
    MutationPolicyError,
    NonEmptySafeStrTuple,
    PersiDict,
)
from persidict.backends.cached import pack, unpack
from persidict.backends.s3 import client_for, forget_clients
from persidict.s3_dict import BasicS3Dict, S3Dict, S3Dict_FileDirCached

from .s3_helpers import FAKE_ENV, UNSET_ENV, FaultInjector, client_of, error_response, log_requests

BUCKET = "test-bucket"


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fake credentials, no leaking AWS setup, moto in-process; a raw client for checks."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        forget_clients()
        yield boto3.client("s3", region_name="us-east-1")
        forget_clients()


@pytest.fixture(params=["basic", "cached"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A factory of BasicS3Dict or S3Dict (cache under tmp_path) with the given parameters."""

    def factory(**kwargs: Any) -> BasicS3Dict[Any]:
        kwargs.setdefault("bucket_name", BUCKET)
        if request.param == "cached":
            kwargs.setdefault("base_dir", str(tmp_path / "cache"))
            return S3Dict(**kwargs)
        return BasicS3Dict(**kwargs)

    return factory


def _keys(raw: Any, bucket: str = BUCKET) -> list[str]:
    return sorted(o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_import_persidict_does_not_import_boto3() -> None:
    code = (
        "import sys, persidict; persidict.S3Dict; persidict.BasicS3Dict; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_s3dict_filedircached_is_s3dict() -> None:
    assert S3Dict_FileDirCached is S3Dict
    assert issubclass(S3Dict, BasicS3Dict)


def test_dict_api_round_trip(make: Any) -> None:
    d = make()
    assert len(d) == 0 and not d
    d["a"] = 1
    d["b", "c"] = {"x": [1, 2]}
    assert d["a"] == 1 and d[("b", "c")] == {"x": [1, 2]}
    assert "a" in d and "zz" not in d
    assert sorted(d.keys()) == [("a",), ("b", "c")]
    assert len(d) == 2
    del d["a"]
    assert "a" not in d
    with pytest.raises(KeyError):
        d["a"]
    with pytest.raises(KeyError):
        del d["a"]
    assert d.discard("a") is False
    assert d.discard(("b", "c")) is True
    assert len(d) == 0


def test_object_keys_follow_the_published_layout(make: Any, aws: Any) -> None:
    d = make(root_prefix="my/prefix/")
    d["k"] = 1
    d["x", "y", "z"] = 2
    j = make(root_prefix="my/prefix", serialization_format="json")
    j["k"] = {"a": 1}
    top = make()
    top["t"] = "v"
    assert _keys(aws) == ["my/prefix/k.json", "my/prefix/k.pkl", "my/prefix/x/y/z.pkl", "t.pkl"]
    assert pickle.loads(aws.get_object(Bucket=BUCKET, Key="my/prefix/x/y/z.pkl")["Body"].read()) == 2
    # Objects written by others under the prefix are items too; foreign ones are ignored.
    aws.put_object(Bucket=BUCKET, Key="my/prefix/w.pkl", Body=pickle.dumps("from boto3"))
    aws.put_object(Bucket=BUCKET, Key="my/prefix/readme.md", Body=b"not an item")
    assert d["w"] == "from boto3"
    assert sorted(d.keys()) == [("k",), ("w",), ("x", "y", "z")]


def test_etag_and_timestamp_are_s3s(make: Any, aws: Any) -> None:
    d = make(root_prefix="p")
    d["k"] = "v"
    head = aws.head_object(Bucket=BUCKET, Key="p/k.pkl")
    assert d.etag("k") == head["ETag"]
    assert d.timestamp("k") == head["LastModified"].timestamp()
    with pytest.raises(KeyError):
        d.timestamp("nope")
    r = d.set_item_if("k", "w", head["ETag"], ETAG_IS_THE_SAME)
    assert r.resulting_etag == aws.head_object(Bucket=BUCKET, Key="p/k.pkl")["ETag"]
    assert dict(d.keys_and_timestamps()) == {("k",): d.timestamp("k")}


def test_get_params_reopen_the_same_store(make: Any) -> None:
    d = make(root_prefix="root", serialization_format="json", region="us-east-1", checksum="when_required")
    d["a", "b"] = 1
    params = d.get_params()
    assert list(params) == sorted(params)
    assert params["root_prefix"] == "root/" and params["bucket_name"] == BUCKET
    again = type(d)(**params)
    assert again == d and again["a", "b"] == 1
    sub = d.get_subdict("a")
    assert sub.get_params()["root_prefix"] == "root/a/" == sub.root_prefix
    assert sub.base_url == f"s3://{BUCKET}/root/a/"
    assert dict(sub) == {("b",): 1}
    reopened = type(d)(**sub.get_params())
    assert reopened == sub and reopened["b"] == 1
    reopened["c"] = 2
    assert d["a", "c"] == 2
    assert set(d.subdicts()) == {"a"}


def test_root_prefix_validation(make: Any) -> None:
    assert make(root_prefix="a/b/").get_params()["root_prefix"] == "a/b/"
    assert make(root_prefix="a/b").get_params() == make(root_prefix="a/b/").get_params()
    for bad in ("/a", "a//b", "a/../b", "."):
        with pytest.raises(ValueError):
            make(root_prefix=bad)
    with pytest.raises(TypeError):
        make(root_prefix=("a", "b"))
    with pytest.raises(ValueError):
        make(bucket_name="")
    with pytest.raises(ValueError):
        make(checksum="sometimes")


def test_pickle_and_repr_hide_nothing_but_secrets(make: Any) -> None:
    d = make(aws_access_key_id="AKIDTEST", aws_secret_access_key="s3cr3t-value", root_prefix="p")
    d["k"] = [1]
    text = repr(d)
    assert "s3cr3t-value" not in text and "AKIDTEST" in text and "***" in text
    clone = pickle.loads(pickle.dumps(d))
    assert clone == d and clone["k"] == [1]
    sub = pickle.loads(pickle.dumps(d.get_subdict("q")))
    assert sub.get_params()["root_prefix"] == "p/q/"


def test_clients_are_shared_per_configuration(make: Any) -> None:
    a, b = make(root_prefix="x"), make(root_prefix="y")
    assert client_of(a) is client_of(b)
    assert client_of(make(checksum="when_required")) is not client_of(a)
    assert client_of(a.get_subdict("s")) is client_of(a)


def test_more_than_a_thousand_keys(aws: Any) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, root_prefix="many")
    for i in range(1_050):
        aws.put_object(Bucket=BUCKET, Key=f"many/k{i:04d}.pkl", Body=pickle.dumps(i))
    aws.put_object(Bucket=BUCKET, Key="elsewhere.pkl", Body=pickle.dumps(0))
    log = log_requests(client_of(d))
    assert len(d) == 1_050
    assert log.take() == {"ListObjectsV2": 2}
    assert sorted(d.keys())[-1] == ("k1049",)
    log.clear()
    d.clear()
    assert log.counts() == {"ListObjectsV2": 2, "DeleteObjects": 2}
    assert _keys(aws) == ["elsewhere.pkl"]


def test_append_only(make: Any) -> None:
    d = make(append_only=True)
    d["k"] = 1
    with pytest.raises(MutationPolicyError):
        d["k"] = 2
    with pytest.raises(MutationPolicyError):
        del d["k"]
    assert d["k"] == 1
    r = d.setdefault_if("j", 5, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.value_was_mutated and d["j"] == 5


def test_concurrent_writers_are_detected(make: Any) -> None:
    d = make()
    other: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET)
    d["k"] = 1
    etag = d.etag("k")
    other["k"] = 2
    r = d.set_item_if("k", 3, etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and r.new_value == 2 and d["k"] == 2
    r = d.setdefault_if("k", 9, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and not r.value_was_mutated and d["k"] == 2
    r = d.discard_if("k", etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and d["k"] == 2


# ---------------------------------------------------------------- bucket creation


def test_bucket_is_created_when_missing(aws: Any) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="fresh-bucket", region="eu-west-1")
    d["k"] = 1
    raw = boto3.client("s3", region_name="eu-west-1")
    assert raw.get_bucket_location(Bucket="fresh-bucket")["LocationConstraint"] == "eu-west-1"
    east: BasicS3Dict[Any] = BasicS3Dict(bucket_name="east-bucket")
    east["k"] = 1
    assert aws.get_bucket_location(Bucket="east-bucket")["LocationConstraint"] in (None, "us-east-1")
    # Existing buckets are used as they are; every dict built checks with one HeadBucket.
    log = log_requests(client_of(d))
    BasicS3Dict(bucket_name="fresh-bucket", region="eu-west-1")
    assert log.take() == {"HeadBucket": 1}
    BasicS3Dict(bucket_name="fresh-bucket", region="eu-west-1")
    assert log.take() == {"HeadBucket": 1}


def test_forbidden_bucket_checks_are_tolerated(aws: Any) -> None:
    aws.create_bucket(Bucket="theirs")
    client = client_for(_spec())
    fault = FaultInjector("HeadBucket", lambda: error_response(403, "AccessDenied"), times=None)
    fault.install(client)
    log = log_requests(client)
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="theirs")
    assert log.counts() == {"HeadBucket": 1}
    d["k"] = 1
    assert fault.injected == 1


def test_forbidden_bucket_creation_is_tolerated(aws: Any) -> None:
    client = client_for(_spec())
    FaultInjector("CreateBucket", lambda: error_response(403, "AccessDenied"), times=None).install(client)
    BasicS3Dict(bucket_name="not-mine")  # no error; later requests say what is wrong


def test_a_bucket_owned_by_someone_else_is_an_error(aws: Any) -> None:
    client = client_for(_spec())
    taken = FaultInjector("CreateBucket", lambda: error_response(409, "BucketAlreadyExists"), times=None)
    taken.install(client)
    with pytest.raises(BackendError, match="BucketAlreadyExists"):
        BasicS3Dict(bucket_name="taken")


def _spec() -> Any:
    from persidict.backends.s3 import ClientSpec

    return ClientSpec()


# ---------------------------------------------------------------- client configuration


def _put_headers(d: BasicS3Dict[Any]) -> dict[str, str]:
    seen: dict[str, str] = {}

    def grab(request: Any, **kwargs: Any) -> None:
        seen.update({k.lower(): str(v) for k, v in request.headers.items()})

    client_of(d).meta.events.register_first("before-send.s3.PutObject", grab)
    d["k"] = "v"
    return seen


def test_checksum_setting(aws: Any) -> None:
    default = _put_headers(BasicS3Dict(bucket_name=BUCKET))
    assert default.get("x-amz-sdk-checksum-algorithm") == "b'CRC32'"
    when_required = _put_headers(BasicS3Dict(bucket_name=BUCKET, checksum="when_required"))
    assert not any("checksum" in h or "checksum" in v for h, v in when_required.items())


def test_client_config_is_merged(aws: Any) -> None:
    from botocore.config import Config

    d: BasicS3Dict[Any] = BasicS3Dict(
        bucket_name=BUCKET, client_config=Config(retries={"max_attempts": 4}, read_timeout=7)
    )
    cfg = client_of(d).meta.config
    assert cfg.read_timeout == 7 and cfg.retries == {"mode": "standard", "total_max_attempts": 5}
    assert cfg.connect_timeout == 5  # our default, kept
    plain = client_of(BasicS3Dict(bucket_name=BUCKET)).meta.config
    assert plain.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (plain.connect_timeout, plain.read_timeout) == (5, 15)
    assert d.get_params()["client_config"] is not None


def test_region_and_endpoint_from_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, region="eu-central-1")
    assert client_of(d).meta.region_name == "eu-central-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    e: BasicS3Dict[Any] = BasicS3Dict(bucket_name="other-bucket")
    assert client_of(e).meta.region_name == "ap-south-1"


# ---------------------------------------------------------------- S3Dict's cache


def _cache_file(d: S3Dict[Any], *parts: str) -> Path:
    """The cached copy of the object at ``parts`` (relative to the dict's root prefix)."""
    return Path(d.base_dir, *d._backend.local_location(parts))  # type: ignore[attr-defined]


def test_s3dict_caches_what_it_writes_and_reads(tmp_path: Path, aws: Any) -> None:
    d: S3Dict[Any] = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path), root_prefix="p")
    d["k"] = "v1"
    entry = unpack(_cache_file(d, "k.pkl").read_bytes())
    assert entry is not None and entry.etag == d.etag("k") and pickle.loads(entry.data) == "v1"
    log = log_requests(client_of(d))
    statuses: list[int] = []
    client_of(d).meta.events.register(
        "after-call.s3.GetObject", lambda http_response, **kw: statuses.append(http_response.status_code)
    )
    assert d["k"] == "v1"
    assert log.take() == {"GetObject": 1} and statuses == [304]
    # Another writer changes the object: the conditional GET brings the new bytes.
    aws.put_object(Bucket=BUCKET, Key="p/k.pkl", Body=pickle.dumps("v2"))
    assert d["k"] == "v2" and statuses[-1] == 200
    assert d["k"] == "v2" and statuses[-1] == 304
    # A subdict, or another S3Dict on the same cache folder, shares the entries.
    other: S3Dict[Any] = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path))
    assert other.get_subdict("p")["k"] == "v2" and statuses[-1] == 304
    # Deleted by someone else: KeyError, and the entry goes.
    aws.delete_object(Bucket=BUCKET, Key="p/k.pkl")
    with pytest.raises(KeyError):
        d["k"]
    assert not _cache_file(d, "k.pkl").exists()


def test_s3dict_ignores_a_damaged_cache(tmp_path: Path) -> None:
    d: S3Dict[Any] = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path))
    d["k"] = "v"
    _cache_file(d, "k.pkl").write_bytes(b"garbage")
    assert d["k"] == "v"
    assert unpack(_cache_file(d, "k.pkl").read_bytes()) is not None
    assert unpack(pack('"e"', b"x\ny")) is not None and unpack(b"persidict-cache-1 no-newline") is None


def test_s3dict_delete_and_clear_drop_cache_entries(tmp_path: Path) -> None:
    d: S3Dict[Any] = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path))
    d["a"] = 1
    d["b", "c"] = 2
    del d["a"]
    assert not _cache_file(d, "a.pkl").exists()
    d.clear()
    assert not _cache_file(d, "b", "c.pkl").exists()
    assert len(d) == 0


def test_s3dict_get_params_include_base_dir(tmp_path: Path) -> None:
    d: S3Dict[Any] = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path / "c"), root_prefix="r")
    params = d.get_params()
    assert params["base_dir"] == os.path.abspath(tmp_path / "c") and list(params) == sorted(params)
    sub = d.get_subdict(("x", "y"))
    sub["z"] = 3
    again: S3Dict[Any] = S3Dict(**sub.get_params())
    assert again == sub and again["z"] == 3 and d["x", "y", "z"] == 3
    assert isinstance(d, PersiDict)
    assert next(iter(d)) == NonEmptySafeStrTuple("x", "y", "z")
