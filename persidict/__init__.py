"""persidict: persistent dictionaries for distributed applications.

A PersiDict looks like a ``dict`` but keeps each value durably in a backend
(memory, a local folder, S3, LMDB), with per-key ETags, atomic conditional
operations, timestamps and hierarchical keys. Optional dependencies (boto3,
lmdb, numpy, pandas) load only when the class that needs them is used; a
missing one raises an ImportError naming the extra that brings it
(``pip install 'persidict[aws]'``). ``__version__`` is the package's version
(kept equal to pyproject.toml's by a test): 1.0.0 and later, above every 0.x
of the published persidict (see CHANGELOG.md).

Every name loads on first use (a module ``__getattr__``), so that
``import persidict`` stays fast (a few milliseconds) and the command line
(``python -m persidict``) starts quickly; type checkers see the imports
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as True)

__version__ = "1.0.0"
"""The package's version, equal to pyproject.toml's (tests/test_version.py checks it)."""

# Where each public name lives; a name's module is imported on first use.
_LAZY: dict[str, str] = {
    "Codec": "codecs",
    "JsonCodec": "codecs",
    "Lz4Codec": "codecs",
    "PickleCodec": "codecs",
    "SafeJsonCodec": "codecs",
    "TextCodec": "codecs",
    "CopySummary": "copying",
    "copy": "copying",
    "EmptyDict": "empty_dict",
    "BackendError": "errors",
    "BatchError": "errors",
    "ConcurrencyConflictError": "errors",
    "CorruptValueError": "errors",
    "MutationPolicyError": "errors",
    "ALWAYS_RETRIEVE": "flags",
    "ANY_ETAG": "flags",
    "DELETE_CURRENT": "flags",
    "ETAG_HAS_CHANGED": "flags",
    "ETAG_IS_THE_SAME": "flags",
    "IF_ETAG_CHANGED": "flags",
    "ITEM_NOT_AVAILABLE": "flags",
    "KEEP_CURRENT": "flags",
    "NEVER_RETRIEVE": "flags",
    "VALUE_NOT_RETRIEVED": "flags",
    "AlwaysRetrieveFlag": "flags",
    "AnyETagFlag": "flags",
    "DeleteCurrentFlag": "flags",
    "ETagConditionFlag": "flags",
    "ETagHasChangedFlag": "flags",
    "ETagIfExists": "flags",
    "ETagIsTheSameFlag": "flags",
    "ETagValue": "flags",
    "IfETagChangedRetrieveFlag": "flags",
    "ItemNotAvailableFlag": "flags",
    "Joker": "flags",
    "KeepCurrentFlag": "flags",
    "NeverRetrieveFlag": "flags",
    "RetrieveValueFlag": "flags",
    "TransformingFunction": "flags",
    "ValueNotRetrievedFlag": "flags",
    "ValueType": "flags",
    "SAFE_CHARS_SET": "keys",
    "SAFE_STRING_MAX_LENGTH": "keys",
    "NonEmptyPersiDictKey": "keys",
    "NonEmptySafeStrTuple": "keys",
    "PersiDictKey": "keys",
    "SafeStrTuple": "keys",
    "get_safe_chars": "keys",
    "replace_unsafe_chars": "keys",
    "LocalDict": "local_dict",
    "PersiDict": "persi_dict",
    "ProgressEvent": "progress",
    "ConditionalOperationResult": "results",
    "OperationResult": "results",
    "open": "opening",
    "FileDirDict": "file_dir_dict",
    "BasicS3Dict": "s3_dict",
    "S3Dict": "s3_dict",
    "S3Dict_FileDirCached": "s3_dict",
    "LmdbDict": "lmdb_dict",
    "PersistDict": "persist_dict",
    "WriteOnceDict": "wrappers.write_once",
    "AppendOnlyDictCached": "wrappers.cached",
    "MutableDictCached": "wrappers.cached",
    "OverlappingMultiDict": "wrappers.overlapping",
    "ExpiringDict": "wrappers.expiring",
    "FileNameTooLongError": "backends.files",
    "PathCollisionError": "backends.files",
}


if not TYPE_CHECKING:  # (hidden from type checkers: an unknown name stays an error for them)

    def __getattr__(name: str) -> object:
        """Import the module of a public name on first use and keep the name."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'persidict' has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """The module's names, the not yet imported public ones included."""
        return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from .backends.files import FileNameTooLongError, PathCollisionError
    from .codecs import Codec, JsonCodec, Lz4Codec, PickleCodec, SafeJsonCodec, TextCodec
    from .copying import CopySummary
    from .copying import copy as copy
    from .empty_dict import EmptyDict
    from .errors import (
        BackendError,
        BatchError,
        ConcurrencyConflictError,
        CorruptValueError,
        MutationPolicyError,
    )
    from .file_dir_dict import FileDirDict
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
    from .lmdb_dict import LmdbDict
    from .local_dict import LocalDict
    from .opening import open as open
    from .persi_dict import PersiDict
    from .persist_dict import PersistDict
    from .progress import ProgressEvent
    from .results import ConditionalOperationResult, OperationResult
    from .s3_dict import BasicS3Dict, S3Dict, S3Dict_FileDirCached
    from .wrappers.cached import AppendOnlyDictCached, MutableDictCached
    from .wrappers.expiring import ExpiringDict
    from .wrappers.overlapping import OverlappingMultiDict
    from .wrappers.write_once import WriteOnceDict

del TYPE_CHECKING

# ``copy`` and ``open`` are left out of __all__ on purpose: ``from persidict import *`` must not
# shadow the builtin ``open`` or a module named ``copy``; use ``persidict.open`` / ``persidict.copy``.
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
    "get_safe_chars",
    "replace_unsafe_chars",
]
