"""Store specs: a store's parameters as a small typed record, written down as plain data.

Each store has a spec class, an attrs record of the constructor parameters
that can be written as JSON (what ``get_params()`` returns, less the
credentials, which come only from the environment, and less Python objects
such as ``base_class_for_values``)::

    FileDirSpec    FileDirDict   a local folder
    BasicS3Spec    BasicS3Dict   an S3 bucket (and prefix)
    S3Spec         S3Dict        an S3 bucket with a local folder cache
    LmdbSpec       LmdbDict      an LMDB database
    LocalSpec      LocalDict     memory (a named store shared in this process)

``spec_to_dict(spec)`` gives plain JSON-able data with a ``"store"`` key
naming the class; ``spec_from_dict(data)`` reads it back (with ``cattrs``,
imported only here and only when a spec is converted). ``spec.open()``
opens the store; ``spec_of(store)`` gives the spec of an open one; :func:`persidict.open` also takes URLs (see
``persidict.opening``). Every bad parameter raises a ValueError of one line
naming it and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import attrs

if TYPE_CHECKING:
    from cattrs import Converter

    from .persi_dict import PersiDict

SPEC_ENV = "PERSIDICT_STORE"
"""The environment variable read by ``persidict.open()`` (no argument) and the command line."""

DEFAULT_MAP_SIZE = 64 * 2**20
"""LmdbDict's default initial map size (equal to persidict.lmdb_dict.DEFAULT_MAP_SIZE)."""

CHECKSUM_MODES = ("when_supported", "when_required")
"""The values of BasicS3Dict's ``checksum`` parameter (besides None)."""


# ---------------------------------------------------------------- validators


