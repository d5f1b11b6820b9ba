"""BasicS3Dict's store: objects in an S3 bucket, through one boto3 client.

Object key = root prefix (with a trailing ``/`` when non-empty) +
``"/".join(location)``. Preconditions are S3 conditional requests, so every
conditional operation is atomic on the server: ``IfAbsent`` is
``PutObject(IfNoneMatch="*")``, ``IfMatch`` is ``PutObject / DeleteObject
(IfMatch=etag)``; ``read(if_none_match=e)`` is ``GetObject(IfNoneMatch=e)``.
A 404 means absent; every other failure (403, 5xx after retries, timeouts)
is a :class:`~persidict.errors.BackendError`, never a missing key.

The bucket is made sure of when a dict is built (HeadBucket, CreateBucket if
missing), and again whenever a request meets NoSuchBucket: the bucket is
created and that request sent once more. Nothing is remembered between
dicts, so a bucket deleted and re-created while the process runs (or a fresh
``moto.mock_aws()`` per test) is handled like any other; steady-state
requests carry no bucket check.

Conditional writes happen exactly once even when a reply is lost (see
``S3Backend.write`` and ``S3Backend.delete``), and the defaults fail fast: a
hung endpoint is a BackendError within about a minute (see ``ClientSpec``).

Batch operations run ``BATCH_WORKERS`` requests at once by default, on the
shared client, whose connection pool holds ``POOL_CONNECTIONS``; deleting
many keys is a listing and DeleteObjects calls (see ``S3Backend.discard_many``).

This module is the only one that imports boto3; it is imported when the
first S3 dict is built.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime
import email.utils
import importlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, NoReturn

import attrs

try:
    import boto3
    import botocore.handlers
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError
except ImportError as _missing:  # tests/test_extras.py hides boto3 to check this message
    raise ImportError(
        f"BasicS3Dict and S3Dict need boto3 ({_missing}): pip install 'persidict[aws]'", name=_missing.name
    ) from _missing

from ..concurrency import map_outcomes
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

LIST_PAGE = 1000
"""The most keys one ListObjectsV2 page holds."""

KEYS_PER_LIST_PAGE = 100
"""``discard_many`` lists one page (beyond the first) per this many keys, then asks HEAD for the rest."""

BATCH_WORKERS = 16
"""Requests a batch operation has in flight at once by default."""

POOL_CONNECTIONS = 32
"""Connections the shared client keeps by default (botocore's ``max_pool_connections``).

At least ``BATCH_WORKERS``, with room for a larger ``max_workers`` or other
threads sharing the client; a batch never runs more requests at once than
the pool holds (see ``S3Backend.max_concurrency``).
"""

CONFLICT_ATTEMPTS = 3
"""Sends of a conditional PUT or DELETE that keeps meeting 409 ConditionalRequestConflict."""

CONNECT_TIMEOUT = 5.0
"""Default seconds to wait for a connection (and its TLS handshake)."""
READ_TIMEOUT = 15.0
"""Default seconds to wait for any byte of an answer."""
MAX_ATTEMPTS = 3
"""Default attempts per request (standard retry mode: the first try and two retries)."""

# The worst case of one request against a hung endpoint, with these defaults:
# an endpoint that accepts connections and never answers costs 3 x 15 s of
# reads plus the standard mode's backoff before the retries (at most 1 s,
# then 2 s): 48 s. One that never accepts costs 3 x 5 s + 3 s = 18 s. Even a
# connection that takes its full 5 s before the read hangs ends in
# 3 x (5 + 15) + 3 = 63 s. A dict's first call is one request (HeadBucket),
# so it raises BackendError within about a minute.
_DEFAULT_RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
_DEFAULT_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    retries=_DEFAULT_RETRIES,
    max_pool_connections=POOL_CONNECTIONS,
)

WRITE_META = "persidict-write"
"""The user-metadata field (header ``x-amz-meta-persidict-write``) of a conditional PUT's lineage."""

LINEAGE_DEPTH = 8
"""Entries a lineage keeps: the write's own and those of its nearest ancestors."""

_LINEAGE_MEMO = 1024
"""Object versions whose lineage a backend remembers (forgotten all at once when full)."""

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
        """Our defaults, then the checksum mode, then the user's Config (whose settings win).

        Defaults: ``connect_timeout=5``, ``read_timeout=15`` seconds, standard
        retries with 3 attempts in all, so that a hung endpoint surfaces as a
        BackendError within about a minute (the arithmetic is next to
        ``_DEFAULT_CONFIG``), and a pool of ``POOL_CONNECTIONS`` connections
        for batch operations. A user's ``retries`` keeps our mode and attempts
        unless it sets them.
        """
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
    configuration, which is why each gets its own session). Its answers'
    timestamps are parsed by ``_parse_timestamp``.
    """
    session = botocore.session.get_session()
    if _loader:
        session.register_component("data_loader", _loader[0])
    else:
        _loader.append(session.get_component("data_loader"))
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_parse_timestamp)
    return session


def _parse_timestamp(value: str) -> datetime.datetime:
    """A timestamp of an S3 answer, as an aware datetime; botocore's own parser for unusual forms.

    S3 writes ISO 8601 in XML bodies (``2024-05-01T12:00:00.000Z``, every
    object of a listing) and RFC 1123 in headers (``Last-Modified``).
    botocore parses both with dateutil, at about 0.1 ms each: a tenth of the
    client's time per GET on a small machine, and 0.1 s per listed page.
    """
    try:
        if value[:4].isdigit():
            parsed = datetime.datetime.fromisoformat(value)
        else:
            parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        fallback: datetime.datetime = importlib.import_module("botocore.utils").parse_timestamp(value)
        return fallback
    return parsed


_clients: dict[tuple[object, ...], Any] = {}
_lock = threading.Lock()
_build_lock = threading.Lock()


def client_for(spec: ClientSpec) -> Any:
    """One shared (thread-safe) boto3 client per spec and environment, per process.

    A client keeps the event handlers botocore had when it was built, so a
    new one is built once botocore has gained handlers (``import moto``
    adds the hook through which every ``mock_aws()`` context answers). A
    client built inside one ``mock_aws()`` context and used in the next talks
    to the next: moto's hook serves whichever context is active.
    """
    cache_key = (
        spec,
        id(spec.client_config),
        tuple(os.environ.get(v) for v in _ENV_VARS),
        os.getpid(),
        len(botocore.handlers.BUILTIN_HANDLERS),
    )
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
    """Drop the shared clients (for tests)."""
    with _lock:
        _clients.clear()


def _status(e: ClientError) -> int:
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status or 0)


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _is_absent(e: ClientError) -> bool:
    # HEAD answers have no body: their code is just "404".
    return _code(e) in ("NoSuchKey", "404", "NotFound")


def _is_missing_bucket(e: ClientError) -> bool:
    return _code(e) in ("NoSuchBucket", "404", "NotFound") or _status(e) == 404


# Answers to CreateBucket meaning another creator (maybe ourselves) got there
# first, or is busy creating it: the request that follows will tell.
_CREATED_BY_OTHERS = ("BucketAlreadyOwnedByYou", "OperationAborted")


def _is_conflict(e: ClientError) -> bool:
    # 412: the precondition failed. 409 ConditionalRequestConflict: a
    # concurrent conditional write won; nothing of ours was applied.
    return _status(e) in (412, 409) or _code(e) in ("PreconditionFailed", "ConditionalRequestConflict")


def _common_prefix(a: str, b: str) -> str:
    """The longest string both ``a`` and ``b`` start with (character by character, not by path part)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


