"""COMPAT.md, S3: a bucket for every dict built (0), root_prefix and base_url (19), S3Dict(digest_len) (20).

Item 0 runs in-process under ``moto.mock_aws()`` and over HTTP against the
moto server (tests/s3_helpers.py): a fresh mock per test, a bucket deleted
while dicts are alive, a bucket that cannot be created (CreateBucket answered
403), and the request counts of the hot paths.
"""

from __future__ import annotations

import functools
import pickle
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import boto3
import botocore.handlers
import pytest
from moto import mock_aws

from persidict import ANY_ETAG, ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE, BackendError
from persidict.backends.base import IF_ABSENT, IfMatch, PreconditionFailed
from persidict.backends.s3 import ClientSpec, client_for, forget_clients
from persidict.s3_dict import BasicS3Dict, S3Dict

from .s3_helpers import (
    FAKE_ENV,
    SERVER_CREDENTIALS,
    UNSET_ENV,
    DenyCreateBucket,
    client_of,
    log_requests,
    moto_endpoint,
)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, no developer's AWS setup; shared clients are kept, as in a user's suite."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)


@attrs.frozen
class Place:
    """An S3 to test against: a raw client, the dict parameters that reach it, a fresh bucket name."""

    raw: Any
    params: dict[str, Any]
    bucket: str

    def spec(self) -> ClientSpec:
        """The client spec of the dicts built with ``params`` (to reach their shared client first)."""
        return ClientSpec(**self.params)

    def bucket_exists(self) -> bool:
        """Whether the bucket exists (asked with the raw client)."""
        names = {b["Name"] for b in self.raw.list_buckets().get("Buckets", [])}
        return self.bucket in names

    def delete_bucket(self) -> None:
        """Delete every object of the bucket, then the bucket."""
        listed = self.raw.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        for obj in listed:
            self.raw.delete_object(Bucket=self.bucket, Key=obj["Key"])
        self.raw.delete_bucket(Bucket=self.bucket)
        assert not self.bucket_exists()

    def keys(self) -> list[str]:
        """The object keys of the bucket, sorted."""
        return sorted(o["Key"] for o in self.raw.list_objects_v2(Bucket=self.bucket).get("Contents", []))


def _fresh_bucket() -> str:
    return f"compat-{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=["mock_aws", "server"])
def place(request: pytest.FixtureRequest) -> Iterator[Place]:
    """In-process moto (a fresh mock) or the moto server over HTTP (a fresh bucket)."""
    if request.param == "mock_aws":
        with mock_aws():
            yield Place(boto3.client("s3", region_name="us-east-1"), {}, _fresh_bucket())
    else:
        endpoint = moto_endpoint()
        raw = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        yield Place(raw, {"endpoint_url": endpoint, **SERVER_CREDENTIALS}, _fresh_bucket())


Make = Callable[..., BasicS3Dict[Any]]


@pytest.fixture(params=["BasicS3Dict", "S3Dict"])
def make(request: pytest.FixtureRequest, place: Place, tmp_path: Path) -> Make:
    """Build a BasicS3Dict or an S3Dict (cache under tmp_path) on ``place``'s bucket."""

    def build(**kwargs: Any) -> BasicS3Dict[Any]:
        params = {"bucket_name": place.bucket, **place.params, **kwargs}
        if request.param == "S3Dict":
            params.setdefault("base_dir", str(tmp_path / "cache"))
            return S3Dict(**params)
        return BasicS3Dict(**params)

    return build


# ---------------------------------------------------------------- item 0: a fresh mock_aws per test

_CLIENTS_SEEN: set[int] = set()


@pytest.mark.parametrize("run", range(20))
def test_twenty_tests_each_under_its_own_mock_aws(run: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    shared_cache = tmp_path_factory.getbasetemp() / "compat-s3-shared-cache"
    with mock_aws():
        d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="bucket-1")
        assert "k" not in d and len(d) == 0  # a new, empty S3
        d["k"] = run
        assert d["k"] == run
        cached: S3Dict[Any] = S3Dict(bucket_name="bucket-1", base_dir=shared_cache, root_prefix="c")
        cached["k"] = [run]
        assert cached["k"] == [run] and sorted(tuple(k) for k in d) == [("c", "k"), ("k",)]
        raw = boto3.client("s3", region_name="us-east-1")
        assert raw.head_object(Bucket="bucket-1", Key="k.pkl")["ContentLength"] > 0
        _CLIENTS_SEEN.add(id(client_of(d)))
    # The runs share one cached boto3 client, as a user's suite does.
    assert len(_CLIENTS_SEEN) == 1


