"""Typed results shared by the engine, the writers and the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional


@dataclass(frozen=True)
class Word:
    """One word with its time in the source file (seconds) and model confidence."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    lines: tuple[str, ...] = ()  # the text as subtitle lines (outputs/segments.py); () : one line


@dataclass(frozen=True)
class Transcript:
    """Everything known about one transcribed file."""

    segments: tuple[Segment, ...]
    language: Optional[str]  # None: not detected (no speech under a multilingual model)
    language_probability: Optional[float]  # None: never measured (given, English-only model, no speech)
    duration: float
    warnings: tuple[str, ...] = ()  # what this transcript cannot vouch for (confidence.py)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()


FileStatus = Literal["ok", "failed", "skipped"]


@dataclass
class FileResult:
    source: str
    status: FileStatus
    outputs: dict[str, Path] = field(default_factory=dict)
    transcript: Optional[Transcript] = None
    error: Optional[str] = None
    audio_seconds: float = 0.0


@dataclass
class RunSummary:
    results: list[FileResult]
    wall_seconds: float
    model: str
    device: str
    compute_type: str
    encoder: str = "ct2"
    backend: str = "ct2"
    model_load_seconds: float = 0.0

    def count(self, status: FileStatus) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def audio_seconds(self) -> float:
        return sum(r.audio_seconds for r in self.results if r.status == "ok")

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    @property
    def warned(self) -> int:
        return sum(1 for r in self.results if r.transcript is not None and r.transcript.warnings)

    def line(self) -> str:
        warned = f" ({self.warned} with warnings, see their JSON)" if self.warned else ""
        return (
            f"{self.count('ok')} ok{warned}, {self.count('failed')} failed, {self.count('skipped')} skipped; "
            f"{self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s "
            f"(RTFx {self.rtfx:.1f}) with {self.model} on {self.device}/{self.compute_type} "
            f"(backend: {self.backend}, encoder: {self.encoder}), "
            f"model loaded in {self.model_load_seconds:.2f} s"
        )
