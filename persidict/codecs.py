"""Codecs: how values become bytes and back.

``"pkl"`` writes a plain pickle (which ``joblib.load`` also reads) and reads
plain pickles and joblib pickles, LZ4-framed or not, as written by the
published persidict. ``"json"`` is jsonpickle text (indent 4). Any other
safe string is a plain-text format that holds ``str`` values only. A user
codec — anything with ``extension``, ``encode`` and ``decode`` — can be
passed instead of a format name; codecs compose (see ``Lz4Codec``).
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs

from .keys import SAFE_CHARS_SET

_LZ4_MAGIC = b"\x04\x22\x4d\x18"
# Magic numbers of the compressors joblib can write.
# (zlib, what joblib.dump(compress=<int>) writes, starts with "x": no pickle opcode.)
_COMPRESSED_MAGICS = (_LZ4_MAGIC, b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"x")


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back; ``extension`` names stored files."""

    @property
    def extension(self) -> str:
        """File extension (without the dot) of values written by this codec."""
        ...

    def encode(self, value: Any) -> bytes:
        """Serialise ``value``."""
        ...

    def decode(self, data: bytes) -> Any:
        """Deserialise bytes written by ``encode`` (or compatible writers)."""
        ...


PICKLE_PROTOCOL: int = pickle.HIGHEST_PROTOCOL
"""The protocol of pickles written (``joblib.load`` reads it)."""


def _pickle_dumps(
    value: Any, _dumps: Callable[..., bytes] = pickle.dumps, _protocol: int = PICKLE_PROTOCOL
) -> bytes:
    """``pickle.dumps(value, PICKLE_PROTOCOL)``: 3x less call overhead than a partial with a keyword."""
    return _dumps(value, _protocol)


@attrs.frozen
class PickleCodec:
    """Plain pickles out; plain and joblib (LZ4 or other) pickles in."""

    extension: str = "pkl"

    def encode(self, value: Any) -> bytes:
        """Pickle with the highest protocol ``joblib.load`` reads."""
        return _pickle_dumps(value)

    def decode(self, data: bytes) -> Any:
        """Unpickle plain pickles directly; hand joblib files to joblib."""
        if data[:1] == b"\x80":  # pickle protocol >= 2: the common case
            try:
                value = pickle.loads(data)
            except Exception:
                # An uncompressed joblib file with numpy arrays inlined.
                return _joblib_load(data)
            if type(value).__module__ == "joblib.numpy_pickle":
                return _joblib_load(data)
            return value
        if data.startswith(_COMPRESSED_MAGICS):
            return _joblib_load(data)
        return pickle.loads(data)


def _joblib_load(data: bytes) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))


_jsonpickle_ready = False
_json_only: Any = None  # a jsonpickle backend that decodes with json only (no yaml fallback)


def _jsonpickle() -> Any:
    """Import jsonpickle, registering numpy/pandas handlers when importable."""
    global _jsonpickle_ready, _json_only
    import jsonpickle
    import jsonpickle.backend
    import jsonpickle.pickler
    import jsonpickle.unpickler

    if not _jsonpickle_ready:
        if importlib.util.find_spec("numpy") is not None:
            import jsonpickle.ext.numpy as jp_numpy

            jp_numpy.register_handlers()
        if importlib.util.find_spec("pandas") is not None:
            import jsonpickle.ext.pandas as jp_pandas

            jp_pandas.register_handlers()
        # Bad bytes fail as JSON, instead of being retried as YAML (which warns).
        _json_only = jsonpickle.backend.JSONBackend(fallthrough=False)
        _jsonpickle_ready = True
    return jsonpickle


@attrs.frozen
class JsonCodec:
    """jsonpickle text with indent 4: human-readable, not strict JSON.

    Dict keys that are not str (ints, tuples, ...) round-trip: they are
    written as ``"json://<encoded key>"`` strings. A file whose str keys
    themselves start with ``"json://"`` (written by a ``keys=False`` encoder)
    would read those keys back decoded.
    """

    extension: str = "json"

    def encode(self, value: Any) -> bytes:
        """Encode with jsonpickle; non-str dict keys are kept (``keys=True``)."""
        jp = _jsonpickle()
        # keys=True encodes a non-str key as a "json://..." string, so {1: "a"}
        # reads back with the int key (keys=False would turn it into "1"). str
        # keys are written as they are, as the published persidict writes them.
        # An explicit context avoids jsonpickle's per-call DeprecationWarning.
        text: str = jp.encode(value, indent=4, context=jp.pickler.Pickler(keys=True))
        return text.encode("utf-8")

    def decode(self, data: bytes) -> Any:
        """Decode with jsonpickle (``keys=True``: files with str keys only decode as before)."""
        jp = _jsonpickle()
        return jp.decode(data.decode("utf-8"), backend=_json_only, context=jp.unpickler.Unpickler(keys=True))


