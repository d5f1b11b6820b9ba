"""On-disk compatibility with the published persidict layout, both ways."""

from __future__ import annotations

import base64
import hashlib
import io
import pathlib
import pickle
from typing import Any

import joblib
import jsonpickle
import numpy as np
import pytest

from persidict.file_dir_dict import FileDirDict


def suffixed(component: str, n: int = 4) -> str:
    """``component + "_" + lowercase(base32(md5(utf8(component))))[:n]``, computed here."""
    digest = base64.b32encode(hashlib.md5(component.encode("utf-8")).digest()).decode("ascii").lower()
    return f"{component}_{digest[:n]}" if n else component


def joblib_lz4(value: Any) -> bytes:
    buf = io.BytesIO()
    joblib.dump(value, buf, compress="lz4")
    data = buf.getvalue()
    assert data[:4] == b"\x04\x22\x4d\x18"  # an LZ4 frame, as the published persidict writes
    return data


def test_known_digests() -> None:
    # Pinned values: if these change, stores written by the published persidict become unreadable.
    assert suffixed("Eliza") == "Eliza_mod7"
    assert suffixed("year") == "year_qtg4"
    assert suffixed("authors", 8).startswith("authors_lwke")


def test_hand_made_pickle_store_reads_back(tmp_path: pathlib.Path) -> None:
    (tmp_path / suffixed("users") / suffixed("alice")).mkdir(parents=True)
    (tmp_path / f"{suffixed('config')}.pkl").write_bytes(joblib_lz4({"debug": True, "level": 3}))
    (tmp_path / suffixed("users") / suffixed("alice") / f"{suffixed('profile')}.pkl").write_bytes(
        joblib_lz4({"age": 30})
    )
    (tmp_path / suffixed("users") / f"{suffixed('count')}.pkl").write_bytes(pickle.dumps(1, protocol=4))
    arr = np.arange(12.0).reshape(3, 4)
    buf = io.BytesIO()
    joblib.dump({"w": arr}, buf)  # uncompressed joblib, array bytes inlined
    (tmp_path / f"{suffixed('weights')}.pkl").write_bytes(buf.getvalue())

    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    assert sorted(d.keys()) == [("config",), ("users", "alice", "profile"), ("users", "count"), ("weights",)]
    assert d["config"] == {"debug": True, "level": 3}
    assert d["users", "alice", "profile"] == {"age": 30}
    assert d["users", "count"] == 1
    np.testing.assert_array_equal(d["weights"]["w"], arr)
    assert d.get_subdict("users")["alice", "profile"] == {"age": 30}
    # Updating in place keeps the same file.
    d["config"] = {"debug": False}
    assert joblib.load(str(tmp_path / f"{suffixed('config')}.pkl")) == {"debug": False}


def test_what_we_write_loads_with_joblib(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    value = {"list": [1, 2.5, "x"], "arr": np.arange(5), "nested": ("t", None)}
    d["a", "b"] = value
    path = tmp_path / suffixed("a") / f"{suffixed('b')}.pkl"
    loaded = joblib.load(str(path))
    assert loaded["list"] == value["list"] and loaded["nested"] == value["nested"]
    np.testing.assert_array_equal(loaded["arr"], value["arr"])
    with open(path, "rb") as f:
        assert pickle.load(f)["list"] == [1, 2.5, "x"]


def test_hand_made_jsonpickle_store_reads_back_and_ours_decodes(tmp_path: pathlib.Path) -> None:
    (tmp_path / suffixed("cfg")).mkdir()
    text = jsonpickle.encode({"host": "localhost", "ports": [1, 2], "t": (1, 2)}, indent=4)
    (tmp_path / suffixed("cfg") / f"{suffixed('db')}.json").write_text(text)
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    assert d["cfg", "db"] == {"host": "localhost", "ports": [1, 2], "t": (1, 2)}
    d["arr"] = np.arange(3)
    raw = (tmp_path / f"{suffixed('arr')}.json").read_text()
    assert raw.startswith("{\n    ")  # indent 4
    np.testing.assert_array_equal(jsonpickle.decode(raw), np.arange(3))
    d["t"] = {"a": (1, "x")}
    assert jsonpickle.decode((tmp_path / f"{suffixed('t')}.json").read_text()) == {"a": (1, "x")}


def test_text_format_is_plain_utf8(tmp_path: pathlib.Path) -> None:
    (tmp_path / f"{suffixed('hello')}.txt").write_text("héllo wörld", encoding="utf-8")
    d: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format="txt")
    assert d["hello"] == "héllo wörld"
    d["bye"] = "adiós"
    assert (tmp_path / f"{suffixed('bye')}.txt").read_bytes() == "adiós".encode()
    with pytest.raises(TypeError):
        d["n"] = 5  # type: ignore[assignment]


@pytest.mark.parametrize("digest_len", [0, 3, 8])
def test_digest_len_and_idempotent_suffix(tmp_path: pathlib.Path, digest_len: int) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, digest_len=digest_len, durable=False)
    d["p", "q"] = 1
    assert (tmp_path / suffixed("p", digest_len) / f"{suffixed('q', digest_len)}.pkl").is_file()
    assert list(d.keys()) == [("p", "q")]
    if digest_len:
        # A component that already ends in its own suffix is stored as is (and read back without it).
        d[suffixed("r", digest_len)] = 2
        assert (tmp_path / f"{suffixed('r', digest_len)}.pkl").is_file()
        assert ("r",) in d


def test_files_of_other_formats_are_not_items(tmp_path: pathlib.Path) -> None:
    pkl: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, durable=False)
    js: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json", durable=False)
    pkl["k"] = 1
    js["k"] = "one"
    assert pkl["k"] == 1 and js["k"] == "one"
    assert len(pkl) == 1 and len(js) == 1
    js.clear()
    assert pkl["k"] == 1
