"""Command-line interface: a thin typer shell over the library; each command lives in its own
module and registers itself on `app`."""

from . import run  # noqa: F401  (registers the command)
from .app import app


def main() -> None:
    app()
