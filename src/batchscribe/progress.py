"""Terminal progress: files done, audio hours done and speed as x real time."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from batchscribe.names import shown
from batchscribe.results import FileResult


class TerminalProgress:
    """A rich progress bar on a terminal; one line per failure, and per note about a file's audio, either way."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.audio_seconds = 0.0
        self._started = time.perf_counter()
        self._bar = Progress(
            TextColumn("[bold]transcribing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[hours]:.2f} h audio · {task.fields[speed]:.1f}x real time"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self._task = self._bar.add_task("files", total=None, hours=0.0, speed=0.0)

    def __enter__(self) -> "TerminalProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def started(self, files: int, skipped: int) -> None:
        self._started = time.perf_counter()
        self._bar.update(self._task, total=files)  # skipped and missing files were counted as they were told

    def file_finished(self, result: FileResult) -> None:
        if result.status == "failed":
            self.console.print(f"[red]failed:[/red] {escape(shown(result.error))}", highlight=False, soft_wrap=True)
        if result.transcript is not None:
            for note in result.transcript.audio.notes():  # audio tracks left out, a corrected downmix
                message = f"{escape(shown(result.source))}: {escape(note)}"
                self.console.print(f"[yellow]note:[/yellow] {message}", highlight=False, soft_wrap=True)
        for warning in result.transcript.warnings if result.transcript else ():
            message = f"{escape(shown(result.source))}: {escape(warning)}"
            self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
        self.audio_seconds += result.audio_seconds
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(self._task, advance=1, hours=self.audio_seconds / 3600, speed=self.audio_seconds / elapsed)
