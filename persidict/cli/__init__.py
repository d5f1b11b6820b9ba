"""The ``persidict`` command line: inspect, edit and copy any store from the shell.

Installed with the ``cli`` extra (``pip install "persidict[cli]"``) as the
``persidict`` console script, also run as ``python -m persidict``. Commands:
ls, get, put, rm, cp, stat and purge (``persidict --help``). A store is named
by a URL or a spec (see ``persidict.opening``), or by ``$PERSIDICT_STORE``.

Exit codes: 0 done, 1 a failure (a missing key, a lost race, a store error),
2 a usage error (an unknown flag, a bad URL or parameter). Errors go to
stderr as one line, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "persidict"


class CliError(Exception):
    """A failure to report as one line on stderr, with its exit code (1 by default)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line with ``argv`` (default: sys.argv[1:]) and exit with its code."""
    args = list(sys.argv[1:] if argv is None else argv)
    sys.exit(run(args))


def run(args: list[str]) -> int:
    """Run the command line; return its exit code (errors are printed on stderr)."""
    import click

    from .commands import cli

    if not args:
        args = ["--help"]  # the same with every click version (8.2 made it a usage error)
    debug = "--debug" in args[: _first_command(args)]
    try:
        code = cli.main(args=args, prog_name=PROG, standalone_mode=False)
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else PROG
        return _fail(debug, e, f"{where}: {_first_line(e.format_message())} (see '{where} --help')", 2)
    except click.ClickException as e:
        return _fail(debug, e, f"{PROG}: {_first_line(e.format_message())}", e.exit_code)
    except click.Abort as e:
        return _fail(debug, e, f"{PROG}: aborted", 1)
    except CliError as e:
        return _fail(debug, e, f"{PROG}: {_first_line(str(e))}", e.code)
    except KeyboardInterrupt as e:
        return _fail(debug, e, f"{PROG}: interrupted", 130)
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except Exception as e:
        return _fail(debug, e, f"{PROG}: {type(e).__name__}: {_first_line(str(e))}", 1)
    return code if isinstance(code, int) else 0


def _first_command(args: list[str]) -> int:
    """The index of the first argument that is not a global option (len(args) if none)."""
    return next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "error"


def _fail(debug: bool, e: BaseException, message: str, code: int) -> int:
    """Print ``message`` (one line) on stderr, with the traceback when ``debug``; return ``code``."""
    if debug:
        import traceback

        traceback.print_exception(e)
    import click

    click.echo(click.style("error:", fg="red", bold=True) + " " + message, err=True, color=color())
    return code


def color() -> bool | None:
    """False when ``NO_COLOR`` is set (to anything but ""), else None: colour only on a terminal."""
    return False if os.environ.get("NO_COLOR") else None


def _quiet_stdout() -> None:
    """After a broken pipe (``persidict ls | head``): no error at interpreter exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
