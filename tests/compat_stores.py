"""Every store and wrapper, built fresh, for the compatibility tests (tests/test_compat_*.py).

``make_store(kind, tmp_path)`` returns an empty dict of the given kind;
S3 kinds need moto's ``mock_aws`` active (the ``stores`` fixture of a test
module enters it).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from persidict import (
    AppendOnlyDictCached,
    BasicS3Dict,
    ExpiringDict,
    FileDirDict,
    LmdbDict,
    LocalDict,
    MutableDictCached,
    PersiDict,
    S3Dict,
    WriteOnceDict,
)

MUTABLE_KINDS = ["local", "files", "lmdb", "basic_s3", "s3", "mutable_cached", "expiring"]
"""Stores and wrappers whose items can be changed and deleted."""

APPEND_ONLY_KINDS = ["local_ao", "files_ao", "lmdb_ao", "basic_s3_ao", "write_once", "append_only_cached"]
"""Append-only stores and wrappers."""

S3_KINDS = {"basic_s3", "s3", "basic_s3_ao"}

_serial = itertools.count()


def make_store(kind: str, tmp_path: Path, **params: Any) -> PersiDict[Any]:
    """A fresh, empty dict of ``kind`` (see MUTABLE_KINDS and APPEND_ONLY_KINDS)."""
    n = next(_serial)
    folder = str(tmp_path / f"{kind}{n}")
    ao = kind.endswith("_ao")
    base = kind.removesuffix("_ao")
    if base == "local":
        return LocalDict(append_only=ao, **params)
    if base == "files":
        return FileDirDict(base_dir=folder, append_only=ao, **params)
    if base == "lmdb":
        return LmdbDict(base_dir=folder, append_only=ao, **params)
    if base == "basic_s3":
        return BasicS3Dict(bucket_name=f"compat{n}", append_only=ao, **params)
    if base == "s3":
        return S3Dict(bucket_name=f"compat{n}", base_dir=folder, **params)
    if kind == "mutable_cached":
        return MutableDictCached(
            main_dict=FileDirDict(base_dir=folder, **params), data_cache=LocalDict(), etag_cache=LocalDict()
        )
    if kind == "expiring":
        return ExpiringDict(wrapped_dict=LocalDict(**params), ttl=3600)
    if kind == "write_once":
        return WriteOnceDict(wrapped_dict=FileDirDict(base_dir=folder, append_only=True, **params))
    if kind == "append_only_cached":
        return AppendOnlyDictCached(
            main_dict=FileDirDict(base_dir=folder, append_only=True, **params),
            data_cache=LocalDict(append_only=True),
        )
    raise ValueError(f"unknown kind {kind!r}")
