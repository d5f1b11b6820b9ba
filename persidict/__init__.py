"""persidict: persistent dictionaries for distributed applications.

A PersiDict looks like a ``dict`` but keeps each value durably in a backend
(memory, a local folder, S3, LMDB), with per-key ETags, atomic conditional
operations, timestamps and hierarchical keys. Optional dependencies (boto3,
lmdb, numpy, pandas) load only when the class that needs them is used.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .codecs import Codec, JsonCodec, Lz4Codec, PickleCodec, TextCodec
from .empty_dict import EmptyDict
from .errors import BackendError, ConcurrencyConflictError, CorruptValueError, MutationPolicyError
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
from .results import ConditionalOperationResult, OperationResult

# Classes whose modules pull in optional or heavier dependencies load on
# first use, so that ``import persidict`` imports no boto3, lmdb or numpy.
_LAZY: dict[str, str] = {
    "FileDirDict": "file_dir_dict",
    "BasicS3Dict": "s3_dict",
    "S3Dict": "s3_dict",
    "S3Dict_FileDirCached": "s3_dict",
    "LmdbDict": "lmdb_dict",
    "WriteOnceDict": "wrappers.write_once",
    "MutableDictCached": "wrappers.cached",
    "AppendOnlyDictCached": "wrappers.cached",
    "OverlappingMultiDict": "wrappers.overlapping",
    "ExpiringDict": "wrappers.expiring",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'persidict' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


try:
    __version__ = version("persidict")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
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
    "BackendError",
    "Codec",
    "ConcurrencyConflictError",
    "ConditionalOperationResult",
    "CorruptValueError",
    "DeleteCurrentFlag",
    "ETagConditionFlag",
    "ETagHasChangedFlag",
    "ETagIfExists",
    "ETagIsTheSameFlag",
    "ETagValue",
    "EmptyDict",
    "IfETagChangedRetrieveFlag",
    "ItemNotAvailableFlag",
    "JsonCodec",
    "Joker",
    "KeepCurrentFlag",
    "LocalDict",
    "Lz4Codec",
    "MutationPolicyError",
    "NeverRetrieveFlag",
    "NonEmptyPersiDictKey",
    "NonEmptySafeStrTuple",
    "OperationResult",
    "PersiDict",
    "PersiDictKey",
    "PickleCodec",
    "RetrieveValueFlag",
    "SafeStrTuple",
    "TextCodec",
    "TransformingFunction",
    "ValueNotRetrievedFlag",
    "ValueType",
    "__version__",
    "get_safe_chars",
    "replace_unsafe_chars",
]
