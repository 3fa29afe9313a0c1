"""Command-line interface: a thin typer shell over the library; each command lives in its own
module and registers itself on `app`."""

from . import run  # noqa: F401  (registers the command)
from . import compare  # noqa: F401  (registers the command)
from . import metrics  # noqa: F401  (registers the command)
from . import models  # noqa: F401  (registers the command)
from . import demo  # noqa: F401  (registers the command)
from . import eval  # noqa: F401  (registers the command)
from . import benchmark  # noqa: F401  (registers the command)
from . import corpus  # noqa: F401  (registers the command group)

import inspect

import typer
from rich.markup import escape

from .app import app


def _one_line_summaries(a: typer.Typer) -> None:
    """A command list shows each command's first docstring paragraph with its source line breaks;
    joined, it wraps to the terminal like the rest of the help. Command groups too."""
    for info in a.registered_commands:
        if info.short_help is None and info.callback is not None and info.callback.__doc__:
            info.short_help = " ".join(inspect.cleandoc(info.callback.__doc__).split("\n\n")[0].split())
    for group in a.registered_groups:
        _one_line_summaries(group.typer_instance)


_one_line_summaries(app)


def main() -> None:
    import sys

    from ..core import heap, interrupts, threads
    from .app import err_console, interrupted_text

    heap.no_huge_pages()
    threads.one_blas_thread()
    interrupts.terminate_as_interrupt()
    try:
        code = app(standalone_mode=False)
    except typer.Abort:  # Ctrl-C before a command started
        err_console.print(interrupted_text([]), highlight=False)
        code = 130
    except Exception as exc:
        # click's usage errors (typer vendors click: known by their shape, not their class). One
        # line, as every other error: click's own is a usage line, a hint and a boxed message.
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code") and hasattr(exc, "ctx")):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.ctx.get_help())
            code = 0
        else:
            command = exc.ctx.command_path if exc.ctx is not None else "adaptive-argm"
            err_console.print(f"[bold red]error:[/] {escape(exc.format_message())} (see '{command} --help')",
                              highlight=False, soft_wrap=True)
            code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
