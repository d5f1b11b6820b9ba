"""Store specs and ``persidict.open`` (issue 17 item 1): round trips, URLs, files, the environment, errors."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import persidict
from persidict.opening import parse_store
from persidict.specs import (
    SPEC_CLASSES,
    SPEC_ENV,
    BasicS3Spec,
    FileDirSpec,
    LmdbSpec,
    LocalSpec,
    S3Spec,
    StoreSpec,
    spec_from_dict,
    spec_of,
    spec_to_dict,
)

# ---------------------------------------------------------------- strategies

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)
_opt_text = st.none() | _text
_format = st.sampled_from(["pkl", "json", "txt", "md", "csv_1"])
_part = st.text("abcxyz019_-", min_size=1, max_size=8)
_prefix = st.lists(_part, max_size=3).map(tuple)
_ttl = st.none() | st.floats(min_value=0.001, max_value=1e9, allow_nan=False, allow_infinity=False)
_pos = st.integers(min_value=1, max_value=2**40)


def _specs() -> st.SearchStrategy[StoreSpec]:
    common = {"serialization_format": _format, "append_only": st.booleans()}
    s3 = {
        "bucket_name": _text,
        "root_prefix": st.text(max_size=20),
        "region": _opt_text,
        "endpoint_url": _opt_text,
        "profile_name": _opt_text,
        "checksum": st.sampled_from([None, "when_supported", "when_required"]),
        **common,
    }
    return st.one_of(
        st.builds(
            FileDirSpec,
            base_dir=_text,
            digest_len=st.integers(0, 64),
            durable=st.booleans(),
            use_locks=st.booleans(),
            **common,
        ),
        st.builds(BasicS3Spec, **s3),
        st.builds(S3Spec, base_dir=_text, digest_len=st.integers(0, 64), **s3),
        st.builds(
            LmdbSpec,
            base_dir=_text,
            root_prefix=_prefix,
            durable=st.booleans(),
            readonly=st.booleans(),
            map_size=_pos,
            max_map_size=st.none() | _pos,
            cache_size=st.integers(0, 10**6),
            ttl=_ttl,
            purge_at_open=st.booleans(),
            **common,
        ),
        st.builds(
            LocalSpec,
            name=st.text(max_size=10),
            root_prefix=_prefix,
            prune_interval=st.none() | _pos,
            **common,
        ),
    )


@given(_specs())
def test_every_spec_round_trips_through_json(spec: StoreSpec) -> None:
    text = json.dumps(spec_to_dict(spec))
    back = spec_from_dict(json.loads(text))
    assert back == spec and type(back) is type(spec)
    assert json.loads(text)["store"] == spec.store


@given(_specs())
def test_every_spec_round_trips_through_open_text(spec: StoreSpec) -> None:
    assert parse_store(json.dumps(spec_to_dict(spec))) == spec


def test_strategies_cover_every_store() -> None:
    assert set(SPEC_CLASSES) == {"FileDirDict", "BasicS3Dict", "S3Dict", "LmdbDict", "LocalDict"}


@pytest.mark.parametrize("cls", list(SPEC_CLASSES.values()))
def test_spec_fields_are_constructor_parameters_of_the_store(cls: type[StoreSpec]) -> None:
    import inspect

    store = getattr(persidict, cls.store)
    accepted = set(inspect.signature(store.__init__).parameters)
    fields = {a.name for a in attrs.fields(cls)} - {"name"}  # LocalSpec.name picks the memory store
    assert fields <= accepted


# ---------------------------------------------------------------- opening


@settings(max_examples=25)
@given(
    st.builds(
        LocalSpec,
        name=st.text("abc", min_size=1, max_size=3),
        root_prefix=_prefix,
        prune_interval=st.none() | _pos,
        serialization_format=_format,
        append_only=st.booleans(),
    )
)
def test_spec_of_an_opened_memory_store_is_its_spec(spec: LocalSpec) -> None:
    assert spec_of(spec.open()) == spec


@pytest.mark.parametrize(
    "url",
    [
        "file://{tmp}/f?format=json&digest_len=0&durable=false&use_locks=false",
        "file://{tmp}/g?append_only=true",
        "lmdb://{tmp}/l.lmdb?format=txt&prefix=a/b&ttl=60&cache_size=10&map_size=1048576",
        "lmdb://{tmp}/m.lmdb?max_map_size=4194304&map_size=1048576&purge_at_open=false",
    ],
)
def test_spec_of_an_opened_store_is_its_spec(url: str, tmp_path: Path) -> None:
    spec = parse_store(url.format(tmp=tmp_path))
    assert spec_of(persidict.open(spec)) == spec


def test_stores_that_cannot_be_written_down() -> None:
    with pytest.raises(ValueError, match="EmptyDict has no spec"):
        spec_of(persidict.EmptyDict())
    with pytest.raises(ValueError, match="not opened by name"):
        spec_of(persidict.LocalDict())
    with pytest.raises(ValueError, match="base_class_for_values"):
        spec_of(persidict.LocalDict(base_class_for_values=int))


def test_spec_of_an_opened_store_matches_its_params(tmp_path: Path) -> None:
    spec = parse_store(f"file://{tmp_path}/f?format=json&digest_len=0&durable=false")
    d = persidict.open(spec)
    params = d.get_params()
    for a in attrs.fields(FileDirSpec):
        assert params[a.name] == getattr(spec, a.name)


def test_open_a_folder_path_and_a_pathlike(tmp_path: Path) -> None:
    d = persidict.open(str(tmp_path / "a"))
    d["k"] = 1
    assert type(d).__name__ == "FileDirDict"
    assert persidict.open(tmp_path / "a")["k"] == 1
    assert persidict.open(f"file://{tmp_path}/a")["k"] == 1


def test_open_lmdb_with_parameters(tmp_path: Path) -> None:
    d = persidict.open(f"lmdb://{tmp_path}/db.lmdb?format=json&prefix=p/q&ttl=3600")
    d["k"] = [1, 2]
    params = d.get_params()
    assert type(d).__name__ == "LmdbDict"
    assert (params["serialization_format"], params["ttl"]) == ("json", 3600.0)
    assert persidict.open(f"lmdb://{tmp_path}/db.lmdb?format=json&prefix=p/q")["k"] == [1, 2]


def test_mem_urls_share_a_named_store() -> None:
    a = persidict.open("mem://test-specs-shared?format=json")
    a["k"] = "v"
    assert persidict.open("mem://test-specs-shared?format=json")["k"] == "v"
    assert "k" not in persidict.open("mem://")


def test_s3_url_parameters() -> None:
    spec = parse_store("s3://bkt/a/b?region=eu-west-1&endpoint=http://127.0.0.1:9&profile=p&format=json")
    assert spec == BasicS3Spec(
        bucket_name="bkt",
        root_prefix="a/b",
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        profile_name="p",
        serialization_format="json",
    )
    cached = parse_store("s3://bkt?cache_dir=/tmp/c&digest_len=0")
    assert cached == S3Spec(bucket_name="bkt", base_dir="/tmp/c", digest_len=0)


def test_spec_files_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"store": "FileDirDict", "base_dir": str(tmp_path / "j")}))
    (tmp_path / "s.toml").write_text(f'store = "LmdbDict"\nbase_dir = "{tmp_path / "t"}"\nttl = 60\n')
    assert parse_store(f"@{tmp_path / 's.json'}") == FileDirSpec(base_dir=str(tmp_path / "j"))
    assert parse_store(f"@{tmp_path / 's.toml'}") == LmdbSpec(base_dir=str(tmp_path / "t"), ttl=60.0)


def test_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SPEC_ENV == "PERSIDICT_STORE"
    monkeypatch.setenv(SPEC_ENV, f"file://{tmp_path}/env?format=json")
    d = persidict.open()
    d["x"] = 1
    assert (tmp_path / "env").is_dir() and d.get_params()["serialization_format"] == "json"
    monkeypatch.delenv(SPEC_ENV)
    with pytest.raises(ValueError, match="PERSIDICT_STORE is not set"):
        persidict.open()


# ---------------------------------------------------------------- errors: one line naming the culprit

BAD = [
    ("ftp://host/x", "unknown URL scheme 'ftp'"),
    ("s3://", "no bucket name"),
    ("s3://b?aws_secret_access_key=x", "credentials"),
    ("s3://b?colour=red", "unknown parameter 'colour'"),
    ("file:///tmp/x?digest_len=abc", "digest_len='abc'.*must be an integer"),
    ("file:///tmp/x?digest_len=-1", "digest_len must be an integer >= 0"),
    ("file:///tmp/x?format=json&format=pkl", "'format' given twice"),
    ("lmdb://", "no path"),
    ("lmdb:///tmp/x?ttl=0", "ttl must be a positive number"),
    ("lmdb:///tmp/x?durable=maybe", "durable='maybe'.*true or false"),
    ("mem://x?prune_interval=0", "prune_interval must be an integer > 0"),
    ("file:///tmp/x#frag", "#fragment"),
    ("", "empty store URL"),
    ("@/nonexistent/spec.toml", "cannot read store spec file"),
    ('{"store": "Nope"}', "store must be one of"),
    ('{"store": "FileDirDict"}', "missing parameter 'base_dir'"),
    ('{"store": "FileDirDict", "base_dir": "x", "colour": 1}', "unknown parameter 'colour' for FileDirDict"),
    ('{"store": "LmdbDict", "base_dir": "x", "map_size": "5"}', "map_size must be an integer, not '5'"),
    ('{"store": "LmdbDict", "base_dir": "x", "readonly": 1}', "readonly must be true or false"),
    ('{"store": "LmdbDict", "base_dir": "x", "root_prefix": [1]}', "root_prefix must be a list"),
    ('{"store": ', "bad JSON"),
]


@pytest.mark.parametrize(("url", "message"), BAD)
def test_bad_urls_and_parameters_give_one_line_naming_them(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        persidict.open(url)
    assert "\n" not in str(info.value)


def test_a_bad_format_name_from_the_store_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="serialization_format") as info:
        persidict.open(f"file://{tmp_path}/x?format=json-lines")
    assert "\n" not in str(info.value)


def test_spec_to_dict_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="store spec"):
        spec_to_dict({"store": "FileDirDict"})  # type: ignore[arg-type]


def test_lmdb_default_map_size_matches_the_store() -> None:
    from persidict.lmdb_dict import DEFAULT_MAP_SIZE

    assert LmdbSpec(base_dir="x").map_size == DEFAULT_MAP_SIZE


def test_open_is_typed_and_exported() -> None:
    assert persidict.open is __import__("persidict.opening", fromlist=["open"]).open
    assert "open" in dir(persidict) and callable(persidict.open)
    # a star import must not shadow the builtin open (nor a module named copy)
    namespace: dict[str, object] = {}
    exec("import copy\nfrom persidict import *", namespace)
    assert "open" not in namespace and namespace["copy"].__name__ == "copy"  # type: ignore[attr-defined]
