"""BasicS3Dict's store: objects in an S3 bucket, through one boto3 client.

Object key = root prefix (with a trailing ``/`` when non-empty) +
``"/".join(location)``. Preconditions are S3 conditional requests, so every
conditional operation is atomic on the server: ``IfAbsent`` is
``PutObject(IfNoneMatch="*")``, ``IfMatch`` is ``PutObject / DeleteObject
(IfMatch=etag)``; ``read(if_none_match=e)`` is ``GetObject(IfNoneMatch=e)``.
A 404 means absent; every other failure (403, 5xx after retries, timeouts)
is a :class:`~persidict.errors.BackendError`, never a missing key.

This module is the only one that imports boto3; it is imported when the
first S3 dict is built.
"""

from __future__ import annotations

import builtins
import email.utils
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal, NoReturn

import attrs
import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import BackendError
from .base import (
    Capabilities,
    IfAbsent,
    IfMatch,
    Location,
    NotModified,
    Precondition,
    PreconditionFailed,
    ReadAnswer,
    Stat,
)

ChecksumMode = Literal["when_supported", "when_required"]
"""boto3's checksum settings; "when_required" suits stores that reject CRC headers."""

DELETE_BATCH = 1000
"""The most keys one DeleteObjects call accepts."""

CONFLICT_ATTEMPTS = 3
"""Sends of a create-only PUT that keeps meeting 409 ConditionalRequestConflict."""

_DEFAULT_RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 5}
_DEFAULT_CONFIG = Config(retries=_DEFAULT_RETRIES)

# Environment variables that change which client boto3 would build.
_ENV_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)


@attrs.frozen
class ClientSpec:
    """Everything that determines an S3 client; unset fields come from the environment."""

    region: str | None = None
    endpoint_url: str | None = None
    profile_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = attrs.field(default=None, repr=False)
    aws_session_token: str | None = attrs.field(default=None, repr=False)
    checksum: ChecksumMode | None = None
    client_config: Config | None = attrs.field(default=None, eq=False, hash=False)

    def config(self) -> Config:
        """Our defaults (standard retries, 5 attempts), then the checksum mode, then the user's Config."""
        config = _DEFAULT_CONFIG
        if self.checksum is not None:
            config = config.merge(
                Config(
                    request_checksum_calculation=self.checksum,
                    response_checksum_validation=self.checksum,
                )
            )
        user = self.client_config
        if user is not None:
            retries = getattr(user, "retries", None)
            config = config.merge(user)
            if retries is not None:  # keep our retry mode unless the user sets one
                ours = {"mode": _DEFAULT_RETRIES["mode"]}
                if "max_attempts" not in retries:
                    ours["total_max_attempts"] = _DEFAULT_RETRIES["total_max_attempts"]
                config = config.merge(Config(retries={**ours, **retries}))
        return config

    def build(self) -> Any:
        """A new boto3 S3 client (its botocore session shares the process's model loader)."""
        session = boto3.session.Session(
            botocore_session=_botocore_session(),
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            region_name=self.region,
            profile_name=self.profile_name,
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=self.config())


_loader: list[Any] = []


def _botocore_session() -> Any:
    """A fresh botocore session sharing one data loader, so service models load once per process.

    A fresh session builds a client in about a tenth of the time when the
    loader already holds the S3 model (clients differ in credentials and
    configuration, which is why each gets its own session).
    """
    session = botocore.session.get_session()
    if _loader:
        session.register_component("data_loader", _loader[0])
    else:
        _loader.append(session.get_component("data_loader"))
    return session


_clients: dict[tuple[object, ...], Any] = {}
_known_buckets: set[tuple[int, str]] = set()
_lock = threading.Lock()
_build_lock = threading.Lock()


def client_for(spec: ClientSpec) -> Any:
    """One shared (thread-safe) boto3 client per spec and environment, per process."""
    cache_key = (spec, id(spec.client_config), tuple(os.environ.get(v) for v in _ENV_VARS), os.getpid())
    with _lock:
        client = _clients.get(cache_key)
    if client is None:
        with _build_lock:  # botocore sessions are not thread-safe
            client = _clients.get(cache_key)
            if client is None:
                client = spec.build()
                with _lock:
                    _clients[cache_key] = client
    return client


