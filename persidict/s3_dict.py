"""BasicS3Dict and S3Dict: PersiDicts stored in an S3 (or S3-compatible) bucket.

``BasicS3Dict`` talks to S3 directly: ``d[k]`` is one GET, ``d[k] = v`` one
PUT, ``k in d`` one HEAD, and every conditional operation is atomic thanks
to S3 conditional requests. ``S3Dict`` (also exported as
``S3Dict_FileDirCached``) adds a local folder cache: a read of a cached
value is one conditional GET answered by ``304 Not Modified``.

boto3 is imported only when the first of these dicts is built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .codecs import Codec
from .flags import ETagConditionFlag, ETagIfExists, Joker, RetrieveValueFlag, ValueType
from .keys import NonEmptySafeStrTuple
from .ops import run as interpreter
from .ops.commands import SetItemIf
from .ops.run_many import OnDone
from .results import ConditionalOperationResult
from .store_dict import StoreDict

if TYPE_CHECKING:
    from botocore.config import Config

    from .backends.base import Backend
    from .backends.s3 import ChecksumMode, S3Backend

_SECRET_PARAMS = ("aws_secret_access_key", "aws_session_token")


def _normalise_prefix(root_prefix: object) -> str:
    """``"a/b/"`` -> ``"a/b"``; rejects empty, ``.`` and ``..`` segments."""
    if not isinstance(root_prefix, str):
        raise TypeError(f"root_prefix must be a str, not {type(root_prefix).__name__}")
    prefix = root_prefix.rstrip("/")
    if prefix:
        for part in prefix.split("/"):
            if part in ("", ".", ".."):
                raise ValueError(
                    f"Invalid root_prefix {root_prefix!r}: empty, '.' and '..' path segments are not allowed"
                )
    return prefix


def _rebuild(cls: type[BasicS3Dict[Any]], params: dict[str, Any]) -> BasicS3Dict[Any]:
    return cls(**params)


class BasicS3Dict(StoreDict[ValueType]):
    """A PersiDict whose items are objects in an S3 bucket (no local cache).

    The object key of ``key`` is ``root_prefix + "/" + "/".join(key) + "." +
    format`` (the layout of the published persidict). Endpoint, region,
    profile, credentials and checksum settings default to the environment,
    as boto3 reads them (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``,
    ``AWS_DEFAULT_REGION``, ...). Pass ``checksum="when_required"`` for stores
    that reject boto3's default CRC checksum headers, and ``client_config``
    (a ``botocore.config.Config``) for anything else (timeouts, retries,
    addressing style); the settings it makes override our defaults, which
    fail fast: ``connect_timeout=5``, ``read_timeout=15`` seconds and
    standard retries with 3 attempts in all, so a hung endpoint is a
    BackendError within about a minute (48 s when it accepts connections
    and never answers).

    A conditional write (``*_if``, ``transform_item``, an append-only
    insert) whose reply is lost is neither applied twice nor reported lost:
    it records a token in the object's metadata (``persidict-write``),
    looked up only when botocore's resend of it fails.

    Building a dict makes sure the bucket exists (one HeadBucket; CreateBucket
    in ``region`` when missing). Should the bucket vanish later, the request
    that meets NoSuchBucket creates it again and is sent once more; a bucket
    that cannot be created gives a BackendError naming it.

    ``set_item_if(k, v, etag, ETAG_IS_THE_SAME)`` is one conditional PUT
    when ``etag`` is current (a stale one costs that refused PUT and a GET).
    Batch operations (``get_many``, ``set_many`` / ``update``,
    ``discard_many``) run 16 requests at once by default, never more than
    the client's connection pool (``max_pool_connections``, 32 by default;
    raise both with ``client_config`` and ``max_workers``); ``discard_many``
    looks the keys up with a listing and deletes those found with
    DeleteObjects, 1,000 keys a request (500 keys stored together: two
    requests). DeleteObjects reports absent keys as deleted, so the count
    comes from that lookup: keys scattered among many other objects cost
    more (HEADs beyond ``1 + n / 100`` listed pages), and a key another
    writer deletes between the lookup and the delete still counts.
    """

    def __init__(
        self,
        *,
        bucket_name: str,
        region: str | None = None,
        root_prefix: str = "",
        serialization_format: str | Codec = "pkl",
        append_only: bool = False,
        base_class_for_values: type | None = None,
        endpoint_url: str | None = None,
        profile_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        checksum: ChecksumMode | None = None,
        client_config: Config | None = None,
    ) -> None:
        from .backends import s3

        if not isinstance(bucket_name, str) or not bucket_name:
            raise ValueError(f"bucket_name must be a non-empty str, not {bucket_name!r}")
        for name, value in (
            ("region", region),
            ("endpoint_url", endpoint_url),
            ("profile_name", profile_name),
            ("aws_access_key_id", aws_access_key_id),
            ("aws_secret_access_key", aws_secret_access_key),
            ("aws_session_token", aws_session_token),
        ):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
        if checksum not in (None, "when_supported", "when_required"):
            raise ValueError(f"checksum must be None, 'when_supported' or 'when_required', not {checksum!r}")
        spec = s3.ClientSpec(
            region=region,
            endpoint_url=endpoint_url,
            profile_name=profile_name,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            checksum=checksum,
            client_config=client_config,
        )
        prefix = _normalise_prefix(root_prefix)
        remote = s3.S3Backend(s3.client_for(spec), bucket_name, prefix, region=region)
        self._spec = spec
        self._s3 = remote
        self._init_store(
            backend=self._wrap_backend(remote),
            root=(),
            serialization_format=serialization_format,
            append_only=append_only,
            base_class_for_values=base_class_for_values,
        )
        remote.ensure_bucket()  # once the parameters are known to be valid

    def _wrap_backend(self, remote: S3Backend) -> Backend:
        """The backend the dict runs against (S3Dict puts a cache in front)."""
        return remote

    # ------------------------------------------------------------ conditional writes

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        """ETAG_IS_THE_SAME with an ETag: the conditional PUT (or DELETE) first, one request when current.

        A refused attempt (412) is followed by the usual observation; S3Dict
        records the bytes under the ETag the PUT returns, as any write does.
        """
        t = self._target(key)
        data = None if isinstance(value, Joker) else self._coder.encode(key, value)
        cmd = SetItemIf(t, value, data, expected_etag, condition, retrieve, self._append_only)
        return interpreter.run_conditional(self._backend, cmd, guess_current=True)

    # ------------------------------------------------------------ batches

    def _default_workers(self) -> int:
        """``BATCH_WORKERS`` (16) requests at once, at most the client's connection pool."""
        return min(super()._default_workers(), self._s3.max_concurrency)

    def _get_many(self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None) -> list[Any]:
        return super()._get_many(keys, min(workers, self._s3.max_concurrency), on_done)

    def _set_serialised_many(
        self, items: list[tuple[NonEmptySafeStrTuple, Any, Any]], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        return super()._set_serialised_many(items, min(workers, self._s3.max_concurrency), on_done)

    def _discard_many(
        self, keys: list[NonEmptySafeStrTuple], workers: int, on_done: OnDone | None
    ) -> list[Any]:
        return super()._discard_many(keys, min(workers, self._s3.max_concurrency), on_done)

    @property
    def bucket_name(self) -> str:
        """The bucket holding the items."""
        return self._s3.bucket

    @property
    def root_prefix(self) -> str:
        """The key prefix of this dict's objects: ``""``, or ending in ``"/"`` (``"root"`` gives ``"root/"``).

        A subdict's is its parent's plus the sub-key's parts, each followed by ``"/"``.
        """
        return self._s3.prefix + "".join([p + "/" for p in self._root])

    @property
    def base_url(self) -> str:
        """``"s3://<bucket>/<root_prefix>"``."""
        return f"s3://{self._s3.bucket}/{self.root_prefix}"

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted; a subdict's ``root_prefix`` includes its prefix."""
        spec = self._spec
        params = {
            **self._common_params(),
            "bucket_name": self._s3.bucket,
            "root_prefix": self.root_prefix,
            "region": spec.region,
            "endpoint_url": spec.endpoint_url,
            "profile_name": spec.profile_name,
            "aws_access_key_id": spec.aws_access_key_id,
            "aws_secret_access_key": spec.aws_secret_access_key,
            "aws_session_token": spec.aws_session_token,
            "checksum": spec.checksum,
            "client_config": spec.client_config,
        }
        return dict(sorted(params.items()))

    def __repr__(self) -> str:
        params = self.get_params()
        for name in _SECRET_PARAMS:
            if params[name] is not None:
                params[name] = "***"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as constructor parameters (the client is rebuilt on the other side)."""
        return (_rebuild, (type(self), self.get_params()))


class S3Dict(BasicS3Dict[ValueType]):
    """BasicS3Dict plus a local cache folder (``base_dir``).

    Each value read or written is kept in ``base_dir`` with its S3 ETag. A
    read of a cached value is one conditional GET (``If-None-Match``); a 304
    serves the local copy. A write is one PUT whose returned ETag is
    recorded next to the cached copy. Listing, ``in`` and timestamps always
    ask S3. Several processes may share one ``base_dir``.

    ``digest_len`` (default 8) names the cached files the way FileDirDict
    names its own: each part of an object key gets ``"_"`` and that many
    characters of its digest, against collisions on case-insensitive file
    systems (0: no suffix). It changes nothing in S3: object keys are those of
    BasicS3Dict.
    """

    def __init__(
        self,
        *,
        bucket_name: str,
        region: str | None = None,
        root_prefix: str = "",
        base_dir: str | os.PathLike[str] = "__s3_dict__",
        serialization_format: str | Codec = "pkl",
        append_only: bool = False,
        base_class_for_values: type | None = None,
        endpoint_url: str | None = None,
        profile_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        checksum: ChecksumMode | None = None,
        client_config: Config | None = None,
        digest_len: int = 8,
    ) -> None:
        if not isinstance(base_dir, str | os.PathLike):
            raise TypeError(f"base_dir must be a path, not {base_dir!r}")
        self._cache_digest_len = _check_digest_len(digest_len)
        self._base_dir = os.path.abspath(os.fspath(base_dir))
        super().__init__(
            bucket_name=bucket_name,
            region=region,
            root_prefix=root_prefix,
            serialization_format=serialization_format,
            append_only=append_only,
            base_class_for_values=base_class_for_values,
            endpoint_url=endpoint_url,
            profile_name=profile_name,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            checksum=checksum,
            client_config=client_config,
        )

    def _wrap_backend(self, remote: S3Backend) -> Backend:
        from .backends.cached import CachedBackend
        from .backends.files import FileBackend

        # The cache folder is the local store's base: no link below it is followed (bucket folder included).
        local = FileBackend(self._base_dir, durable=False, use_locks=False)
        local_prefix = tuple(remote.prefix.rstrip("/").split("/")) if remote.prefix else ()
        return CachedBackend(
            remote,
            local,
            local_prefix=local_prefix,
            digest_len=self._cache_digest_len,
            local_root=(remote.bucket,),
        )

    @property
    def base_dir(self) -> str:
        """The local cache folder (absolute)."""
        return self._base_dir

    @property
    def digest_len(self) -> int:
        """Length of the digest suffix in the names of the cached files (S3 object keys have none)."""
        return self._cache_digest_len

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted (BasicS3Dict's plus ``base_dir`` and ``digest_len``)."""
        params = {**super().get_params(), "base_dir": self._base_dir, "digest_len": self._cache_digest_len}
        return dict(sorted(params.items()))


def _check_digest_len(digest_len: object) -> int:
    """``digest_len`` if it is an int >= 0; TypeError or ValueError naming it otherwise."""
    if isinstance(digest_len, bool) or not isinstance(digest_len, int):
        raise TypeError(f"digest_len must be an int >= 0, not {type(digest_len).__name__} ({digest_len!r})")
    if digest_len < 0:
        raise ValueError(f"digest_len must be an int >= 0, not {digest_len}")
    return digest_len


S3Dict_FileDirCached = S3Dict
"""The name the published persidict also uses for S3Dict."""
