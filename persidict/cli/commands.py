"""The commands of the ``persidict`` command line (imports of the library happen when a command runs)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import CliError, _first_line
from .params import KEY, STORE

SPEC_ENV = "PERSIDICT_STORE"
"""The default store (persidict.specs.SPEC_ENV; not imported from there, to start fast)."""

STORE_HELP = f"""
STORE is a folder path, file://PATH, s3://BUCKET/PREFIX, lmdb://PATH, mem://NAME,
@SPEC.json / @SPEC.toml, or JSON spec text; query parameters such as ?format=json,
?digest_len=0, ?region=..., ?endpoint=..., ?profile=... set the store's parameters
(S3 credentials only from the environment). ${SPEC_ENV} is the default STORE of
ls, stat and purge.
"""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


FC = TypeVar("FC", bound=Callable[..., Any])


def _store_arg(name: str = "store", env: bool = False) -> Callable[[FC], FC]:
    return click.argument(name, type=STORE, envvar=SPEC_ENV if env else None, required=True)


def _json_opt() -> Callable[[FC], FC]:
    return click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")


@click.group(
    context_settings=CONTEXT,
    epilog=f"""\b
Examples:
  persidict ls ./cache --newest 5
  persidict get s3://bucket/app?region=eu-west-1 users/alice
  persidict cp ./cache lmdb:///srv/cache.lmdb --skip-existing
\b
Exit codes: 0 done, 1 a failure (e.g. a missing key), 2 a usage error.
Shell completion (bash): eval "$(_PERSIDICT_COMPLETE=bash_source persidict)"
(zsh: zsh_source, fish: fish_source). NO_COLOR turns colour off.
{STORE_HELP}""",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    help="Show the version and exit.",
    callback=lambda ctx, _p, v: _show_version(ctx) if v else None,
)
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def cli(debug: bool) -> None:
    """Inspect, edit and copy persidict stores: folders, S3, LMDB."""


def _show_version(ctx: click.Context) -> None:
    """Print the version (persidict.__version__: no package metadata read) and exit."""
    from .. import __version__

    click.echo(f"persidict {__version__}")
    ctx.exit()


# ---------------------------------------------------------------- ls


@cli.command(
    "ls",
    epilog="""\b
Examples:
  persidict ls ./cache
  persidict ls ./cache --prefix users -l
  persidict ls lmdb:///srv/db.lmdb --newest 10 --json