def _header_time(headers: dict[str, str], name: str) -> float:
    value = headers.get(name)
    if value:
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def _put_stat(r: dict[str, Any], size: int) -> Stat:
    """The stat of a PutObject answer (its Last-Modified, else its Date)."""
    headers = r.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    mtime = _header_time(headers, "last-modified" if "last-modified" in headers else "date")
    return Stat(etag=r["ETag"], mtime=mtime, size=size)


# ------------------------------------------------------------ lost replies
#
# When the reply to a conditional request is lost (a read timeout, a dropped
# connection), botocore sends the request again. If the server had carried
# out the first one, the resend fails on our own write: 412 for a PUT, 404
# for a DELETE. To tell that from losing to another writer we must know
# whether an attempt *may have been applied*, which botocore does not say
# (``RetryAttempts`` counts retries after throttling too, which were
# refused unread). A ``needs-retry`` hook sees every attempt's outcome;
# botocore runs the attempts of a call in the calling thread, so a
# thread-local flag raised around one of our conditional requests collects
# exactly its attempts. (Turning botocore's retries off for conditional
# requests and retrying here instead would need a second client per
# configuration and a copy of botocore's retry rules, quota and backoff.)

_NOT_SENT = (EndpointConnectionError, ConnectTimeoutError)
"""Failures to connect: the request cannot have reached the server."""


