"""Codecs: pickle (and joblib files), jsonpickle, text, LZ4, and user codecs."""

from __future__ import annotations

import importlib.util
import io
import json
import pathlib
import pickle
from typing import Any

import attrs
import pytest

from persidict import Codec, FileDirDict, JsonCodec, Lz4Codec, PickleCodec, TextCodec
from persidict.codecs import ValueCoder, codec_for, format_name
from persidict.errors import CorruptValueError

HAS_NUMPY = importlib.util.find_spec("numpy") is not None
VALUES: list[Any] = [0, -5, 2.5, "text", "", None, True, [1, "a", None], {"k": [1, 2]}, (1, 2), {1, 2}]


def stored_bytes(d: FileDirDict[Any]) -> bytes:
    """The single stored file's raw bytes (a dict in a folder: LocalDict never encodes)."""
    (path,) = [p for p in pathlib.Path(d.base_dir).rglob("*") if p.is_file()]
    return path.read_bytes()


def in_folder(tmp_path: pathlib.Path, fmt: Any) -> FileDirDict[Any]:
    """A dict that runs its codec on every value (LocalDict only deep-copies)."""
    return FileDirDict(base_dir=str(tmp_path), serialization_format=fmt, durable=False)


# ---------------------------------------------------------------- names


def test_codec_for_names() -> None:
    assert codec_for("pkl") == PickleCodec()
    assert codec_for("json") == JsonCodec()
    assert codec_for("txt") == TextCodec()
    assert codec_for("md") == TextCodec(extension="md")
    lz = Lz4Codec()
    assert codec_for(lz) is lz
    for name in ("pkl", "json", "txt", "csv"):
        assert format_name(codec_for(name)) == name
    assert format_name(lz) is lz


@pytest.mark.parametrize("bad", ["", "a/b", ".", "..", "a b"])
def test_bad_format_names(bad: str) -> None:
    with pytest.raises(ValueError, match="serialization_format"):
        codec_for(bad)


def test_not_a_codec() -> None:
    with pytest.raises(TypeError, match="int"):
        codec_for(5)  # type: ignore[arg-type]


# ---------------------------------------------------------------- pickle


@pytest.mark.parametrize("value", VALUES)
def test_pickle_round_trip(value: Any) -> None:
    c = PickleCodec()
    assert c.decode(c.encode(value)) == value
    assert pickle.loads(c.encode(value)) == value  # a plain pickle