"""
    + STORE_HELP,
)
@_store_arg(env=True)
@click.option("--prefix", type=KEY, help="Only the keys under this prefix (parts joined by /).")
@click.option(
    "--newest", type=click.IntRange(min=1), metavar="N", help="Only the N newest items, newest first."
)
@click.option("-l", "--long", "long_", is_flag=True, help="Show each item's size, time and ETag.")
@_json_opt()
def ls_cmd(
    store: Any, prefix: tuple[str, ...] | None, newest: int | None, long_: bool, as_json: bool
) -> None:
    """List the keys of STORE (in the store's order; --newest sorts by time)."""
    import heapq

    from .support import emit_json, entries, iso, key_text, open_store, stat_entry

    d = open_store(store, must_exist=True)
    view = d.get_subdict(prefix) if prefix else d
    lead = tuple(prefix or ())
    timed = newest is not None
    if timed:
        assert newest is not None
        pairs = heapq.nlargest(newest, view.keys_and_timestamps(), key=lambda p: (p[1], p[0]))
        items: Any = (stat_entry(view, tuple(k), t) if long_ else _timed(tuple(k), t) for k, t in pairs)
    else:
        items = entries(view, detailed=long_)
    for e in items:
        key = key_text(lead + e.key)
        if as_json:
            emit_json({"key": key, **_meta(e, long_, timed)})
        elif long_:
            click.echo(f"{_size(e.size)}  {iso(e.mtime)}  {e.etag or '-'}  {key}")
        elif timed:
            click.echo(f"{iso(e.mtime)}  {key}")
        else:
            click.echo(key)


def _timed(key: tuple[str, ...], t: float) -> Any:
    from .support import Entry

    return Entry(key, t)


def _meta(e: Any, long_: bool, timed: bool) -> dict[str, Any]:
    """The fields of an ls --json line besides the key."""
    if not (long_ or timed):
        return {}
    data: dict[str, Any] = e.as_json()
    del data["key"]
    if not long_:
        del data["size"], data["etag"]
    return data


def _size(n: int | None) -> str:
    return f"{n:>10}" if n is not None else f"{'-':>10}"


# ---------------------------------------------------------------- get


@cli.command(
    "get",
    epilog="""\b
Examples:
  persidict get ./cache users/alice
  persidict get ./cache users/alice --json
  persidict get ./cache report --raw > report.pkl
"""
    + STORE_HELP,
)
@_store_arg()
@click.argument("key", type=KEY)
@click.option("--raw", is_flag=True, help="Write the stored bytes as they are (e.g. the pickle).")
@_json_opt()
def get_cmd(store: Any, key: tuple[str, ...], raw: bool, as_json: bool) -> None:
    """Print the value of KEY: text as is, other values as their repr.

    KEY is written with / between its parts (users/alice is ("users", "alice")).
    A missing key exits with 1.
    """
    from .support import emit_json, key_text, open_store, raw_bytes, value_json

    if raw and as_json:
        raise click.UsageError("--raw and --json cannot be used together")
    d = open_store(store, must_exist=True)
    try:
        if raw:
            data = raw_bytes(d, key)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        r = d.get_with_etag(key)
    except KeyError:
        raise CliError(f"no such key: {key_text(key)}") from None
    from ..flags import ITEM_NOT_AVAILABLE

    if r.new_value is ITEM_NOT_AVAILABLE:
        raise CliError(f"no such key: {key_text(key)}")
    value = r.new_value
    if as_json:
        emit_json(value_json(key, value, str(r.actual_etag)))
    elif isinstance(value, str):
        click.echo(value, nl=not value.endswith("\n"))
    else:
        click.echo(repr(value))


# ---------------------------------------------------------------- put


@cli.command(
    "put",
    epilog="""\b
Examples:
  persidict put ./cache greeting 'hello world'
  persidict put ./cache report --file report.txt
  echo 42 | persidict put ./cache answer
  persidict put ./cache lock/job-7 me --if-absent
  persidict put ./cache config new --if-etag "$(persidict get ./cache config --json | jq -r .etag)"
"""
    + STORE_HELP,
)
@_store_arg()
@click.argument("key", type=KEY)
@click.argument("value", required=False)
@click.option(
    "--file", "path", type=click.Path(dir_okay=False, allow_dash=True), help="Read the value from a file."
)
@click.option("--if-absent", is_flag=True, help="Write only if KEY is absent (exit 1 if it exists).")
@click.option("--if-etag", metavar="ETAG", help="Write only if KEY's ETag is ETAG (exit 1 otherwise).")
@_json_opt()
def put_cmd(
    store: Any,
    key: tuple[str, ...],
    value: str | None,
    path: str | None,
    if_absent: bool,
    if_etag: str | None,
    as_json: bool,
) -> None:
    """Store a value under KEY and print its new ETag.

    The value is VALUE (as text), the contents of --file, or standard input
    when neither is given (or VALUE is -): text when it is UTF-8, else bytes.
    """
    from .support import emit_json, key_text, open_store

    if value is not None and path is not None:
        raise click.UsageError("give VALUE or --file, not both")
    if if_absent and if_etag is not None:
        raise click.UsageError("--if-absent and --if-etag cannot be used together")
    data = _input_value(value, path)
    d = open_store(store, must_exist=False)
    etag = _write(d, key, data, if_absent, if_etag)
    if as_json:
        emit_json({"key": key_text(key), "etag": etag, "written": True})
    else:
        click.echo(etag)


def _input_value(value: str | None, path: str | None) -> Any:
    """VALUE, or the bytes of --file / stdin as text when they are UTF-8 (else as bytes)."""
    if value is not None and value != "-":
        return value
    if path is not None and path != "-":
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CliError(f"cannot read {path!r}: {e.strerror or e}") from None
    else:
        data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _write(d: Any, key: tuple[str, ...], value: Any, if_absent: bool, if_etag: str | None) -> str:
    """Write ``value`` (under the condition asked for); return the new ETag."""
    from ..flags import ANY_ETAG, ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE, NEVER_RETRIEVE
    from .support import key_text

    if if_absent:
        expected: Any = ITEM_NOT_AVAILABLE
    elif if_etag is not None:
        expected = if_etag
    else:
        expected = ITEM_NOT_AVAILABLE
    condition: Any = ETAG_IS_THE_SAME if (if_absent or if_etag is not None) else ANY_ETAG
    r = d.set_item_if(key, value, expected, condition, retrieve_value=NEVER_RETRIEVE)
    if not r.condition_was_satisfied:
        if r.actual_etag is ITEM_NOT_AVAILABLE:
            raise CliError(f"not written: {key_text(key)} is absent (--if-etag {if_etag})")
        if if_absent:
            raise CliError(f"not written: {key_text(key)} exists (ETag {r.actual_etag})")
        raise CliError(f"not written: the ETag of {key_text(key)} is {r.actual_etag}, not {if_etag}")
    return str(r.resulting_etag)


# ---------------------------------------------------------------- rm


@cli.command(
    "rm",
    epilog="""\b
Examples:
  persidict rm ./cache users/alice
  persidict rm ./cache users/alice users/bob --yes
  persidict rm s3://bucket/app --prefix tmp --yes
"""
    + STORE_HELP,
)
@_store_arg()
@click.argument("keys", type=KEY, nargs=-1)
@click.option("--prefix", type=KEY, help="Delete every item under this prefix.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@_json_opt()
def rm_cmd(
    store: Any, keys: tuple[tuple[str, ...], ...], prefix: tuple[str, ...] | None, yes: bool, as_json: bool
) -> None:
    """Delete KEYS, or every item under --prefix, after a confirmation (unless --yes).

    A key that is not there is reported and makes the exit code 1 (the others are deleted).
    """
    from .support import emit_json, key_text, note, open_store, progress_wanted

    if not keys and prefix is None:
        raise click.UsageError("give KEYS or --prefix")
    d = open_store(store, must_exist=True)
    todo = list(keys)
    if prefix is not None:
        todo += [prefix + tuple(k) for k in d.get_subdict(prefix)]
    what = f"{len(todo)} item(s)" if prefix is None else f"{len(todo)} item(s) (under {key_text(prefix)})"
    if todo and not yes and not click.confirm(f"Delete {what}?", err=True):
        raise CliError("nothing deleted", 1)
    present = [k for k in keys if k in d]
    missing = [k for k in keys if k not in present]
    progress = progress_wanted() and len(todo) > 1
    n = d.discard_many(todo, progress=True if progress else None) if todo else 0
    if as_json:
        emit_json({"deleted": n, "missing": [key_text(k) for k in missing]})
    else:
        note(f"deleted {n} item(s)")
    for k in missing:
        note(f"no such key: {key_text(k)}")
    if missing:
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------- cp


@cli.command(
    "cp",
    epilog="""\b
Examples:
  persidict cp ./cache s3://bucket/backup
  persidict cp s3://bucket/backup lmdb:///srv/cache.lmdb --skip-existing
"""
    + STORE_HELP,
)
@_store_arg("src", env=False)
@_store_arg("dst", env=False)
@click.option("--skip-existing", is_flag=True, help="Leave keys already in DST alone (resumes a copy).")
@_json_opt()
def cp_cmd(src: Any, dst: Any, skip_existing: bool, as_json: bool) -> None:
    """Copy every item of SRC into DST (streamed, through persidict.copy)."""
    from ..copying import copy
    from .support import emit_json, key_text, note, open_store, progress_wanted

    source = open_store(src, must_exist=True)
    target = open_store(dst, must_exist=False)
    summary = copy(
        source,
        target,
        skip_existing=skip_existing,
        progress=True if progress_wanted() else None,
        errors="skip",
    )
    counts = {
        "copied": summary.copied,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "bytes": summary.bytes,
    }
    if as_json:
        emit_json(counts)
    else:
        note(", ".join(f"{v} {k}" for k, v in counts.items()))
    for k, e in summary.failures.items():
        note(f"failed: {key_text(tuple(k))}: {type(e).__name__}: {_first_line(str(e))}")
    if summary.failed:
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------- stat


@cli.command(
    "stat",
    epilog="""\b
Examples:
  persidict stat ./cache
  persidict stat s3://bucket/app --json
"""
    + STORE_HELP,
)
@_store_arg(env=True)
@_json_opt()
def stat_cmd(store: Any, as_json: bool) -> None:
    """Show the item count, total bytes, oldest and newest item and capabilities of STORE."""
    import attrs

    from ..specs import spec_to_dict
    from .support import emit_json, entries, iso, key_text, open_store

    d = open_store(store, must_exist=True)
    count = total = 0
    oldest = newest = None
    for e in entries(d, detailed=True):
        count += 1
        total += e.size or 0
        # Ties (stores with 1-second times, such as S3) go by key, as in `ls --newest`.
        if oldest is None or (e.mtime, e.key) < (oldest.mtime, oldest.key):
            oldest = e
        if newest is None or (e.mtime, e.key) > (newest.mtime, newest.key):
            newest = e
    caps = attrs.asdict(d.capabilities) if attrs.has(type(d.capabilities)) else {}
    spec = spec_to_dict(store)
    if as_json:
        emit_json(
            {
                "store": spec,
                "items": count,
                "bytes": total,
                "oldest": None
                if oldest is None
                else {"key": key_text(oldest.key), "time": iso(oldest.mtime)},
                "newest": None
                if newest is None
                else {"key": key_text(newest.key), "time": iso(newest.mtime)},
                "capabilities": caps,
            }
        )
        return
    rows = [
        ("store", f"{spec['store']} {_where(spec, d)}"),
        ("items", str(count)),
        ("bytes", str(total)),
        ("oldest", "-" if oldest is None else f"{iso(oldest.mtime)}  {key_text(oldest.key)}"),
        ("newest", "-" if newest is None else f"{iso(newest.mtime)}  {key_text(newest.key)}"),
        ("capabilities", " ".join(f"{k}={_plain(v)}" for k, v in caps.items())),
    ]
    for name, text in rows:
        click.echo(f"{name + ':':<14}{text}")


def _where(spec: dict[str, Any], d: Any) -> str:
    """Where a store keeps its items: its bucket and prefix, its folder (absolute) or its memory name."""
    if "bucket_name" in spec:
        return f"s3://{spec['bucket_name']}/{spec['root_prefix']}"
    if "base_dir" in spec:
        return str(getattr(d, "base_dir", spec["base_dir"]))
    return f"mem://{spec.get('name', '')}"


def _plain(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


# ---------------------------------------------------------------- purge


@cli.command(
    "purge",
    epilog="""\b
Examples:
  persidict purge 'lmdb:///srv/cache.lmdb?ttl=86400'
  persidict purge ./cache --older-than 30d
"""
    + STORE_HELP,
)
@_store_arg(env=True)
@click.option(
    "--older-than", metavar="AGE", help="Delete items older than AGE (90s, 15m, 12h, 7d, 2w), in any store."
)
@_json_opt()
def purge_cmd(store: Any, older_than: str | None, as_json: bool) -> None:
    """Delete the expired items of STORE (an LMDB store with a ttl), or those older than --older-than."""
    import time

    from .support import emit_json, note, open_store, parse_duration, progress_wanted

    cutoff = None
    if older_than is not None:
        try:
            cutoff = time.time() - parse_duration(older_than)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--older-than'") from None
    d = open_store(store, must_exist=True)
    progress = True if progress_wanted() else None
    if cutoff is not None:
        old = [k for k, t in d.keys_and_timestamps() if t < cutoff]
        n = d.discard_many(old, progress=progress) if old else 0
    elif callable(getattr(d, "purge", None)) and getattr(d, "_settings", {}).get("ttl") is not None:
        n = d.purge(progress=progress)
    else:
        raise CliError(f"{type(d).__name__} has no expiry here (no ttl): use --older-than AGE", 2)
    if as_json:
        emit_json({"purged": n})
    else:
        note(f"purged {n} item(s)")