def _may_have_been_applied(response: Any, caught_exception: BaseException | None) -> bool:
    """Whether a failed attempt may have been carried out by the server all the same.

    No: no connection was made, a definite answer (a 4xx), or a 503 (S3's
    "slow down", refused unread). Maybe: the reply was lost (a read timeout,
    a dropped connection) or another 5xx (the server failed, perhaps after
    storing).
    """
    if caught_exception is not None:
        return not isinstance(caught_exception, _NOT_SENT)
    if response is None:
        return False
    status = int(response[0].status_code)
    return status >= 500 and status != 503


class _Watch(threading.local):
    """Per thread: whether an attempt of the watched conditional request may have been applied."""

    active = False
    maybe_applied = False


_watch = _Watch()


def _note_attempt(response: Any = None, caught_exception: BaseException | None = None, **kwargs: Any) -> None:
    """botocore's ``needs-retry`` event, after every attempt: note one that may have been applied.

    Returns None, so the retry decision stays botocore's.
    """
    if _watch.active and _may_have_been_applied(response, caught_exception):
        _watch.maybe_applied = True


@contextlib.contextmanager
def _watching() -> Iterator[_Watch]:
    """Watch the attempts of the requests sent inside (this thread's); a watch inside another restores it."""
    outer = (_watch.active, _watch.maybe_applied)
    _watch.active = True
    _watch.maybe_applied = False
    try:
        yield _watch
    finally:
        _watch.active, _watch.maybe_applied = outer


EXPECT_CONTINUE_ABOVE = 1024 * 1024
"""PUT bodies of at most this many bytes are sent without ``Expect: 100-continue``."""


def _send_small_bodies_at_once(request: Any = None, **kwargs: Any) -> None:
    """botocore's ``before-send`` of PutObject: drop ``Expect: 100-continue`` from a small body.

    botocore makes every PUT body a file (bytes become a BytesIO, or an
    aws-chunked stream with a checksum trailer) and so asks for ``Expect:
    100-continue``: the headers then wait for the server's ``100 Continue``
    before the body goes, a second round trip on every write. That only
    pays for large bodies a server might refuse (a failed If-Match, say), so
    a body of at most ``EXPECT_CONTINUE_ABOVE`` bytes follows its headers at
    once. The header is not signed.
    """
    headers = getattr(request, "headers", None)
    if headers is None or headers.get("Expect") is None:
        return
    size = headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length")
    try:
        small = size is not None and int(size) <= EXPECT_CONTINUE_ABOVE
    except ValueError:
        return
    if small:
        del headers["Expect"]


def _install_hooks(client: Any) -> None:
    """Register our hooks on ``client`` (once per client).

    ``_note_attempt`` for PutObject and DeleteObject, and
    ``_send_small_bodies_at_once`` for PutObject.
    """
    events = client.meta.events
    for op in ("PutObject", "DeleteObject"):
        events.register(f"needs-retry.s3.{op}", _note_attempt, unique_id=f"persidict-note-{op}")
    events.register("before-send.s3.PutObject", _send_small_bodies_at_once, unique_id="persidict-no-continue")


# A conditional PUT carries its *lineage* in the object's metadata:
# space-separated entries "token:pinned", first its own (a random token and
# the ETag its If-Match pinned, empty for an insert), then the first entries
# of the version it replaced, LINEAGE_DEPTH entries in all. A token found in
# the lineage of a stored object proves that write was applied (tokens are
# only ever stored by applied writes), and the entry before it pinned its
# ETag. So a write whose reply was lost is recognised even after other
# writers built on it, as long as they did so through this library, read the
# version they replaced (its lineage comes with GET and HEAD answers), and
# fewer than LINEAGE_DEPTH writes followed before we looked.


