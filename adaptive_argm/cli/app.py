"""The typer application, its console, and the one place where errors become one-line messages
and exit codes (2: usage, 1: processing, 130: interrupted, 143: terminated)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from ..config import VERSION, SettingError, UserError, describe_error
from ..core import interrupts

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Restore text-to-music outputs: separate, route, restore, remix, measure.")
console = Console()
err_console = Console(stderr=True)

FLAGS = {"mode": "--mode", "preset": "--preset", "clip_mode": "--clip-mode", "skip_policy": "--skip-policy",
         "output_sr": "--output-sr", "separator": "--separator", "stems": "--stems", "force": "--force",
         "device": "--device", "model_repo": "--model-repo", "jobs": "--jobs", "missing": "--missing",
         "duration_s": "--duration", "clean": "--clean", "split": "--split", "corpus": "--corpus",
         "excerpt_s": "--excerpt-s", "segment": "--segment", "overlap": "--overlap", "shifts": "--shifts",
         "min_active_fraction": "--min-active", "min_rel_db": "--min-rel-db", "active_rel_db": "--active-rel-db",
         "active_floor_dbfs": "--active-floor-dbfs", "format": "--format", "bits": "--bits",
         "target_lufs": "--target-lufs", "true_peak_db": "--true-peak-db", "backend": "--backend",
         "address": "--address"}
"""The flag of each library setting that errors name (`config.Setting.name`): how the CLI says them."""


class UsageError(Exception):
    """A wrong combination of arguments (exit code 2)."""


def fail(message: str, code: int = 1):
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def interrupted_text(kept: list, how: str = "interrupted") -> str:
    """What an interrupted (or terminated) command leaves: nothing, or the results it finished before."""
    if not kept:
        return f"{how}: nothing was written"
    names = [str(p) for p in dict.fromkeys(kept)]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"{how}: kept what was finished before it ({shown}); nothing else was written"


@contextmanager
def friendly_errors():
    """Turn the errors a user can cause into one line on stderr and an exit code; a traceback
    only with ADAPTIVE_ARGM_DEBUG=1. After Ctrl-C it says what the command kept."""
    with interrupts.recording() as kept:
        try:
            yield
        except typer.Exit:
            raise
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, interrupts.Terminated)
            err_console.print(interrupted_text(kept, "terminated" if terminated else "interrupted"), highlight=False,
                              soft_wrap=True)
            raise typer.Exit(143 if terminated else 130)
        except UsageError as exc:
            fail(str(exc), 2)
        except Exception as exc:
            if os.environ.get("ADAPTIVE_ARGM_DEBUG"):
                raise
            text = describe_error(exc, FLAGS)
            if not isinstance(exc, (UserError, ValueError, OSError)):
                text += "; rerun with ADAPTIVE_ARGM_DEBUG=1 for details"
            fail(text, 2 if isinstance(exc, SettingError) else 1)


def is_tty() -> bool:
    """Whether stderr is a terminal that shows progress (TTY_COMPATIBLE=1 says so for one that
    does not look like it; FORCE_COLOR, often set in CI logs, does not)."""
    return sys.stderr.isatty() or os.environ.get("TTY_COMPATIBLE") == "1"


def _print_version(value: bool) -> None:
    if value:
        console.print(f"adaptive-argm {VERSION}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    """Restore text-to-music outputs: separate, route, restore, remix, measure."""