def test_twenty_mock_aws_contexts_in_a_loop_with_dicts_kept_across(tmp_path: Path) -> None:
    kept: list[BasicS3Dict[Any]] = []
    for i in range(20):
        with mock_aws():
            d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="bucket-1")
            d["k"] = i
            assert d["k"] == i
            for old in kept:  # built in earlier contexts: they follow the active mock
                assert old["k"] == i
            kept.append(S3Dict(bucket_name="bucket-1", base_dir=tmp_path) if i % 2 else d)


def test_example_of_the_contract() -> None:
    with mock_aws():
        BasicS3Dict(bucket_name="bucket-1")["k"] = 1
    with mock_aws():  # a new, empty S3
        d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="bucket-1")
        d["k"] = 2
        assert d["k"] == 2


def test_a_dict_built_in_a_second_mock_aws_talks_to_that_mock() -> None:
    with mock_aws():
        first: BasicS3Dict[Any] = BasicS3Dict(bucket_name="shared-bucket")
        first["k"] = "one"
    with mock_aws():
        second: BasicS3Dict[Any] = BasicS3Dict(bucket_name="shared-bucket")
        assert client_of(second) is client_of(first)  # one cached client...
        assert "k" not in second and len(second) == 0  # ...talking to the second mock
        second["k"] = "two"
        raw = boto3.client("s3", region_name="us-east-1")
        assert pickle.loads(raw.get_object(Bucket="shared-bucket", Key="k.pkl")["Body"].read()) == "two"
        assert first["k"] == "two"


def test_clients_are_rebuilt_once_botocore_gains_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    # `import moto` adds its hook to botocore's handlers; a client built before would lack it.
    spec = ClientSpec(region="us-east-1")
    before = client_for(spec)
    assert client_for(spec) is before
    grown = [*botocore.handlers.BUILTIN_HANDLERS, ("before-send.s3", lambda **kwargs: None)]
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", grown)
    assert client_for(spec) is not before


# ---------------------------------------------------------------- item 0: a bucket deleted under live dicts


def _get(d: BasicS3Dict[Any], etag: Any) -> None:
    with pytest.raises(KeyError):
        d["k"]


def _set(d: BasicS3Dict[Any], etag: Any) -> None:
    d["k"] = 2
    assert d["k"] == 2


def _contains(d: BasicS3Dict[Any], etag: Any) -> None:
    assert "k" not in d


def _discard(d: BasicS3Dict[Any], etag: Any) -> None:
    assert d.discard("k") is False


def _delete(d: BasicS3Dict[Any], etag: Any) -> None:
    with pytest.raises(KeyError):
        del d["k"]


def _len(d: BasicS3Dict[Any], etag: Any) -> None:
    assert len(d) == 0


def _iterate(d: BasicS3Dict[Any], etag: Any) -> None:
    assert list(d) == [] and list(d.keys_and_timestamps()) == []


def _clear(d: BasicS3Dict[Any], etag: Any) -> None:
    d.clear()
    assert len(d) == 0


def _timestamp(d: BasicS3Dict[Any], etag: Any) -> None:
    with pytest.raises(KeyError):
        d.timestamp("k")