def forget_clients() -> None:
    """Drop the shared clients and the buckets known to exist (for tests)."""
    with _lock:
        _clients.clear()
        _known_buckets.clear()


def _status(e: ClientError) -> int:
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status or 0)


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _is_absent(e: ClientError) -> bool:
    # HEAD answers have no body: their code is just "404".
    return _code(e) in ("NoSuchKey", "404", "NotFound")


def _is_conflict(e: ClientError) -> bool:
    # 412: the precondition failed. 409 ConditionalRequestConflict: a
    # concurrent conditional write won; nothing of ours was applied.
    return _status(e) in (412, 409) or _code(e) in ("PreconditionFailed", "ConditionalRequestConflict")


def _header_time(headers: dict[str, str], name: str) -> float:
    value = headers.get(name)
    if value:
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


class S3Backend:
    """Bytes as objects of one bucket under a key prefix.

    ETags are S3's (content hashes on most stores: rewriting identical bytes
    keeps the ETag, so ``capabilities.unique_etags`` is False).
    """

    capabilities = Capabilities(atomic_preconditions=True, unique_etags=False)

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix + "/" if prefix and not prefix.endswith("/") else prefix

    def describe(self) -> str:
        """The bucket, prefix and endpoint."""
        return f"s3://{self.bucket}/{self.prefix} at {self.client.meta.endpoint_url}"

    def __repr__(self) -> str:
        return f"S3Backend({self.describe()!r})"

    def where(self, loc: Location) -> str:
        """``s3://<bucket>/<object key> at <endpoint>``."""
        return f"s3://{self.bucket}/{self.key(loc)} at {self.client.meta.endpoint_url}"

    def key(self, loc: Location) -> str:
        """The object key of a location."""
        return self.prefix + "/".join(loc)

    def _fail(self, e: Exception, operation: str, key: str | None) -> NoReturn:
        if isinstance(e, ClientError):
            msg = f"S3 {operation} failed: {_code(e)} (HTTP {_status(e)}): {e}"
        else:
            msg = f"S3 {operation} failed: {type(e).__name__}: {e}"
        raise BackendError(msg, backend=self.describe(), operation=operation, key=key) from e

    # ------------------------------------------------------------ bucket

    def ensure_bucket(self, region: str | None) -> None:
        """Create the bucket when missing (once per client and bucket per process).

        An existing bucket we may not inspect (403) is tolerated, as is a
        concurrent creation by ourselves.
        """
        known = (id(self.client), self.bucket)
        if known in _known_buckets:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if _status(e) == 403:
                pass
            elif _status(e) == 404 or _code(e) in ("404", "NoSuchBucket", "NotFound"):
                self._create_bucket(region)
            else:
                self._fail(e, "HeadBucket", None)
        except BotoCoreError as e:
            self._fail(e, "HeadBucket", None)
        with _lock:
            _known_buckets.add(known)

    def _create_bucket(self, region: str | None) -> None:
        region = region or self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as e:
            if _code(e) == "BucketAlreadyOwnedByYou" or _status(e) == 403:
                return
            self._fail(e, "CreateBucket", None)
        except BotoCoreError as e:
            self._fail(e, "CreateBucket", None)

    # ------------------------------------------------------------ objects

    def stat(self, loc: Location) -> Stat | None:
        """One HeadObject."""
        key = self.prefix + "/".join(loc)
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _is_absent(e):
                return None
            self._fail(e, "HeadObject", key)
        except BotoCoreError as e:
            self._fail(e, "HeadObject", key)
        return Stat(etag=r["ETag"], mtime=r["LastModified"].timestamp(), size=r["ContentLength"])

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """One GetObject; with ``if_none_match`` a 304 answers NotModified."""
        key = self.prefix + "/".join(loc)
        try:
            if if_none_match is None:
                r = self.client.get_object(Bucket=self.bucket, Key=key)
            else:
                r = self.client.get_object(Bucket=self.bucket, Key=key, IfNoneMatch=if_none_match)
            data = r["Body"].read()
        except ClientError as e:
            if _status(e) == 304:
                headers = e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                etag = headers.get("etag", if_none_match)
                return NotModified(Stat(etag=etag, mtime=_header_time(headers, "last-modified"), size=-1))
            if _is_absent(e):
                return None
            self._fail(e, "GetObject", key)
        except BotoCoreError as e:
            self._fail(e, "GetObject", key)
        return data, Stat(etag=r["ETag"], mtime=r["LastModified"].timestamp(), size=len(data))

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat:
        """One PutObject, conditional when a precondition is given.

        A create-only PUT that meets a concurrent conditional upload of the
        same key (409 ConditionalRequestConflict) is sent again, as S3
        advises, so that it ends in success or a plain 412.
        """
        key = self.prefix + "/".join(loc)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if isinstance(precondition, IfAbsent):
            kwargs["IfNoneMatch"] = "*"
        elif isinstance(precondition, IfMatch):
            kwargs["IfMatch"] = precondition.etag
        attempts = CONFLICT_ATTEMPTS if isinstance(precondition, IfAbsent) else 1
        for attempt in range(1, attempts + 1):
            try:
                r = self.client.put_object(**kwargs)
                break
            except ClientError as e:
                if precondition is None or not (_is_conflict(e) or _code(e) == "NoSuchKey"):
                    self._fail(e, "PutObject", key)
                if _status(e) != 409 or attempt == attempts:
                    raise PreconditionFailed(loc, precondition) from None
            except BotoCoreError as e:
                self._fail(e, "PutObject", key)
        headers = r.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        mtime = _header_time(headers, "last-modified" if "last-modified" in headers else "date")
        return Stat(etag=r["ETag"], mtime=mtime, size=len(data))

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """IfMatch: one conditional DeleteObject. Otherwise HeadObject, then DeleteObject if present.

        S3 does not say whether a DeleteObject removed anything, hence the
        HeadObject; an absent key costs that one request only.
        """
        key = self.prefix + "/".join(loc)
        if isinstance(precondition, IfMatch):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=precondition.etag)
            except ClientError as e:
                if _is_conflict(e) or _is_absent(e):
                    raise PreconditionFailed(loc, precondition) from None
                self._fail(e, "DeleteObject", key)
            except BotoCoreError as e:
                self._fail(e, "DeleteObject", key)
            return True
        if self.stat(loc) is None:
            return False
        if isinstance(precondition, IfAbsent):
            raise PreconditionFailed(loc, precondition)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            self._fail(e, "DeleteObject", key)
        return True

    # ------------------------------------------------------------ listing

    def _pages(self, prefix: Location) -> Iterator[builtins.list[dict[str, Any]]]:
        folder = self.prefix + "".join(p + "/" for p in prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                yield page.get("Contents", [])
        except (ClientError, BotoCoreError) as e:
            self._fail(e, "ListObjectsV2", folder)

    def list(self, prefix: Location) -> Iterator[Location]:
        """Object keys under ``prefix`` as locations relative to it (ListObjectsV2, streamed)."""
        n = len(self.prefix) + sum(len(p) + 1 for p in prefix)
        for contents in self._pages(prefix):
            for obj in contents:
                yield tuple(obj["Key"][n:].split("/"))

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Like ``list``, with the ETag, LastModified and size of each object."""
        n = len(self.prefix) + sum(len(p) + 1 for p in prefix)
        for contents in self._pages(prefix):
            for obj in contents:
                stat = Stat(etag=obj["ETag"], mtime=obj["LastModified"].timestamp(), size=obj["Size"])
                yield tuple(obj["Key"][n:].split("/")), stat

    def delete_many(self, locs: Iterable[Location]) -> int:
        """DeleteObjects in batches of up to 1,000 keys; return how many S3 reports deleted."""
        deleted = 0
        batch: builtins.list[dict[str, str]] = []
        for loc in locs:
            batch.append({"Key": self.prefix + "/".join(loc)})
            if len(batch) == DELETE_BATCH:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def _delete_batch(self, batch: builtins.list[dict[str, str]]) -> int:
        try:
            r = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": False})
        except (ClientError, BotoCoreError) as e:
            self._fail(e, "DeleteObjects", batch[0]["Key"])
        errors = r.get("Errors", [])
        if errors:
            first = errors[0]
            what = f"{first.get('Code')}: {first.get('Message')}"
            raise BackendError(
                f"S3 DeleteObjects failed for {len(errors)} keys: {what}",
                backend=self.describe(),
                operation="DeleteObjects",
                key=first.get("Key"),
            )
        return len(r.get("Deleted", []))