def _str(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{a.name} must be a non-empty string, not {value!r}")


def _opt_str(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _str(inst, a, value)


def _any_str(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{a.name} must be a string, not {value!r}")


def _bool(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{a.name} must be true or false, not {value!r}")


def _non_negative_int(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{a.name} must be an integer >= 0, not {value!r}")


def _positive_int(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{a.name} must be an integer > 0, not {value!r}")


def _opt_positive_int(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive_int(inst, a, value)


def _opt_positive_number(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if value is not None and not ok:
        raise ValueError(f"{a.name} must be a positive number of seconds, not {value!r}")


def _format(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or not value.isidentifier():
        raise ValueError(f"{a.name} must be a format name such as 'pkl', 'json' or 'txt', not {value!r}")


def _checksum(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in CHECKSUM_MODES:
        raise ValueError(f"{a.name} must be one of {', '.join(CHECKSUM_MODES)}, not {value!r}")


def _prefix(inst: object, a: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(p, str) and p for p in value):
        raise ValueError(f"{a.name} must be a list of non-empty strings, not {value!r}")


def _to_prefix(value: object) -> object:
    """A list (from JSON) or a str ("a/b") as a tuple; anything else as is (the validator names it)."""
    if isinstance(value, str):
        return tuple(p for p in value.split("/") if p)
    return tuple(value) if isinstance(value, list) else value


def _s3_prefix(value: object) -> object:
    """An S3 prefix as the store keeps it: ending in "/" unless empty."""
    if isinstance(value, str) and value and not value.endswith("/"):
        return value + "/"
    return value


def _fmt() -> Any:
    return attrs.field(default="pkl", validator=_format)


def _flag(default: bool) -> Any:
    return attrs.field(default=default, validator=_bool)


# ---------------------------------------------------------------- specs


@attrs.frozen(kw_only=True)
class FileDirSpec:
    """A FileDirDict: a local folder of one file per item."""

    store: ClassVar[str] = "FileDirDict"
    base_dir: str = attrs.field(validator=_str)
    serialization_format: str = _fmt()
    digest_len: int = attrs.field(default=4, validator=_non_negative_int)
    append_only: bool = _flag(False)
    durable: bool = _flag(True)
    use_locks: bool = _flag(True)

    def open(self) -> PersiDict[Any]:
        """Open the store this spec describes."""
        from .file_dir_dict import FileDirDict

        return FileDirDict(**attrs.asdict(self))


@attrs.frozen(kw_only=True)
class BasicS3Spec:
    """A BasicS3Dict: objects under a prefix of an S3 bucket (credentials from the environment)."""

    store: ClassVar[str] = "BasicS3Dict"
    bucket_name: str = attrs.field(validator=_str)
    root_prefix: str = attrs.field(default="", converter=_s3_prefix, validator=_any_str)
    region: str | None = attrs.field(default=None, validator=_opt_str)
    endpoint_url: str | None = attrs.field(default=None, validator=_opt_str)
    profile_name: str | None = attrs.field(default=None, validator=_opt_str)
    serialization_format: str = _fmt()
    append_only: bool = _flag(False)
    checksum: str | None = attrs.field(default=None, validator=_checksum)

    def open(self) -> PersiDict[Any]:
        """Open the store this spec describes."""
        from .s3_dict import BasicS3Dict

        return BasicS3Dict(**attrs.asdict(self))


@attrs.frozen(kw_only=True)
class S3Spec:
    """An S3Dict: a BasicS3Dict read through a local folder cache (``base_dir``)."""

    store: ClassVar[str] = "S3Dict"
    bucket_name: str = attrs.field(validator=_str)
    root_prefix: str = attrs.field(default="", converter=_s3_prefix, validator=_any_str)
    base_dir: str = attrs.field(default="__s3_dict__", validator=_str)
    digest_len: int = attrs.field(default=8, validator=_non_negative_int)
    region: str | None = attrs.field(default=None, validator=_opt_str)
    endpoint_url: str | None = attrs.field(default=None, validator=_opt_str)
    profile_name: str | None = attrs.field(default=None, validator=_opt_str)
    serialization_format: str = _fmt()
    append_only: bool = _flag(False)
    checksum: str | None = attrs.field(default=None, validator=_checksum)

    def open(self) -> PersiDict[Any]:
        """Open the store this spec describes."""
        from .s3_dict import S3Dict

        return S3Dict(**attrs.asdict(self))


@attrs.frozen(kw_only=True)
class LmdbSpec:
    """An LmdbDict: an LMDB database (a directory), optionally with a ttl (seconds)."""

    store: ClassVar[str] = "LmdbDict"
    base_dir: str = attrs.field(validator=_str)
    root_prefix: tuple[str, ...] = attrs.field(default=(), converter=_to_prefix, validator=_prefix)
    serialization_format: str = _fmt()
    append_only: bool = _flag(False)
    durable: bool = _flag(True)
    readonly: bool = _flag(False)
    map_size: int = attrs.field(default=DEFAULT_MAP_SIZE, validator=_positive_int)
    max_map_size: int | None = attrs.field(default=None, validator=_opt_positive_int)
    cache_size: int = attrs.field(default=0, validator=_non_negative_int)
    ttl: float | None = attrs.field(default=None, validator=_opt_positive_number)
    purge_at_open: bool = _flag(True)

    def open(self) -> PersiDict[Any]:
        """Open the store this spec describes."""
        from .lmdb_dict import LmdbDict

        return LmdbDict(**attrs.asdict(self))


_MEMORY: dict[str, Any] = {}
"""The named memory stores of this process (``mem://name``), by name."""


@attrs.frozen(kw_only=True)
class LocalSpec:
    """A LocalDict in memory: ``name`` picks a store shared by this process ("" a new one each time)."""

    store: ClassVar[str] = "LocalDict"
    name: str = attrs.field(default="", validator=_any_str)
    root_prefix: tuple[str, ...] = attrs.field(default=(), converter=_to_prefix, validator=_prefix)
    serialization_format: str = _fmt()
    append_only: bool = _flag(False)
    prune_interval: int | None = attrs.field(default=64, validator=_opt_positive_int)

    def open(self) -> PersiDict[Any]:
        """Open the store this spec describes."""
        from .backends.memory import MemoryBackend
        from .local_dict import LocalDict

        params = attrs.asdict(self)
        name = params.pop("name")
        backend = _MEMORY.setdefault(name, MemoryBackend()) if name else None
        return LocalDict(backend=backend, **params)


StoreSpec: TypeAlias = FileDirSpec | BasicS3Spec | S3Spec | LmdbSpec | LocalSpec
"""Any store spec."""

SPEC_CLASSES: dict[str, type[StoreSpec]] = {
    c.store: c for c in (FileDirSpec, BasicS3Spec, S3Spec, LmdbSpec, LocalSpec)
}
"""Each spec class by the name of its store (the ``"store"`` key of a spec's data)."""


def spec_of(store: PersiDict[Any]) -> StoreSpec:
    """The spec of an open store, from its ``get_params()`` (without credentials: the environment has them).

    A ValueError when the store cannot be written down: another class, a Codec
    object as its format, a ``base_class_for_values``, or a LocalDict whose
    memory was not opened by name (``mem://name``).
    """
    name = type(store).__name__
    cls = SPEC_CLASSES.get(name)
    if cls is None or type(store).__module__ not in _STORE_MODULES:
        raise ValueError(f"{name} has no spec (specs describe {', '.join(SPEC_CLASSES)})")
    params = store.get_params()
    if not isinstance(params.get("serialization_format"), str):
        raise ValueError(f"this {name} has a Codec object as its format: a spec names formats by name")
    if params.get("base_class_for_values") is not None:
        raise ValueError(f"this {name} has a base_class_for_values: a spec cannot write a Python class down")
    fields = {a.name: params[a.name] for a in attrs.fields(cls) if a.name in params}
    if cls is LocalSpec:
        fields["name"] = next((n for n, b in _MEMORY.items() if b is params["backend"]), None)
        if fields["name"] is None:
            raise ValueError("this LocalDict's memory was not opened by name (mem://name): it has no spec")
    return cls(**fields)


_STORE_MODULES = (
    "persidict.file_dir_dict",
    "persidict.s3_dict",
    "persidict.lmdb_dict",
    "persidict.local_dict",
)


# ---------------------------------------------------------------- conversion


def spec_to_dict(spec: StoreSpec) -> dict[str, Any]:
    """The spec as plain JSON-able data: ``{"store": <class name>, <parameter>: <value>, ...}``."""
    if not isinstance(spec, tuple(SPEC_CLASSES.values())):
        raise TypeError(f"spec must be a store spec, not {type(spec).__name__}")
    data: dict[str, Any] = _converter().unstructure(spec)
    return {"store": spec.store, **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}}


def spec_from_dict(data: Mapping[str, Any]) -> StoreSpec:
    """The spec written as ``data`` (what spec_to_dict gives); a one-line ValueError naming what is wrong."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a store spec must be a JSON object, not {type(data).__name__}")
    fields = dict(data)
    store = fields.pop("store", None)
    cls = SPEC_CLASSES.get(store) if isinstance(store, str) else None
    if cls is None:
        raise ValueError(f"store must be one of {', '.join(SPEC_CLASSES)}, not {store!r}")
    known = [a.name for a in attrs.fields(cls)]
    for name in fields:
        if name not in known:
            raise ValueError(f"unknown parameter {name!r} for {store} (known: {', '.join(known)})")
    missing = [a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING and a.name not in fields]
    if missing:
        raise ValueError(f"missing parameter {missing[0]!r} for {store}")
    return _structure(fields, cls)


def _structure(fields: dict[str, Any], cls: type[StoreSpec]) -> StoreSpec:
    """cattrs' structuring, its errors turned into one line naming the parameter."""
    from cattrs import BaseValidationError

    try:
        spec: StoreSpec = _converter().structure(fields, cls)
    except BaseValidationError as e:
        raise ValueError(_first_error(e)) from None
    except (ValueError, TypeError) as e:
        raise ValueError(str(e)) from None
    return spec


def _first_error(e: BaseException) -> str:
    """The message of the first error in a cattrs error group, prefixed by its parameter's name."""
    from cattrs import ClassValidationError

    if isinstance(e, ClassValidationError):
        with_notes, without_notes = e.group_exceptions()
        if with_notes:
            exc, note = with_notes[0]
            message = _first_error(exc)
            return message if message.startswith(f"{note.name} ") else f"{note.name} {message}"
        if without_notes:
            return _first_error(without_notes[0])
    if isinstance(e, BaseExceptionGroup) and e.exceptions:
        return _first_error(e.exceptions[0])
    return str(e)


_CONVERTER: list[Converter] = []


def _converter() -> Converter:
    """The cattrs converter of specs (built on first use): JSON types only, no silent coercion."""
    if not _CONVERTER:
        from cattrs import Converter

        c = Converter()
        c.register_structure_hook(str, _exact(str))
        c.register_structure_hook(bool, _exact(bool))
        c.register_structure_hook(int, _exact(int))
        c.register_structure_hook(float, _number)
        c.register_structure_hook_func(lambda t: t == tuple[str, ...], _passthrough)
        _CONVERTER.append(c)
    return _CONVERTER[0]


_JSON_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


def _exact(t: type) -> Any:
    """A structure hook that accepts values of exactly type ``t`` (no bool for int, no "1" for 1)."""

    def hook(value: object, _: object) -> object:
        if type(value) is not t:
            raise TypeError(f"must be {_JSON_NAMES[t]}, not {value!r}")
        return value

    return hook


def _number(value: object, _: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"must be a number, not {value!r}")
    return float(value)


def _passthrough(value: object, _: object) -> object:
    return value  # the field's converter and validator check it