@pytest.mark.parametrize("compress", [0, 3, ("lz4", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_pickle_reads_joblib_files(compress: Any) -> None:
    import joblib

    buf = io.BytesIO()
    value = {"a": [1, 2, 3], "b": "x" * 100}
    joblib.dump(value, buf, compress=compress)
    assert PickleCodec().decode(buf.getvalue()) == value


@pytest.mark.skipif(not HAS_NUMPY, reason="numpy is not installed")
def test_pickle_reads_joblib_numpy_files() -> None:
    import joblib
    import numpy as np

    arr = np.arange(1000, dtype=np.float64).reshape(10, 100)
    for compress in (0, ("lz4", 3)):
        buf = io.BytesIO()
        joblib.dump({"arr": arr}, buf, compress=compress)
        got = PickleCodec().decode(buf.getvalue())
        assert np.array_equal(got["arr"], arr)
    c = PickleCodec()
    assert np.array_equal(c.decode(c.encode(arr)), arr)


def test_joblib_reads_what_we_write() -> None:
    import joblib

    value = {"a": [1, 2]}
    assert joblib.load(io.BytesIO(PickleCodec().encode(value))) == value


# ---------------------------------------------------------------- json


@pytest.mark.parametrize("value", VALUES)
def test_json_round_trip(value: Any) -> None:
    c = JsonCodec()
    assert c.decode(c.encode(value)) == value


def test_json_is_indented_text() -> None:
    data = JsonCodec().encode({"a": [1, 2]})
    text = data.decode("utf-8")
    assert json.loads(text) == {"a": [1, 2]}
    assert "\n    " in text  # indent 4


def test_json_keeps_non_str_dict_keys(tmp_path: pathlib.Path) -> None:
    d = in_folder(tmp_path, "json")
    value = {1: "a", (1, 2): "b", "s": {2.5: None, None: [1]}}
    d["k"] = value
    got = d["k"]
    assert got == value
    assert 1 in got and (1, 2) in got and "1" not in got


def test_json_reads_str_key_files_of_a_keys_false_writer() -> None:
    """Files written by the published persidict (jsonpickle keys=False, str keys) decode unchanged."""
    import warnings

    import jsonpickle
    import jsonpickle.pickler

    value = {"a": (1, 2), "b": {"c": {1, 2}, "d": Point(3, 4)}, "1": [None, 2.5], "": "e"}
    old = jsonpickle.encode(value, indent=4, context=jsonpickle.pickler.Pickler(keys=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning on either path
        got = JsonCodec().decode(old.encode("utf-8"))
        again = JsonCodec().decode(JsonCodec().encode(value))
    assert got == value == again
    assert list(got) == list(value)


@attrs.define
class Point:
    """A user class stored through jsonpickle."""

    x: int
    y: int


def test_json_keeps_objects() -> None:
    c = JsonCodec()
    assert c.decode(c.encode(Point(1, 2))) == Point(1, 2)
    assert "Point" in c.encode(Point(1, 2)).decode()


@pytest.mark.skipif(not HAS_NUMPY, reason="numpy is not installed")
def test_json_with_numpy_arrays(tmp_path: pathlib.Path) -> None:
    import numpy as np

    c = JsonCodec()
    for arr in (np.arange(6).reshape(2, 3), np.array([1.5, np.nan]), np.array(["a", "b"])):
        got = c.decode(c.encode(arr))
        assert isinstance(got, np.ndarray) and got.dtype == arr.dtype
        assert np.array_equal(got, arr, equal_nan=arr.dtype.kind == "f")
    d = in_folder(tmp_path, "json")
    d["m"] = {"w": np.eye(2)}
    assert np.array_equal(d["m"]["w"], np.eye(2))


# ---------------------------------------------------------------- text


def test_text_holds_str_only() -> None:
    c = TextCodec()
    assert c.decode(c.encode("héllo\n")) == "héllo\n"
    assert c.encode("é") == "é".encode()
    for bad in (1, b"bytes", None, ["a"]):
        with pytest.raises(TypeError, match="str"):
            c.encode(bad)


# ---------------------------------------------------------------- lz4 and composition


@pytest.mark.parametrize("value", VALUES)
def test_lz4_round_trip(value: Any) -> None:
    c = Lz4Codec()
    assert c.extension == "pkl.lz4"
    data = c.encode(value)
    assert data[:4] == b"\x04\x22\x4d\x18"
    assert c.decode(data) == value


def test_lz4_compresses_and_wraps_any_codec() -> None:
    big = "abc" * 10_000
    assert len(Lz4Codec().encode(big)) < len(PickleCodec().encode(big)) // 10
    lz_json = Lz4Codec(inner=JsonCodec())
    assert lz_json.extension == "json.lz4"
    assert lz_json.decode(lz_json.encode({"a": 1})) == {"a": 1}
    # joblib-style LZ4 pickles are read by the plain pickle codec, too.
    assert PickleCodec().decode(Lz4Codec().encode([1, 2])) == [1, 2]


def test_lz4_in_a_dict(tmp_path: pathlib.Path) -> None:
    d = in_folder(tmp_path, Lz4Codec())
    d["k"] = "x" * 5000
    assert d["k"] == "x" * 5000
    raw = stored_bytes(d)
    assert raw[:4] == b"\x04\x22\x4d\x18" and len(raw) < 200
    assert d.serialization_format == Lz4Codec()
    again: FileDirDict[str] = FileDirDict(**d.get_params())
    assert again["k"] == "x" * 5000


# ---------------------------------------------------------------- user codecs


@attrs.frozen
class Rot13:
    """A user codec: a toy cipher over UTF-8 text (str values only)."""

    extension: str = "rot13"

    def encode(self, value: Any) -> bytes:
        import codecs

        if not isinstance(value, str):
            raise TypeError(f"Rot13 stores str, not {type(value).__name__}")
        return codecs.encode(value, "rot13").encode()

    def decode(self, data: bytes) -> Any:
        import codecs

        return codecs.decode(data.decode(), "rot13")


def test_user_codec_is_a_codec() -> None:
    assert isinstance(Rot13(), Codec)
    assert isinstance(Lz4Codec(inner=Rot13()), Codec)


def test_user_codec_in_a_dict(tmp_path: pathlib.Path) -> None:
    d = in_folder(tmp_path / "rot13", Rot13())
    d["k"] = "hello"
    assert stored_bytes(d) == b"uryyb"
    assert d["k"] == "hello" and d.serialization_format == Rot13()
    with pytest.raises(TypeError, match="'n'"):
        d["n"] = 5
    assert "n" not in d
    composed = in_folder(tmp_path / "composed", Lz4Codec(inner=Rot13()))
    composed["k"] = "hello"
    assert composed["k"] == "hello"


def test_codec_failures_name_the_key() -> None:
    class Failing:
        extension = "bin"

        def encode(self, value: Any) -> bytes:
            raise RuntimeError("cannot encode")

        def decode(self, data: bytes) -> Any:
            raise RuntimeError("cannot decode")

    coder = ValueCoder(Failing())
    with pytest.raises(ValueError, match=r"'k'.*cannot encode"):
        coder.encode("k", 1)
    with pytest.raises(CorruptValueError, match=r"'k'.*cannot decode") as e:
        coder.decode("k", b"xx", lambda: "somewhere")
    assert e.value.key == "k" and "somewhere" in str(e.value)


def test_value_coder_checks_the_base_class() -> None:
    coder = ValueCoder(PickleCodec(), base_class_for_values=int)
    assert coder.decode("k", coder.encode("k", 3), lambda: "here") == 3
    with pytest.raises(TypeError, match="'k'"):
        coder.encode("k", "3")
    with pytest.raises(TypeError, match="here"):
        coder.decode("k", PickleCodec().encode("3"), lambda: "here")
