"""`adaptive-argm models`: the known Demucs models and where each is available from here;
`models fetch` lays weights out for `--model-repo`; `models check` validates such a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from ..core import models
from ..core.table import Table
from . import options as o
from .app import UsageError, app, console, err_console, fail, friendly_errors
from .tables import models_table, render

models_app = typer.Typer(no_args_is_help=False, help="Demucs models: list them, fetch them, check a folder.")
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def list_models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list on stdout instead of a table."),
    model_repo: Optional[Path] = o.ModelRepo,
) -> None:
    """List the known Demucs models, their stems, download size and where each is available
    from here (never touches the network)."""
    if ctx.invoked_subcommand is not None:
        return
    with friendly_errors():
        if model_repo is not None and not model_repo.is_dir():
            raise UsageError(f"--model-repo {model_repo}: not a folder")
        statuses = models.inventory(model_repo)
        if as_json:
            typer.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
            return
        console.print(models_table(statuses))
        if all(s.location.where == "missing" for s in statuses):
            err_console.print("[yellow]notice:[/] no Demucs weights here: `run` restores the mix directly. "
                              f"{models.advice(models.KNOWN_MODELS[0].name)}", soft_wrap=True, highlight=False)


@models_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help=f"Model name ({', '.join(models.KNOWN_NAMES)})."),
    to: Optional[Path] = typer.Option(None, "--to", help=f"Folder to lay the weights out in (default "
                                                         f"{models.DEFAULT_MODEL_DIR}, searched automatically)."),
) -> None:
    """Download a model through demucs' own loader and lay it out flat (NAME.yaml + SIG.th) so
    `--model-repo DIR` works offline. Without network it fails at once and says how to bring
    the files in by hand."""
    with friendly_errors():
        written = models.fetch(name, to)
        folder = written[0].parent
        console.print(f"fetched {name} into {folder} ({len(written)} file(s), "
                      f"{sum(p.stat().st_size for p in written) / 1e6:.0f} MB)", highlight=False)
        if folder != models.model_dir():
            console.print(f"use it with --model-repo {folder}", highlight=False)


@models_app.command("check")
def check(
    folder: Path = typer.Argument(..., help="A folder to use as --model-repo."),
    name: Optional[str] = typer.Option(None, "--name", help="Check only this model's files."),
) -> None:
    """Check that a folder works as `--model-repo` (NAME.yaml and every SIG-*.th flat in it);
    exit code 0 when it does, 1 when it does not."""
    with friendly_errors():
        problems = models.check_repo(folder, name)
        if problems:
            console.print(render(Table(("#", "problem"), tuple(enumerate(problems, 1)), f"Problems in {folder}")))
            fail(f"{folder} cannot be used as --model-repo ({len(problems)} problem(s))")
        offered = [name] if name else models.repo_models(folder)
        console.print(f"ok: {folder} works as --model-repo for {', '.join(offered)}", highlight=False)