def _insert_if_absent(d: BasicS3Dict[Any], etag: Any) -> None:
    r = d.setdefault_if("k", 3, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and d["k"] == 3


def _set_if_any(d: BasicS3Dict[Any], etag: Any) -> None:
    r = d.set_item_if("k", 4, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert r.condition_was_satisfied and d["k"] == 4


def _set_if_stale(d: BasicS3Dict[Any], etag: Any) -> None:
    r = d.set_item_if("k", 5, etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and "k" not in d


def _discard_if_stale(d: BasicS3Dict[Any], etag: Any) -> None:
    r = d.discard_if("k", etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied


def _transform(d: BasicS3Dict[Any], etag: Any) -> None:
    d.transform_item("k", lambda v: 6 if v is ITEM_NOT_AVAILABLE else v + 1)
    assert d["k"] == 6


AFTER_DELETION = {
    f.__name__.strip("_"): f
    for f in (
        _get,
        _set,
        _contains,
        _discard,
        _delete,
        _len,
        _iterate,
        _clear,
        _timestamp,
        _insert_if_absent,
        _set_if_any,
        _set_if_stale,
        _discard_if_stale,
        _transform,
    )
}


@pytest.mark.parametrize("operation", list(AFTER_DELETION))
def test_a_deleted_bucket_is_created_again_by_the_next_request(
    operation: str, make: Make, place: Place
) -> None:
    d = make(root_prefix="r")
    d["k"] = 1
    etag = d.etag("k")
    place.delete_bucket()
    AFTER_DELETION[operation](d, etag)
    assert place.bucket_exists()
    # The dict, its subdicts and other dicts on the bucket all carry on.
    d["x", "y"] = 7
    assert d.get_subdict("x")["y"] == 7 and make()["r", "x", "y"] == 7


def test_a_dict_built_after_the_deletion_works(make: Make, place: Place) -> None:
    old = make()
    old["k"] = 1
    place.delete_bucket()
    new = make()
    assert place.bucket_exists()  # building it made sure of the bucket
    assert "k" not in new and len(new) == 0
    new["k"] = 2
    assert new["k"] == 2 and old["k"] == 2


def test_every_request_kind_creates_the_bucket_and_is_sent_once_more(place: Place) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=place.bucket, **place.params)
    remote = d._s3
    log = log_requests(client_of(d))
    loc = ("k.pkl",)

    def gone() -> None:
        place.delete_bucket()
        log.clear()

    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: remote.read(loc), "GetObject"),
        (lambda: remote.write(loc, b"x"), "PutObject"),
        (lambda: remote.write(loc, b"x", precondition=IF_ABSENT), "PutObject"),
        (lambda: list(remote.list(())), "ListObjectsV2"),
        (lambda: remote.delete_many([loc]), "DeleteObjects"),
    ]
    for call, op in cases:
        gone()
        call()
        assert place.bucket_exists()
        assert log.ops == [op, "CreateBucket", op], (op, log.ops)
    for precondition_call, op in (
        (lambda: remote.write(loc, b"x", precondition=IfMatch('"nope"')), "PutObject"),
        (lambda: remote.delete(loc, precondition=IfMatch('"nope"')), "DeleteObject"),
    ):
        gone()
        with pytest.raises(PreconditionFailed):  # sent again into the new, empty bucket
            precondition_call()
        assert log.ops == [op, "CreateBucket", op], (op, log.ops)
    # A HEAD's 404 has no body: the bucket is asked about (in-process moto says NoSuchBucket at once).
    gone()
    assert remote.stat(loc) is None and place.bucket_exists()
    assert log.ops in (
        ["HeadObject", "HeadBucket", "CreateBucket", "HeadObject"],
        ["HeadObject", "CreateBucket", "HeadObject", "HeadBucket"],
    ), log.ops


def test_a_bucket_is_created_again_in_the_dicts_region_and_races_are_tolerated(place: Place) -> None:
    params = {**place.params, "region": "eu-west-1"}
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=place.bucket, **params)
    place.delete_bucket()
    d["k"] = 1
    assert place.raw.get_bucket_location(Bucket=place.bucket)["LocationConstraint"] == "eu-west-1"
    place.delete_bucket()
    # Another creator gets there first: ours then answers BucketAlreadyOwnedByYou, and the write goes on.
    answers: list[str] = []

    def other_creator_first(**kwargs: Any) -> None:
        place.raw.create_bucket(
            Bucket=place.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )

    def record(parsed: dict[str, Any], **kwargs: Any) -> None:
        answers.append(parsed.get("Error", {}).get("Code", "created"))

    events = client_of(d).meta.events
    events.register_first("before-call.s3.CreateBucket", other_creator_first)
    events.register("after-call.s3.CreateBucket", record)
    try:
        d["k"] = 2
    finally:
        events.unregister("before-call.s3.CreateBucket", other_creator_first)
        events.unregister("after-call.s3.CreateBucket", record)
    assert answers == ["BucketAlreadyOwnedByYou"] and d["k"] == 2


# ---------------------------------------------------------------- item 0: a bucket that cannot be created


def _raises_backend_error(bucket: str, operation: Callable[[], Any]) -> None:
    with pytest.raises(BackendError) as err:
        operation()
    assert not isinstance(err.value, KeyError)
    assert bucket in str(err.value) and "AccessDenied" in str(err.value)


