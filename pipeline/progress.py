"""Progress for long work a person waits for (an import, a verify of a range): a rich progress bar on a
terminal, nothing under CI or when the output is a pipe or a file (the summary printed at the end is the
record)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def shown() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def stages(labels: dict[str, str]) -> Iterator[Callable[[str, int, int], None]]:
    """A callback `tick(stage, done, total)`: one bar per stage (labels: stage -> what a person reads), drawn on
    standard error while the block runs; a no-op where progress is not shown."""
    if not shown():
        yield lambda stage, done, total: None
        return
    with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False) as bars:
        tasks: dict[str, int] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(labels.get(stage, stage), total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield tick