_JSON_SCALARS = (str, int, float, bool, type(None))
_TAG_PREFIXES = ("py/", "json://")  # what jsonpickle writes where it will build objects on read


def _refuse_json_key(key: str, where: str) -> None:
    if key.startswith(_TAG_PREFIXES):
        raise ValueError(f"{where}: the key {key!r} looks like a jsonpickle tag (py/..., json://...)")


def _check_json_native(value: Any) -> None:
    """Raise TypeError unless ``value`` is made of dicts with str keys, lists, str, int, float, bool, None.

    Exact types only: a tuple (it would read back as a list), a set, bytes, a
    subclass or any other object is refused, so every value reads back equal.
    """
    stack: list[tuple[Any, str]] = [(value, "value")]
    seen: set[int] = set()  # containers already checked (json.dumps reports cycles itself)
    while stack:
        v, where = stack.pop()
        t = type(v)
        if t in _JSON_SCALARS:
            continue
        if t is not dict and t is not list:
            raise TypeError(
                f"{where} is a {t.__name__}: the safe JSON format stores dicts with str keys, lists, "
                "str, int, float, bool and None only"
            )
        if id(v) in seen:
            continue
        seen.add(id(v))
        if t is list:
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(v))
            continue
        for k, item in v.items():
            if type(k) is not str:
                raise TypeError(f"{where} has the key {k!r}: the safe JSON format stores str dict keys only")
            _refuse_json_key(k, where)
            stack.append((item, f"{where}[{k!r}]"))


