"""Fault injection: 5xx, throttling, 403 and timeouts are retried or surface as BackendError, never KeyError.

These run against the moto server on 127.0.0.1: an injected answer replaces
the HTTP request, which then never reaches the server (under in-process
``mock_aws`` moto's own hook would still carry the request out).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from persidict import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE, BackendError
from persidict.backends.s3 import forget_clients
from persidict.s3_dict import BasicS3Dict, S3Dict

from .s3_helpers import (
    FAKE_ENV,
    SERVER_CREDENTIALS,
    UNSET_ENV,
    FaultInjector,
    client_of,
    error_response,
    moto_endpoint,
)

ATTEMPTS = 3
"""Our default total attempts per request."""


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fake credentials, no sleeping between retries; a raw client of the moto server."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, ctx: 0)
    forget_clients()
    yield boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint())
    forget_clients()


@pytest.fixture
def bucket() -> str:
    """A fresh bucket name."""
    return f"fault-{uuid.uuid4().hex[:12]}"


def _open(cls: type[BasicS3Dict[Any]], bucket: str, **kwargs: Any) -> BasicS3Dict[Any]:
    params: dict[str, Any] = {**SERVER_CREDENTIALS, **kwargs}
    return cls(bucket_name=bucket, endpoint_url=moto_endpoint(), **params)


@pytest.fixture(params=["BasicS3Dict", "S3Dict"])
def d(request: pytest.FixtureRequest, tmp_path: Path, bucket: str) -> BasicS3Dict[Any]:
    """A store holding k = "old"."""
    if request.param == "S3Dict":
        store = _open(S3Dict, bucket, base_dir=str(tmp_path))
    else:
        store = _open(BasicS3Dict, bucket)
    store["k"] = "old"
    return store


def _server_error() -> Any:
    return error_response(500, "InternalError")


def _slow_down() -> Any:
    return error_response(503, "SlowDown")


def _forbidden() -> Any:
    return error_response(403, "AccessDenied")


def _timeout() -> Exception:
    return ReadTimeoutError(endpoint_url="http://s3.test")


@pytest.mark.parametrize("fail", [_server_error, _slow_down, _timeout])
def test_transient_failures_are_retried(d: BasicS3Dict[Any], fail: Any) -> None:
    client = client_of(d)
    get = FaultInjector("GetObject", fail, times=2).install(client)
    assert d["k"] == "old"
    assert get.attempts == 3
    put = FaultInjector("PutObject", fail, times=2).install(client)
    d["k"] = "new"
    assert put.attempts == 3
    head = FaultInjector("HeadObject", fail, times=1).install(client)
    assert ("k",) in d and head.attempts == 2
    listing = FaultInjector("ListObjectsV2", fail, times=1).install(client)
    assert list(d.keys()) == [("k",)] and listing.attempts >= 2
    get.remove(client)
    assert d["k"] == "new"


def test_transform_item_applies_once_through_retries(d: BasicS3Dict[Any]) -> None:
    d["n"] = 0
    client = client_of(d)
    FaultInjector("GetObject", _slow_down, times=1).install(client)
    put = FaultInjector("PutObject", _server_error, times=2).install(client)
    r = d.transform_item("n", lambda v: v + 1)
    assert r.new_value == 1 and d["n"] == 1 and put.attempts == 3


def test_conditional_write_through_retries(d: BasicS3Dict[Any]) -> None:
    etag = d.etag("k")
    FaultInjector("PutObject", _slow_down, times=1).install(client_of(d))
    r = d.set_item_if("k", "cas", etag, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.value_was_mutated and d["k"] == "cas"


@pytest.mark.parametrize("fail", [_server_error, _slow_down, _timeout])
def test_persistent_failures_are_backend_errors_not_key_errors(d: BasicS3Dict[Any], fail: Any) -> None:
    client = client_of(d)
    get = FaultInjector("GetObject", fail, times=None).install(client)
    with pytest.raises(BackendError) as err:
        d["k"]
    assert not isinstance(err.value, KeyError)
    assert err.value.operation == "GetObject" and err.value.key == "k.pkl"
    assert d.bucket_name in err.value.backend
    assert get.attempts == ATTEMPTS
    with pytest.raises(BackendError):
        d.get("k")
    with pytest.raises(BackendError):
        d.transform_item("k", lambda v: v + "!")
    get.remove(client)
    # Nothing half-written: a failed PUT leaves the old value whole.
    put = FaultInjector("PutObject", fail, times=None).install(client)
    with pytest.raises(BackendError):
        d["k"] = "new"
    with pytest.raises(BackendError):
        d.setdefault("fresh", 1)
    assert put.attempts == 2 * ATTEMPTS
    put.remove(client)
    assert d["k"] == "old" and ("fresh",) not in d
    # Failed deletes and listings leave everything in place.
    FaultInjector("DeleteObject", fail, times=None).install(client)
    FaultInjector("DeleteObjects", fail, times=None).install(client)
    with pytest.raises(BackendError):
        del d["k"]
    with pytest.raises(BackendError):
        d.clear()
    assert d["k"] == "old"
    FaultInjector("ListObjectsV2", fail, times=None).install(client)
    with pytest.raises(BackendError):
        len(d)


def test_forbidden_is_a_backend_error(d: BasicS3Dict[Any]) -> None:
    client = client_of(d)
    head = FaultInjector("HeadObject", _forbidden, times=None).install(client)
    with pytest.raises(BackendError, match=r"AccessDenied|403"):
        ("k",) in d  # noqa: B015
    assert head.attempts == 1  # a 403 is not retried
    FaultInjector("GetObject", _forbidden, times=None).install(client)
    with pytest.raises(BackendError, match="AccessDenied"):
        d["missing"]
    FaultInjector("PutObject", _forbidden, times=None).install(client)
    with pytest.raises(BackendError, match="AccessDenied"):
        d["k"] = "x"


def test_a_bucket_deleted_again_at_once_is_a_backend_error(d: BasicS3Dict[Any]) -> None:
    # NoSuchBucket, the bucket created again, and NoSuchBucket again: reported, not retried forever.
    client = client_of(d)
    get = FaultInjector("GetObject", lambda: error_response(404, "NoSuchBucket"), times=None).install(client)
    with pytest.raises(BackendError, match="NoSuchBucket") as err:
        d["k"]
    assert not isinstance(err.value, KeyError) and get.attempts == 2
    put = FaultInjector("PutObject", lambda: error_response(404, "NoSuchBucket"), times=None).install(client)
    with pytest.raises(BackendError, match="NoSuchBucket"):
        d["k"] = 1
    assert put.attempts == 2


def test_s3dict_cache_survives_a_failed_read(tmp_path: Path, bucket: str) -> None:
    d = _open(S3Dict, bucket, base_dir=str(tmp_path))
    d["k"] = "v"
    client = client_of(d)
    fault = FaultInjector("GetObject", _server_error, times=None).install(client)
    with pytest.raises(BackendError):
        d["k"]
    fault.remove(client)
    assert d["k"] == "v"


def test_unreachable_endpoint_is_a_backend_error(bucket: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port now: connections are refused, retried, then reported.
    with pytest.raises(BackendError, match="HeadBucket"):
        BasicS3Dict(bucket_name=bucket, endpoint_url=f"http://127.0.0.1:{port}")


def _conflict() -> Any:
    return error_response(409, "ConditionalRequestConflict")


def test_conditional_request_conflicts_are_retried(d: BasicS3Dict[Any]) -> None:
    client = client_of(d)
    put = FaultInjector("PutObject", _conflict, times=2).install(client)
    r = d.setdefault_if("new", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.value_was_mutated and d["new"] == 1 and put.attempts == 3
    put.remove(client)
    # On an If-Match PUT a 409 means "look again": the operation re-observes and succeeds.
    put = FaultInjector("PutObject", _conflict, times=1).install(client)
    r = d.set_item_if("k", "cas", d.etag("k"), ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.value_was_mutated and d["k"] == "cas" and put.attempts == 2