FORBIDDEN_OPERATIONS: dict[str, Callable[[BasicS3Dict[Any]], Any]] = {
    "get": lambda d: d["k"],
    "contains": lambda d: "k" in d,
    "discard": lambda d: d.discard("k"),
    "len": len,
    "iterate": list,
    "keys": lambda d: list(d.keys()),
    "items": lambda d: list(d.items()),
    "get_default": lambda d: d.get("k", "default"),
    "set": lambda d: d.__setitem__("k", 1),
    "delete": lambda d: d.__delitem__("k"),
    "timestamp": lambda d: d.timestamp("k"),
    "insert_if_absent": lambda d: d.setdefault_if("k", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
    "set_if_any": lambda d: d.set_item_if("k", 1, ITEM_NOT_AVAILABLE, ANY_ETAG),
    "transform": lambda d: d.transform_item("k", lambda v: 1),
    "clear": lambda d: d.clear(),
}


@pytest.fixture
def deny_create(place: Place) -> Iterator[DenyCreateBucket]:
    """CreateBucket answered 403 on the shared client of the dicts built on ``place``."""
    client = client_for(place.spec())
    deny = DenyCreateBucket().install(client)
    yield deny
    deny.remove(client)
    forget_clients()


@pytest.mark.parametrize("when", ["denied_from_the_start", "deleted_then_denied"])
def test_a_bucket_that_cannot_be_created_is_a_backend_error_from_every_operation(
    when: str, make: Make, place: Place, deny_create: DenyCreateBucket
) -> None:
    if when == "deleted_then_denied":
        deny_create.remove(client_for(place.spec()))
        d = make()
        d["k"] = 1
        place.delete_bucket()
        deny_create.install(client_for(place.spec()))
    else:
        d = make()  # building it is no error yet: the requests report it
        assert deny_create.denied == 1
    for name, operation in FORBIDDEN_OPERATIONS.items():
        before = deny_create.denied
        _raises_backend_error(place.bucket, functools.partial(operation, d))
        assert deny_create.denied == before + 1, name  # each one tried to create the bucket
    assert not place.bucket_exists()


# ---------------------------------------------------------------- item 0: request counts


def test_the_hot_paths_stay_one_request_each(make: Make, place: Place) -> None:
    log = log_requests(client_for(place.spec()))
    d = make()
    assert log.take() == {"HeadBucket": 1, "CreateBucket": 1}  # building it made sure of the bucket
    make()
    assert log.take() == {"HeadBucket": 1}
    for i in range(5):
        d["k"] = i
        assert log.take() == {"PutObject": 1}
        assert d["k"] == i
        assert log.take() == {"GetObject": 1}
        assert "k" in d
        assert log.take() == {"HeadObject": 1}
    # Only a HEAD answering 404 is followed by a HeadBucket (a 404 to HEAD is the same for key and bucket).
    assert "absent" not in d
    assert log.take() == {"HeadObject": 1, "HeadBucket": 1}


# ---------------------------------------------------------------- item 19: root_prefix and base_url


def _sub(d: BasicS3Dict[Any], key: str | tuple[str, ...]) -> BasicS3Dict[Any]:
    sub = d.get_subdict(key)
    assert type(sub) is type(d)
    assert isinstance(sub, BasicS3Dict)
    return sub


def test_root_prefix_ends_with_a_slash(make: Make, place: Place) -> None:
    d = make(root_prefix="root")
    assert d.root_prefix == "root/" and d.get_params()["root_prefix"] == "root/"
    assert d.base_url == f"s3://{place.bucket}/root/"
    same = make(root_prefix="root/")
    assert same.get_params() == d.get_params() and same == d
    assert make(root_prefix="a/b").root_prefix == "a/b/"
    top = make()
    assert top.root_prefix == "" and top.get_params()["root_prefix"] == ""
    assert top.base_url == f"s3://{place.bucket}/"
    assert _sub(top, "a").root_prefix == "a/"


def test_a_subdicts_root_prefix_adds_the_sub_key_and_a_slash(make: Make, place: Place) -> None:
    d = make(root_prefix="root")
    sub = _sub(d, "a")
    assert sub.root_prefix == "root/a/" and sub.get_params()["root_prefix"] == "root/a/"
    assert sub.base_url == f"s3://{place.bucket}/root/a/"
    assert _sub(sub, "b").root_prefix == "root/a/b/" == _sub(d, ("a", "b")).root_prefix


def test_object_keys_do_not_change_and_params_reopen_the_same_objects(make: Make, place: Place) -> None:
    d = make(root_prefix="root")
    d["a", "b"] = 1
    sub = d.get_subdict("a")
    sub["c"] = 2
    top = make()
    top["t"] = 3
    assert place.keys() == ["root/a/b.pkl", "root/a/c.pkl", "t.pkl"]
    again = type(d)(**d.get_params())
    assert again == d and again["a", "b"] == 1
    reopened = type(sub)(**sub.get_params())
    assert reopened == sub and reopened["c"] == 2 and dict(reopened) == {("b",): 1, ("c",): 2}
    reopened["e"] = 4
    assert place.keys() == ["root/a/b.pkl", "root/a/c.pkl", "root/a/e.pkl", "t.pkl"]
    assert pickle.loads(pickle.dumps(sub)).root_prefix == "root/a/"


# ---------------------------------------------------------------- item 20: S3Dict(digest_len=...)


@pytest.fixture
def mocked() -> Iterator[None]:
    """In-process moto."""
    with mock_aws():
        yield


@pytest.mark.usefixtures("mocked")
def test_s3dict_digest_len_default_and_params(tmp_path: Path) -> None:
    d: S3Dict[Any] = S3Dict(bucket_name="digest-bucket", base_dir=tmp_path)
    assert d.digest_len == 8 and d.get_params()["digest_len"] == 8
    for n in (0, 3, 12):
        e: S3Dict[Any] = S3Dict(bucket_name="digest-bucket", base_dir=tmp_path, digest_len=n)
        assert e.digest_len == n and e.get_params()["digest_len"] == n
        assert S3Dict(**e.get_params()).digest_len == n
        assert pickle.loads(pickle.dumps(e)).digest_len == n
        assert _sub(e, "s").digest_len == n and _sub(e, "s").get_params()["digest_len"] == n


@pytest.mark.usefixtures("mocked")
@pytest.mark.parametrize("bad", ["8", 2.5, None, True, [8]])
def test_s3dict_digest_len_of_a_wrong_type(bad: Any, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="digest_len must be an int"):
        S3Dict(bucket_name="digest-bucket", base_dir=tmp_path, digest_len=bad)


@pytest.mark.usefixtures("mocked")
def test_s3dict_negative_digest_len(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="digest_len must be an int >= 0"):
        S3Dict(bucket_name="digest-bucket", base_dir=tmp_path, digest_len=-1)


def _cached_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.usefixtures("mocked")
def test_s3dict_digest_len_names_the_cached_files_only(tmp_path: Path) -> None:
    raw = boto3.client("s3", region_name="us-east-1")
    layouts: dict[int, list[str]] = {}
    for n in (0, 4, 8):
        d: S3Dict[Any] = S3Dict(
            bucket_name=f"digest-{n}", base_dir=tmp_path / str(n), root_prefix="p", digest_len=n
        )
        d["a", "k"] = 1
        d["k"] = 2
        d["K"] = 3
        keys = sorted(o["Key"] for o in raw.list_objects_v2(Bucket=f"digest-{n}")["Contents"])
        assert keys == ["p/K.pkl", "p/a/k.pkl", "p/k.pkl"]  # S3 object keys: no digest
        layouts[n] = _cached_files(tmp_path / str(n) / f"digest-{n}")
        assert d["a", "k"] == 1 and d["k"] == 2 and d["K"] == 3
    assert layouts[0] == ["p/K.pkl", "p/a/k.pkl", "p/k.pkl"]
    for n in (4, 8):
        suffix = f"_[a-z2-7]{{{n}}}"
        assert len(layouts[n]) == 3
        for name in layouts[n]:
            assert re.fullmatch(rf"p{suffix}/(a{suffix}/)?[kK]{suffix}\.pkl", name), name
        # "k" and "K" stay apart on a case-insensitive file system.
        assert len({name.lower() for name in layouts[n]}) == 3


@pytest.mark.usefixtures("mocked")
def test_basic_s3dict_has_no_cache_digest(tmp_path: Path) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="digest-bucket", root_prefix="p")
    assert d.digest_len == 0 and "digest_len" not in d.get_params()
    d["a", "k"] = 1
    raw = boto3.client("s3", region_name="us-east-1")
    assert [o["Key"] for o in raw.list_objects_v2(Bucket="digest-bucket")["Contents"]] == ["p/a/k.pkl"]
    assert BasicS3Dict(**d.get_params()) == d
