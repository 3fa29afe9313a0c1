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
from .app import app


def main() -> None:
    from ..core import heap, threads

    heap.no_huge_pages()
    threads.one_blas_thread()
    app()
