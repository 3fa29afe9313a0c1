"""Progress on stderr while a command works: a bar with percentage, count, time taken and time
left over a batch's files, eval's clips, the benchmark's cases and a corpus build's files; a
stage line for one run, with the separation's own bar (Demucs' chunks). Shown only on a
terminal: a pipe or a log file gets the tables and nothing else; every bar is gone when done.
"""

from __future__ import annotations

from typing import Callable

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from ..core import batch
from .app import err_console, is_tty

STAGE_TEXT = {"load": "loading", "separate": "separating", "route": "routing", "restore": "restoring",
              "measure": "measuring", "write": "writing"}
BAR_WIDTH = 20
"""Narrow enough that a bar and its numbers fit on an 80-column line beside a short name."""


class TimeLeftColumn(TimeRemainingColumn):
    """The time left, as `0:00:04 left`; nothing while the total is unknown."""

    def render(self, task) -> Text:
        if task.total is None:
            return Text("")
        text = super().render(task)
        text.append(" left")
        return text


def bar(description: str = "{task.description}", count: bool = True) -> Progress:
    """A transient progress display on stderr: spinner, `description`, bar, percentage, done of
    total (`count`), time taken and time left; disabled when stderr is not a terminal."""
    columns = [SpinnerColumn(), TextColumn(description), BarColumn(bar_width=BAR_WIDTH), TaskProgressColumn()]
    if count:
        columns.append(MofNCompleteColumn())
    columns += [TimeElapsedColumn(), TimeLeftColumn()]
    return Progress(*columns, console=err_console, transient=True, disable=not is_tty())


def stage_progress() -> tuple[Progress, Callable[[str], None], Callable[[float], None]]:
    """One run's display: the current stage's name, and while Demucs separates, its share done
    with the time left. Returns the display and the `on_stage` and `on_progress` callbacks
    `pipeline.run`/`compare` take."""
    progress = bar(count=False)
    stage_task = progress.add_task("starting", total=None)
    state: dict = {"stage": "starting", "measured": None}

    def on_stage(stage: str) -> None:
        state["stage"] = STAGE_TEXT.get(stage, stage)
        if state["measured"] is not None:  # the separation's bar, with its time left, is done
            progress.remove_task(state["measured"])
            state["measured"] = None
        progress.update(stage_task, description=state["stage"], visible=True)

    def on_progress(done: float) -> None:
        if state["measured"] is None:
            progress.update(stage_task, visible=False)
            state["measured"] = progress.add_task(state["stage"], total=100)
        progress.update(state["measured"], completed=100 * done)

    return progress, on_stage, on_progress


def batch_progress():
    """A bar over a batch's files; with one worker its description also names the file and its
    stage. Returns the display and the callbacks `batch.run_batch` takes."""
    progress = bar()
    task = progress.add_task("starting", total=None)
    current = {"name": ""}

    def on_start(job: batch.Job) -> None:
        current["name"] = job.out_dir.name
        progress.update(task, description=current["name"])

    def on_stage(stage: str) -> None:
        progress.update(task, description=f"{current['name']}: {STAGE_TEXT.get(stage, stage)}")

    def on_plan(jobs: list[batch.Job]) -> None:
        progress.update(task, total=len(jobs), description=f"{len(jobs)} files")

    def on_done(result: batch.FileResult) -> None:
        progress.advance(task)

    return progress, dict(on_plan=on_plan, on_start=on_start, on_stage=on_stage, on_done=on_done)
