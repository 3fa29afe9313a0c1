"""The typer application, its console, and the one place where errors become one-line messages
and exit codes (2: usage, 1: processing, 130: interrupted)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import typer
from rich.console import Console

from ..core.audio import AudioError
from ..core.models import ModelUnavailable
from ..core.presets import PresetError
from ..core.separate import SeparationError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Restore text-to-music outputs: separate, route, restore, remix, measure.")
console = Console()
err_console = Console(stderr=True)

KNOWN_ERRORS = (AudioError, SeparationError, ModelUnavailable, PresetError, ValueError, OSError)


class UsageError(Exception):
    """A wrong combination of arguments (exit code 2)."""


def fail(message: str, code: int = 1):
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def friendly_errors():
    """Turn the errors a user can cause into one line on stderr and an exit code; a traceback
    only with ADAPTIVE_ARGM_DEBUG=1."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted: no partial output was left behind")
        raise typer.Exit(130)
    except UsageError as exc:
        fail(str(exc), 2)
    except Exception as exc:
        if os.environ.get("ADAPTIVE_ARGM_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.filename:
            fail(f"{exc.filename}: {exc.strerror or exc}")
        text = str(exc).splitlines()[0] if str(exc) else ""
        if isinstance(exc, KNOWN_ERRORS):
            fail(text)
        fail(f"internal error ({type(exc).__name__}: {text}); rerun with ADAPTIVE_ARGM_DEBUG=1 for details")


def is_tty() -> bool:
    return sys.stderr.isatty()


@app.callback()
def _root() -> None:
    """Restore text-to-music outputs: separate, route, restore, remix, measure."""