def _safe_etag(etag: str) -> bool:
    """Whether ``etag`` fits in a lineage entry (short printable ASCII without spaces)."""
    return len(etag) <= 80 and etag.isascii() and etag.isprintable() and " " not in etag


def _find_in_lineage(lineage: str, token: str) -> tuple[bool, str]:
    """Whether ``token`` is in ``lineage``, and the ETag its successor pinned ("" if it is the first)."""
    successor_pinned = ""
    for entry in lineage.split(" "):
        entry_token, _, pinned = entry.partition(":")
        if entry_token == token:
            return True, successor_pinned
        successor_pinned = pinned
    return False, ""


class S3Backend:
    """Bytes as objects of one bucket under a key prefix.

    ETags are S3's (content hashes on most stores: rewriting identical bytes
    keeps the ETag, so ``capabilities.unique_etags`` is False). ``region`` is
    where a missing bucket is created (default: the client's region).

    A conditional PUT or DELETE whose reply is lost, and which botocore
    therefore sends again, is neither applied twice nor reported lost: each
    conditional PUT records a random token in the object's metadata, which
    is looked for (one HeadObject) only when a resend fails; see
    ``_conditional_put`` and ``_conditional_delete``.
    """

    capabilities = Capabilities(atomic_preconditions=True, unique_etags=False, batch_workers=BATCH_WORKERS)

    def __init__(self, client: Any, bucket: str, prefix: str = "", region: str | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix + "/" if prefix and not prefix.endswith("/") else prefix
        self.region = region
        self._lineages: dict[tuple[str, str], str] = {}
        _install_hooks(client)

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

    @property
    def max_concurrency(self) -> int:
        """The most requests a batch sends at once: the client's connection pool.

        More threads than pooled connections would open connections that
        urllib3 then discards with a logged warning; a user's
        ``client_config=Config(max_pool_connections=n)`` raises the limit.
        """
        pool = getattr(self.client.meta.config, "max_pool_connections", None)
        return pool if isinstance(pool, int) and pool > 0 else BATCH_WORKERS

    def _fail(
        self, e: Exception, operation: str, key: str | None, *, maybe_applied: bool = False
    ) -> NoReturn:
        """Raise a BackendError for ``e``; ``maybe_applied``: say that the request may have taken effect."""
        raise self._error(e, operation, key, maybe_applied=maybe_applied) from e

    def _error(
        self, e: Exception, operation: str, key: str | None, *, maybe_applied: bool = False
    ) -> BackendError:
        """The BackendError for ``e`` (see ``_fail``)."""
        if isinstance(e, ClientError):
            msg = f"S3 {operation} failed: {_code(e)} (HTTP {_status(e)}): {e}"
        else:
            msg = f"S3 {operation} failed: {type(e).__name__}: {e}"
        if maybe_applied:
            msg += " (an attempt whose reply was lost may have been applied)"
        return BackendError(msg, backend=self.describe(), operation=operation, key=key)

    # ------------------------------------------------------------ bucket

    def ensure_bucket(self) -> None:
        """Make sure the bucket exists now: one HeadBucket, and CreateBucket when it is missing.

        Called whenever a dict is built; nothing is remembered, so the next
        dict checks again. A bucket we may not inspect (HeadBucket answers
        403) is used as it is. A missing bucket we may not create is no error
        yet: every request meets NoSuchBucket, tries to create it again and
        raises a BackendError naming the bucket.
        """
        if self._bucket_is_missing(None):
            self._create_bucket(None, forbidden_ok=True)

    def _bucket_is_missing(self, key: str | None) -> bool:
        """One HeadBucket: whether the bucket is missing (a 403: it exists, and is not ours to inspect)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if _status(e) == 403:
                return False
            if _is_missing_bucket(e):
                return True
            self._fail(e, "HeadBucket", key)
        except BotoCoreError as e:
            self._fail(e, "HeadBucket", key)
        return False

    def _create_bucket(self, key: str | None, *, forbidden_ok: bool = False) -> None:
        """CreateBucket in ``region``; BackendError naming the bucket when it cannot be created.

        A bucket created meanwhile by another creator (BucketAlreadyOwnedByYou,
        OperationAborted) is fine. ``forbidden_ok``: a 403 is left for the
        requests to report (when a dict is built).
        """
        region = self.region or self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as e:
            if _code(e) in _CREATED_BY_OTHERS or (forbidden_ok and _status(e) == 403):
                return
            raise self._not_created(f"{_code(e)} (HTTP {_status(e)}): {e}", key) from e
        except BotoCoreError as e:
            raise self._not_created(f"{type(e).__name__}: {e}", key) from e

    def _not_created(self, why: str, key: str | None) -> BackendError:
        return BackendError(
            f"S3 bucket {self.bucket!r} does not exist and could not be created: {why}",
            backend=self.describe(),
            operation="CreateBucket",
            key=key,
        )

    def _send(self, call: Callable[..., Any], key: str | None, kwargs: dict[str, Any]) -> Any:
        """``call(**kwargs)``; when it meets NoSuchBucket, create the bucket and send it once more.

        A second NoSuchBucket (the bucket deleted again at once) is raised
        like any other error.
        """
        try:
            return call(**kwargs)
        except ClientError as e:
            if _code(e) != "NoSuchBucket":
                raise
        self._create_bucket(key)
        return call(**kwargs)

    def _bucket_was_missing(self, key: str) -> bool:
        """After HeadObject answered 404: whether the bucket was missing (it has been created since).

        A HEAD answer has no body, so S3's 404 reads the same for "no such
        key" and "no such bucket". One HeadBucket tells them apart, sent only
        after a 404: a present key costs one HEAD, an absent one two.
        (Reading the key with a GET instead would tell at once, but would
        transfer the value of every present key.)
        """
        if not self._bucket_is_missing(key):
            return False
        self._create_bucket(key)
        return True

    # ------------------------------------------------------------ objects

    def stat(self, loc: Location) -> Stat | None:
        """One HeadObject (and one HeadBucket when it answers 404: see ``_bucket_was_missing``)."""
        return self._head(self.prefix + "/".join(loc), check_bucket=True)

    def _head(self, key: str, *, check_bucket: bool) -> Stat | None:
        try:
            r = self._send(self.client.head_object, key, {"Bucket": self.bucket, "Key": key})
        except ClientError as e:
            if not _is_absent(e):
                self._fail(e, "HeadObject", key)
            if check_bucket and self._bucket_was_missing(key):
                return self._head(key, check_bucket=False)
            return None
        except BotoCoreError as e:
            self._fail(e, "HeadObject", key)
        self._note_lineage(key, r)
        return Stat(etag=r["ETag"], mtime=r["LastModified"].timestamp(), size=r["ContentLength"])

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """One GetObject; with ``if_none_match`` a 304 answers NotModified."""
        key = self.prefix + "/".join(loc)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            r = self._send(self.client.get_object, key, kwargs)
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
        self._note_lineage(key, r)
        return data, Stat(etag=r["ETag"], mtime=r["LastModified"].timestamp(), size=len(data))

    # ------------------------------------------------------------ lineages

    def _note_lineage(self, key: str, r: dict[str, Any]) -> None:
        """Remember the lineage a GET or HEAD answer carries (written by a conditional PUT)."""
        meta = r.get("Metadata")
        if meta:
            lineage = meta.get(WRITE_META)
            if lineage:
                self._remember_lineage(key, r["ETag"], lineage)

    def _remember_lineage(self, key: str, etag: str, lineage: str) -> None:
        lineages = self._lineages
        if len(lineages) >= _LINEAGE_MEMO:
            lineages.clear()
        lineages[key, etag] = lineage

    def _lineage_of_write(self, key: str, token: str, precondition: IfAbsent | IfMatch) -> str:
        """The lineage of a new conditional write: its entry, then those of the version it pins (if known)."""
        if isinstance(precondition, IfAbsent):
            return token + ":"
        pinned = precondition.etag
        if not _safe_etag(pinned):
            return token + ":"
        own = f"{token}:{pinned}"
        ancestors = self._lineages.get((key, pinned))
        if not ancestors:
            return own
        return " ".join([own, *ancestors.split(" ")[: LINEAGE_DEPTH - 1]])

    # ------------------------------------------------------------ writes

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat:
        """One PutObject, conditional when a precondition is given (see ``_conditional_put``)."""
        key = self.prefix + "/".join(loc)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if precondition is not None:
            return self._conditional_put(loc, key, kwargs, precondition, len(data))
        try:
            r = self._send(self.client.put_object, key, kwargs)
        except (ClientError, BotoCoreError) as e:
            self._fail(e, "PutObject", key)
        return _put_stat(r, len(data))

    def _conditional_put(
        self, loc: Location, key: str, kwargs: dict[str, Any], precondition: IfAbsent | IfMatch, size: int
    ) -> Stat:
        """One PutObject with If-None-Match: * or If-Match, carrying its lineage; applied at most once.

        A PUT that meets a concurrent conditional upload of the same key
        (409 ConditionalRequestConflict) is sent again, as S3 advises, so
        that it ends in success or a plain 412. Normally that is all: one
        request. When an attempt may have been applied (its reply was lost,
        see ``_may_have_been_applied``) and the request ends in 412, the
        write may be ours: one HeadObject looks for its token in the
        object's lineage (see ``_find_own_write``). Otherwise, and when it
        is not found, PreconditionFailed: nothing of ours is stored, or it
        was replaced before we looked by a writer that did not record it
        (an unconditional write, another program, or more than
        LINEAGE_DEPTH conditional writes), which S3 keeps no trace of.
        """
        token = uuid.uuid4().hex[:16]
        if isinstance(precondition, IfAbsent):
            kwargs["IfNoneMatch"] = "*"
        else:
            kwargs["IfMatch"] = precondition.etag
        lineage = self._lineage_of_write(key, token, precondition)
        kwargs["Metadata"] = {WRITE_META: lineage}
        ours_may_be_stored = False
        with _watching() as watch:
            for attempt in range(1, CONFLICT_ATTEMPTS + 1):
                try:
                    r = self._send(self.client.put_object, key, kwargs)
                except ClientError as e:
                    if not (_is_conflict(e) or _code(e) == "NoSuchKey"):
                        self._fail(e, "PutObject", key, maybe_applied=watch.maybe_applied)
                    if _status(e) == 409 and attempt < CONFLICT_ATTEMPTS:
                        continue
                    ours_may_be_stored = watch.maybe_applied and _is_conflict(e)
                    break
                except BotoCoreError as e:
                    self._fail(e, "PutObject", key, maybe_applied=watch.maybe_applied)
                stat = _put_stat(r, size)
                self._remember_lineage(key, stat.etag, lineage)
                return stat
        if ours_may_be_stored:
            found = self._find_own_write(key, token, size)
            if found is not None:
                return found
        raise PreconditionFailed(loc, precondition)

    def _find_own_write(self, key: str, token: str, size: int) -> Stat | None:
        """One HeadObject: the stat of our write (``token``) if the object's lineage shows it was applied.

        The object itself when its lineage starts with ``token``; when
        others have written since, our version's ETag is the one its
        successor pinned (its time is unknown: now is reported).
        """
        try:
            r = self._send(self.client.head_object, key, {"Bucket": self.bucket, "Key": key})
        except ClientError as e:
            if _is_absent(e):
                return None
            self._fail(e, "HeadObject", key)
        except BotoCoreError as e:
            self._fail(e, "HeadObject", key)
        found, successor_pinned = _find_in_lineage(r.get("Metadata", {}).get(WRITE_META, ""), token)
        if not found:
            return None
        self._note_lineage(key, r)
        if not successor_pinned:
            return Stat(etag=r["ETag"], mtime=r["LastModified"].timestamp(), size=r["ContentLength"])
        return Stat(etag=successor_pinned, mtime=time.time(), size=size)

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """IfMatch: one conditional DeleteObject. Otherwise HeadObject, then DeleteObject if present.

        S3 does not say whether a DeleteObject removed anything, hence the
        HeadObject; an absent key costs that HeadObject (and its HeadBucket) only.
        """
        key = self.prefix + "/".join(loc)
        if isinstance(precondition, IfMatch):
            return self._conditional_delete(loc, key, precondition)
        if self.stat(loc) is None:
            return False
        if isinstance(precondition, IfAbsent):
            raise PreconditionFailed(loc, precondition)
        try:
            self._send(self.client.delete_object, key, {"Bucket": self.bucket, "Key": key})
        except (ClientError, BotoCoreError) as e:
            self._fail(e, "DeleteObject", key)
        return True

    def _conditional_delete(self, loc: Location, key: str, precondition: IfMatch) -> bool:
        """One DeleteObject with If-Match (sent again on 409, as S3 advises); a lost reply is no loss.

        412, or 404 NoSuchKey: the precondition failed, unless an attempt
        may have been applied (its reply was lost) and the key is now
        absent. Then we report the delete as done, because the version our
        If-Match pinned, which we had observed, is gone and the key is
        absent: either our delete removed it, or another client removed
        that very version (or replaced it and removed the replacement) in
        the moment between our first attempt and its resend. S3 keeps no
        trace of who deleted an object, so the two cannot be told apart;
        the first is what happens whenever only the reply was lost, and in
        both the state the caller asked for holds. The one misreport left:
        two clients deleting the same version, each losing a reply, may
        both be told they deleted it. (A 412 on the resend means the key
        holds another version now; it is reported as a failed precondition.)
        """
        kwargs = {"Bucket": self.bucket, "Key": key, "IfMatch": precondition.etag}
        attempt = 0
        with _watching() as watch:
            while True:
                attempt += 1
                try:
                    self._send(self.client.delete_object, key, kwargs)
                    return True
                except ClientError as e:
                    if _status(e) == 409 and attempt < CONFLICT_ATTEMPTS:
                        continue
                    if _is_absent(e) and watch.maybe_applied:
                        return True
                    if _is_conflict(e) or _is_absent(e):
                        raise PreconditionFailed(loc, precondition) from None
                    self._fail(e, "DeleteObject", key, maybe_applied=watch.maybe_applied)
                except BotoCoreError as e:
                    self._fail(e, "DeleteObject", key, maybe_applied=watch.maybe_applied)

    # ------------------------------------------------------------ listing

    def _pages(self, prefix: Location) -> Iterator[builtins.list[dict[str, Any]]]:
        """The objects under ``prefix``, page by page (ListObjectsV2 with continuation tokens)."""
        folder = self.prefix + "".join(p + "/" for p in prefix)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": folder}
        try:
            while True:
                page = self._send(self.client.list_objects_v2, folder, kwargs)
                yield page.get("Contents", [])
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    return
                kwargs = {"Bucket": self.bucket, "Prefix": folder, "ContinuationToken": token}
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

    # ------------------------------------------------------------ many keys

    def delete_many(self, locs: Iterable[Location]) -> int:
        """DeleteObjects in batches of up to 1,000 keys (no existence check); return how many were deleted.

        S3 reports absent keys as deleted, so this is the number of keys
        sent; the first key S3 refused raises a BackendError naming it.
        """
        deleted = 0
        batch: builtins.list[str] = []
        for loc in locs:
            batch.append(self.key(loc))
            if len(batch) == DELETE_BATCH:
                deleted += self._delete_or_raise(batch)
                batch = []
        if batch:
            deleted += self._delete_or_raise(batch)
        return deleted

    def _delete_or_raise(self, keys: builtins.list[str]) -> int:
        failed = self._delete_objects(keys)
        for key in keys:
            if key in failed:
                raise failed[key]
        return len(keys)

    def discard_many(
        self, locs: Iterable[Location], *, max_workers: int
    ) -> builtins.list[bool | BaseException]:
        """Delete the keys that exist; per location, whether it existed, or the exception for that key.

        DeleteObjects (1,000 keys a request) does not say whether a key
        existed, so each group of up to 1,000 keys is first looked up, with
        few requests: the keys are sorted and one ListObjectsV2 walks the
        span from the smallest to the largest (under their common prefix);
        when that span holds many other objects, the listing stops after
        ``1 + n / KEYS_PER_LIST_PAGE`` pages and the keys beyond are looked
        up with HeadObject, ``max_workers`` at a time. Then one DeleteObjects
        removes the keys found (none found: no request). 500 keys stored
        together cost two requests. As with a single delete, a key written
        between the lookup and the delete is left alone, and one deleted by
        someone else meanwhile still counts as existing. A key S3 refuses to
        delete (the answer's Errors) gets a BackendError naming it; a failed
        request, one per key it carried.
        """
        keys = [self.key(loc) for loc in locs]
        unique = sorted(set(keys))
        outcomes: dict[str, bool | BaseException] = {}
        for start in range(0, len(unique), DELETE_BATCH):
            outcomes.update(self._discard_group(unique[start : start + DELETE_BATCH], max_workers))
        return [outcomes[key] for key in keys]

    def _discard_group(self, keys: builtins.list[str], max_workers: int) -> dict[str, bool | BaseException]:
        """Look up sorted ``keys`` (at most 1,000), delete those found: per key, existed or its exception."""
        outcomes = self._exist(keys, max_workers)
        found = [key for key in keys if outcomes[key] is True]
        if found:
            outcomes.update(self._delete_objects(found))
        return outcomes

    def _exist(self, keys: builtins.list[str], max_workers: int) -> dict[str, bool | BaseException]:
        """Whether each of the sorted ``keys`` exists: a bounded listing, then HEADs beyond its reach."""
        try:
            listed, reached = self._list_span(keys, max_pages=1 + len(keys) // KEYS_PER_LIST_PAGE)
        except BackendError as e:
            return {key: self._error_for(e, key) for key in keys}
        outcomes: dict[str, bool | BaseException] = {}
        rest: builtins.list[str] = []
        for key in keys:
            if reached is None or key <= reached:
                outcomes[key] = key in listed
            else:
                rest.append(key)
        if rest:
            # The listing just saw the bucket: a 404 here is an absent key (no HeadBucket to tell).
            workers = min(max_workers, self.max_concurrency)
            heads = map_outcomes(lambda key: self._head(key, check_bucket=False) is not None, rest, workers)
            outcomes.update(zip(rest, heads, strict=True))
        return outcomes

    def _list_span(self, keys: builtins.list[str], *, max_pages: int) -> tuple[set[str], str | None]:
        """List the objects from ``keys[0]`` to ``keys[-1]`` (sorted), at most ``max_pages`` pages.

        Returns which of ``keys`` were listed, and the last object key the
        listing reached (None: it covered the whole span). It starts just
        before ``keys[0]`` (StartAfter the string without its last
        character), under the keys' common prefix.
        """
        first, last = keys[0], keys[-1]
        prefix = _common_prefix(first, last)
        wanted = set(keys)
        listed: set[str] = set()
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE}
        if len(first) > len(prefix):
            kwargs["StartAfter"] = first[:-1]
        reached = ""
        for _ in range(max_pages):
            try:
                page = self._send(self.client.list_objects_v2, prefix, kwargs)
            except (ClientError, BotoCoreError) as e:
                self._fail(e, "ListObjectsV2", prefix)
            contents = page.get("Contents", [])
            listed.update(obj["Key"] for obj in contents if obj["Key"] in wanted)
            if contents:
                reached = contents[-1]["Key"]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token or reached >= last:
                return listed, None
            kwargs = {**kwargs, "ContinuationToken": token}
            kwargs.pop("StartAfter", None)
        return listed, reached

    def _delete_objects(self, keys: builtins.list[str]) -> dict[str, BackendError]:
        """One DeleteObjects (quiet: S3 answers with refused keys only); the error of each key not deleted."""
        kwargs = {"Bucket": self.bucket, "Delete": {"Objects": [{"Key": key} for key in keys], "Quiet": True}}
        try:
            r = self._send(self.client.delete_objects, keys[0], kwargs)
        except (ClientError, BotoCoreError) as e:
            failure = self._error(e, "DeleteObjects", None)
            failure.__cause__ = e
            return {key: self._error_for(failure, key) for key in keys}
        sent = set(keys)
        failed: dict[str, BackendError] = {}
        for error in r.get("Errors", []):
            key = error.get("Key")
            if key in sent and key not in failed:
                failed[key] = BackendError(
                    f"S3 DeleteObjects refused the key: {error.get('Code')}: {error.get('Message')}",
                    backend=self.describe(),
                    operation="DeleteObjects",
                    key=key,
                )
        return failed

    def _error_for(self, e: BackendError, key: str) -> BackendError:
        """A copy of ``e`` (a failed request about many keys) naming ``key``, caused by ``e``."""
        error = BackendError(e.message, backend=e.backend, operation=e.operation, key=key)
        error.__cause__ = e
        return error
