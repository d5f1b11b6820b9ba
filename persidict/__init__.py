"""persidict: persistent dictionaries for distributed applications.

A PersiDict looks like a ``dict`` but keeps each value durably in a backend
(memory, a local folder, S3, LMDB), with per-key ETags, atomic conditional
operations, timestamps and hierarchical keys. Optional dependencies (boto3,
lmdb, numpy, pandas) load only when the class that needs them is used; a
missing one raises an ImportError naming the extra that brings it
(``pip install 'persidict[aws]'``). ``__version__`` is the installed
distribution's version: 1.0.0 and later, above every 0.x of the published
persidict (see CHANGELOG.md).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from .codecs import Codec, JsonCodec, Lz4Codec, PickleCodec, SafeJsonCodec, TextCodec
from .copying import CopySummary, copy
from .empty_dict import EmptyDict
from .errors import BackendError, BatchError, ConcurrencyConflictError, CorruptValueError, MutationPolicyError
from .flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    AlwaysRetrieveFlag,
    AnyETagFlag,
    DeleteCurrentFlag,
    ETagConditionFlag,
    ETagHasChangedFlag,
    ETagIfExists,
    ETagIsTheSameFlag,
    ETagValue,
    IfETagChangedRetrieveFlag,
    ItemNotAvailableFlag,
    Joker,
    KeepCurrentFlag,
    NeverRetrieveFlag,
    RetrieveValueFlag,
    TransformingFunction,
    ValueNotRetrievedFlag,
    ValueType,
)
from .keys import (
    SAFE_CHARS_SET,
    SAFE_STRING_MAX_LENGTH,
    NonEmptyPersiDictKey,
    NonEmptySafeStrTuple,
    PersiDictKey,
    SafeStrTuple,
    get_safe_chars,
    replace_unsafe_chars,
)
from .local_dict import LocalDict
from .persi_dict import PersiDict
from .progress import ProgressEvent
from .results import ConditionalOperationResult, OperationResult

# Classes whose modules pull in optional or heavier dependencies load on
# first use, so that ``import persidict`` imports no boto3, lmdb or numpy.
_LAZY: dict[str, str] = {
    "FileDirDict": "file_dir_dict",
    "BasicS3Dict": "s3_dict",
    "S3Dict": "s3_dict",
    "S3Dict_FileDirCached": "s3_dict",
    "LmdbDict": "lmdb_dict",
    "PersistDict": "persist_dict",
    "WriteOnceDict": "wrappers.write_once",
    "MutableDictCached": "wrappers.cached",
    "AppendOnlyDictCached": "wrappers.cached",
    "OverlappingMultiDict": "wrappers.overlapping",
    "ExpiringDict": "wrappers.expiring",
    "FileNameTooLongError": "backends.files",
    "PathCollisionError": "backends.files",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'persidict' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if _TYPE_CHECKING:
    from .backends.files import FileNameTooLongError, PathCollisionError
    from .file_dir_dict import FileDirDict
    from .lmdb_dict import LmdbDict
    from .persist_dict import PersistDict
    from .s3_dict import BasicS3Dict, S3Dict, S3Dict_FileDirCached
    from .wrappers.cached import AppendOnlyDictCached, MutableDictCached
    from .wrappers.expiring import ExpiringDict
    from .wrappers.overlapping import OverlappingMultiDict
    from .wrappers.write_once import WriteOnceDict

try:
    __version__ = _version("persidict")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ALWAYS_RETRIEVE",
    "ANY_ETAG",
    "DELETE_CURRENT",
    "ETAG_HAS_CHANGED",
    "ETAG_IS_THE_SAME",
    "IF_ETAG_CHANGED",
    "ITEM_NOT_AVAILABLE",
    "KEEP_CURRENT",
    "NEVER_RETRIEVE",
    "SAFE_CHARS_SET",
    "SAFE_STRING_MAX_LENGTH",
    "VALUE_NOT_RETRIEVED",
    "AlwaysRetrieveFlag",
    "AnyETagFlag",
    "AppendOnlyDictCached",
    "BackendError",
    "BasicS3Dict",
    "BatchError",
    "Codec",
    "ConcurrencyConflictError",
    "ConditionalOperationResult",
    "CopySummary",
    "CorruptValueError",
    "DeleteCurrentFlag",
    "ETagConditionFlag",
    "ETagHasChangedFlag",
    "ETagIfExists",
    "ETagIsTheSameFlag",
    "ETagValue",
    "EmptyDict",
    "ExpiringDict",
    "FileDirDict",
    "FileNameTooLongError",
    "IfETagChangedRetrieveFlag",
    "ItemNotAvailableFlag",
    "JsonCodec",
    "Joker",
    "KeepCurrentFlag",
    "LmdbDict",
    "LocalDict",
    "Lz4Codec",
    "MutableDictCached",
    "MutationPolicyError",
    "NeverRetrieveFlag",
    "NonEmptyPersiDictKey",
    "NonEmptySafeStrTuple",
    "OperationResult",
    "OverlappingMultiDict",
    "PathCollisionError",
    "PersiDict",
    "PersiDictKey",
    "PersistDict",
    "PickleCodec",
    "ProgressEvent",
    "RetrieveValueFlag",
    "S3Dict",
    "S3Dict_FileDirCached",
    "SafeJsonCodec",
    "SafeStrTuple",
    "TextCodec",
    "TransformingFunction",
    "ValueNotRetrievedFlag",
    "ValueType",
    "WriteOnceDict",
    "__version__",
    "copy",
    "get_safe_chars",
    "replace_unsafe_chars",
]
