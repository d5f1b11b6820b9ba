"""The model-based test (persidict.testing) on the wrappers whose semantics are a plain dict's.

MutableDictCached, AppendOnlyDictCached and ExpiringDict (with a ttl far
longer than a test) must be indistinguishable from the dict they wrap, over
LocalDict and over FileDirDict. WriteOnceDict ignores rewrites instead of
refusing them, so it has its own tests (tests/test_wrappers_write_once.py).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from typing import Any

from hypothesis import settings

from persidict import FileDirDict, LocalDict, PersiDict
from persidict.testing import persidict_state_machine
from persidict.wrappers.base import WrapperDict
from persidict.wrappers.cached import AppendOnlyDictCached, MutableDictCached
from persidict.wrappers.expiring import ExpiringDict

EXAMPLES = int(os.environ.get("PERSIDICT_MODEL_EXAMPLES", "500"))
_LOCAL = settings(max_examples=max(EXAMPLES // 8, 20), stateful_step_count=30, deadline=None)
_FILES = settings(max_examples=max(EXAMPLES // 20, 10), stateful_step_count=25, deadline=None)

_A_YEAR = 365 * 86400.0


# ---------------------------------------------------------------- over LocalDict


def _cached_local() -> PersiDict[Any]:
    return MutableDictCached(main_dict=LocalDict(), data_cache=LocalDict(), etag_cache=LocalDict())


def _cached_local_json() -> PersiDict[Any]:
    return MutableDictCached(
        main_dict=LocalDict(serialization_format="json"),
        data_cache=LocalDict(serialization_format="json"),
        etag_cache=LocalDict(serialization_format="txt"),
    )


def _cached_subdict() -> PersiDict[Any]:
    root: MutableDictCached[Any] = MutableDictCached(
        main_dict=LocalDict(), data_cache=LocalDict(), etag_cache=LocalDict()
    )
    root["outside", "z"] = 1
    return root.get_subdict("inside")


def _append_only_cached_local() -> PersiDict[Any]:
    return AppendOnlyDictCached(main_dict=LocalDict(append_only=True), data_cache=LocalDict(append_only=True))


def _expiring_local() -> PersiDict[Any]:
    return ExpiringDict(wrapped_dict=LocalDict(), ttl=_A_YEAR)


def _stacked_local() -> PersiDict[Any]:
    # Expiry over a cache over a store: layers compose.
    cached: MutableDictCached[Any] = MutableDictCached(
        main_dict=LocalDict(), data_cache=LocalDict(), etag_cache=LocalDict()
    )
    return ExpiringDict(wrapped_dict=cached, expiration_days=365)


TestMutableDictCachedLocal = persidict_state_machine(_cached_local).TestCase
TestMutableDictCachedLocal.settings = _LOCAL

TestMutableDictCachedLocalJson = persidict_state_machine(_cached_local_json).TestCase
TestMutableDictCachedLocalJson.settings = _LOCAL

TestMutableDictCachedSubdict = persidict_state_machine(_cached_subdict).TestCase
TestMutableDictCachedSubdict.settings = _LOCAL

TestAppendOnlyDictCachedLocal = persidict_state_machine(_append_only_cached_local).TestCase
TestAppendOnlyDictCachedLocal.settings = _LOCAL

TestExpiringDictLocal = persidict_state_machine(_expiring_local).TestCase
TestExpiringDictLocal.settings = _LOCAL

TestStackedLocal = persidict_state_machine(_stacked_local).TestCase
TestStackedLocal.settings = _LOCAL


# ---------------------------------------------------------------- over FileDirDict


def _folder() -> str:
    return tempfile.mkdtemp(prefix="persidict-wrappers-")


def _files(**kwargs: Any) -> FileDirDict[Any]:
    return FileDirDict(base_dir=_folder(), durable=False, **kwargs)


def _remove_folders(d: PersiDict[Any]) -> None:
    """Delete the temporary folders of every FileDirDict inside a wrapper."""
    stack: list[Any] = [d]
    while stack:
        x = stack.pop()
        if isinstance(x, FileDirDict):
            shutil.rmtree(x.base_dir, ignore_errors=True)
        elif isinstance(x, WrapperDict):
            stack.extend(v for v in x.get_params().values() if isinstance(v, PersiDict))


def _cached_files() -> PersiDict[Any]:
    return MutableDictCached(main_dict=_files(), data_cache=LocalDict(), etag_cache=LocalDict())


def _cached_files_file_caches() -> PersiDict[Any]:
    return MutableDictCached(main_dict=_files(), data_cache=_files(), etag_cache=_files())


def _append_only_cached_files() -> PersiDict[Any]:
    return AppendOnlyDictCached(main_dict=_files(append_only=True), data_cache=LocalDict(append_only=True))


def _expiring_files() -> PersiDict[Any]:
    return ExpiringDict(wrapped_dict=_files(), ttl=_A_YEAR)


TestMutableDictCachedFiles = persidict_state_machine(_cached_files, cleanup=_remove_folders).TestCase
TestMutableDictCachedFiles.settings = _FILES

TestMutableDictCachedFileCaches = persidict_state_machine(
    _cached_files_file_caches, cleanup=_remove_folders
).TestCase
TestMutableDictCachedFileCaches.settings = _FILES

TestAppendOnlyDictCachedFiles = persidict_state_machine(
    _append_only_cached_files, cleanup=_remove_folders
).TestCase
TestAppendOnlyDictCachedFiles.settings = _FILES

TestExpiringDictFiles = persidict_state_machine(_expiring_files, cleanup=_remove_folders).TestCase
TestExpiringDictFiles.settings = _FILES


# ---------------------------------------------------------------- over BasicS3Dict (moto, in-process)

_S3 = settings(max_examples=max(EXAMPLES // 100, 3), stateful_step_count=20, deadline=None)
_mocks: dict[int, Any] = {}
_buckets = itertools.count()


def _s3(**kwargs: Any) -> PersiDict[Any]:
    from moto import mock_aws

    from persidict.s3_dict import BasicS3Dict

    mock = mock_aws()
    mock.start()
    d: PersiDict[Any] = BasicS3Dict(
        bucket_name=f"wrappers-{next(_buckets)}",  # fresh: the store remembers buckets it made
        region="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        **kwargs,
    )
    _mocks[id(d)] = mock
    return d


def _stop_s3(d: PersiDict[Any]) -> None:
    assert isinstance(d, WrapperDict)
    main = d.get_params()["main_dict"]
    _mocks.pop(id(main)).stop()


def _cached_s3() -> PersiDict[Any]:
    return MutableDictCached(main_dict=_s3(), data_cache=LocalDict(), etag_cache=LocalDict())


def _append_only_cached_s3() -> PersiDict[Any]:
    return AppendOnlyDictCached(main_dict=_s3(append_only=True), data_cache=LocalDict(append_only=True))


TestMutableDictCachedS3 = persidict_state_machine(_cached_s3, cleanup=_stop_s3).TestCase
TestMutableDictCachedS3.settings = _S3

TestAppendOnlyDictCachedS3 = persidict_state_machine(_append_only_cached_s3, cleanup=_stop_s3).TestCase
TestAppendOnlyDictCachedS3.settings = _S3
