"""`adaptive-argm models`: the known Demucs models and where each is available from here;
`models fetch` lays weights out for `--model-repo`; `models check` validates such a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..core import models
from . import options as o
from .app import app, console, err_console, fail, friendly_errors

models_app = typer.Typer(no_args_is_help=False, help="Demucs models: list them, fetch them, check a folder.")
app.add_typer(models_app, name="models")

WHERE_TEXT = {"model-repo": "local folder", "hf-cache": "Hugging Face cache", "torch-cache": "torch hub cache",
              "builtin": "built in", "download": "downloadable", "missing": "missing"}


def models_table(statuses: list[models.ModelStatus]) -> Table:
    t = Table(title="Demucs models", title_justify="left")
    t.add_column("model", no_wrap=True)
    t.add_column("stems")
    t.add_column("download", justify="right", no_wrap=True)
    t.add_column("available", overflow="fold")
    t.add_column("note", overflow="fold")
    for s in statuses:
        where = s.location.where
        text = WHERE_TEXT.get(where, where) + (f" {s.location.path}" if s.location.path else "")
        t.add_row(s.model.name, " ".join(s.model.stems), f"~{s.model.download_mb} MB",
                  f"[{'red' if where == 'missing' else 'green'}]{text}[/]", s.model.note)
    return t


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
            t = Table(title=f"Problems in {folder}", title_justify="left")
            t.add_column("#", justify="right")
            t.add_column("problem", overflow="fold")
            for i, p in enumerate(problems, 1):
                t.add_row(str(i), p)
            console.print(t)
            fail(f"{folder} cannot be used as --model-repo ({len(problems)} problem(s))")
        offered = [name] if name else models.repo_models(folder)
        console.print(f"ok: {folder} works as --model-repo for {', '.join(offered)}", highlight=False)