def _untagged_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing jsonpickle tags (objects the safe format never builds)."""
    for k, _ in pairs:
        _refuse_json_key(k, "stored JSON")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"stored JSON holds {name}, which plain JSON does not allow")


@attrs.frozen
class SafeJsonCodec:
    """Plain JSON of JSON-native values: reading never runs code from the store.

    Writes dicts with str keys, lists, str, int, finite float, bool and None
    (anything else: TypeError; NaN and infinities: ValueError), as indented
    UTF-8 JSON that any JSON reader, and the ``"json"`` format, reads back.
    Reading accepts plain JSON only: a document with jsonpickle's tags
    (``"py/object"``, ``"json://..."`` keys, ...) or NaN is refused, so a
    store that others can write cannot make a reader build objects. Its
    files end in ``.json`` by default, beside the ``"json"`` format's.
    """

    extension: str = "json"

    def encode(self, value: Any) -> bytes:
        """Check that ``value`` is JSON-native, then write it as JSON."""
        _check_json_native(value)
        return json.dumps(value, indent=4, ensure_ascii=False, allow_nan=False).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        """Parse plain JSON; jsonpickle tags and NaN are refused (ValueError)."""
        return json.loads(
            data.decode("utf-8"), object_pairs_hook=_untagged_object, parse_constant=_no_constant
        )


@attrs.frozen
class TextCodec:
    """UTF-8 text: holds ``str`` values only."""

    extension: str = "txt"

    def encode(self, value: Any) -> bytes:
        """Encode a str as UTF-8."""
        if not isinstance(value, str):
            raise TypeError(
                f"A dict with serialization_format={self.extension!r} stores str values only, "
                f"not {type(value).__name__}"
            )
        return value.encode("utf-8")

    def decode(self, data: bytes) -> Any:
        """Decode UTF-8."""
        return data.decode("utf-8")


@attrs.frozen
class Lz4Codec:
    """LZ4-frame compression around another codec."""

    inner: Codec = attrs.field(factory=PickleCodec)
    extension: str = attrs.field()

    @extension.default
    def _extension_default(self) -> str:
        return f"{self.inner.extension}.lz4"

    def encode(self, value: Any) -> bytes:
        """Encode with the inner codec, then compress."""
        import lz4.frame

        out: bytes = lz4.frame.compress(self.inner.encode(value))
        return out

    def decode(self, data: bytes) -> Any:
        """Decompress, then decode with the inner codec."""
        import lz4.frame

        return self.inner.decode(lz4.frame.decompress(data))


def codec_for(serialization_format: str | Codec) -> Codec:
    """The codec for a format name ("pkl", "json", any other: text) or a Codec."""
    if isinstance(serialization_format, str):
        fmt = serialization_format
        if not fmt or any(c not in SAFE_CHARS_SET for c in fmt) or fmt in (".", ".."):
            raise ValueError(
                f"serialization_format={fmt!r} is not a safe, non-empty string "
                "(allowed characters: A-Za-z0-9()_-~.=)"
            )
        if fmt == "pkl":
            return PickleCodec()
        if fmt == "json":
            return JsonCodec()
        _refuse_misspelling(fmt)
        return TextCodec(extension=fmt)
    if isinstance(serialization_format, Codec):
        return serialization_format
    raise TypeError(
        f"serialization_format must be a format name or a Codec, not {type(serialization_format).__name__}"
    )


_MISSPELLINGS = {
    "pkl": ("pickle", "pickl", "pckl", "pck", "pkl"),
    "json": ("json", "jsn", "jason"),
}


def _refuse_misspelling(fmt: str) -> None:
    """ValueError for a format name that is surely a misspelt "pkl" or "json" (not a text format)."""
    lowered = fmt.lower()
    for name, spellings in _MISSPELLINGS.items():
        if lowered in spellings:
            raise ValueError(
                f"serialization_format={fmt!r} is not a built-in format: did you mean {name!r}? "
                f"(the built-in formats are 'pkl' and 'json', lower case; any other safe name is a "
                f"plain-text format of str values)"
            )


def format_name(codec: Codec) -> str | Codec:
    """Inverse of ``codec_for``: the name for built-in codecs, else the codec."""
    if isinstance(codec, PickleCodec | JsonCodec | TextCodec):
        return codec.extension
    return codec


@attrs.frozen
class ValueCoder:
    """A codec plus the dict's value policy: checks types and names the key on errors."""

    codec: Codec
    base_class_for_values: type | None = None
    dump: Callable[[Any], bytes] = attrs.field(init=False, eq=False, repr=False)
    """The codec's bytes of a value: no checks, the codec's own errors (``encode`` names the key).

    A plain pickle skips ``PickleCodec.encode``'s attribute lookups (one small frame on every write).
    """

    @dump.default
    def _dumper(self) -> Callable[[Any], bytes]:
        if type(self.codec) is PickleCodec:
            return _pickle_dumps
        return self.codec.encode

    def check(self, key: object, value: Any) -> None:
        """Raise TypeError if ``value`` may not be stored under ``key``."""
        base = self.base_class_for_values
        if base is not None and not isinstance(value, base):
            raise TypeError(
                f"Value for key {key!r} must be an instance of {base.__name__}, not {type(value).__name__}"
            )

    def encode(self, key: object, value: Any) -> bytes:
        """Check and serialise a value for ``key``."""
        if self.base_class_for_values is not None:
            self.check(key, value)
        try:
            return self.dump(value)
        except TypeError as e:
            raise TypeError(
                f"Cannot serialise the value for key {key!r} as {self.codec.extension!r}: {e}"
            ) from e
        except Exception as e:
            raise ValueError(
                f"Cannot serialise the value for key {key!r} as {self.codec.extension!r}: {e}"
            ) from e

    def decode(self, key: object, data: bytes, where: Callable[[], str]) -> Any:
        """Deserialise the value stored for ``key`` (``where()`` names the place); check its type."""
        try:
            value = self.codec.decode(data)
        except Exception as e:
            from .errors import CorruptValueError

            raise CorruptValueError(
                f"Cannot decode the value of key {key!r} stored at {where()} "
                f"({len(data)} bytes, format {self.codec.extension!r}): {type(e).__name__}: {e}",
                backend=where(),
                operation="decode",
                key=key,
            ) from e
        base = self.base_class_for_values
        if base is not None and not isinstance(value, base):
            raise TypeError(
                f"The value stored for key {key!r} at {where()} is a {type(value).__name__}, "
                f"not an instance of {base.__name__}"
            )
        return value
