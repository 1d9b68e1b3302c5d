"""User-facing options for one transcription run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

FORMATS = ("txt", "srt", "vtt", "json")


@dataclass(frozen=True)
class TranscribeOptions:
    """What to transcribe with and how; defaults are the tuned ones (see bench/)."""

    model: str = "tiny.en"
    language: Optional[str] = None  # None: detect per file
    task: Literal["transcribe", "translate"] = "transcribe"
    formats: tuple[str, ...] = FORMATS
    word_timestamps: bool = False
    beam_size: int = 5
    batch_size: int = 0  # 30 s windows per model call; 0: the backend's best (engine/device.py)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    threads: int = 0  # 0: one per available core
    encoder: Literal["auto", "ct2", "torch"] = "auto"  # torch: bf16 encoder on AMX CPUs (see engine/device.py)
    backend: Literal["auto", "ct2", "torch"] = "auto"  # the library that runs the model (see engine/device.py)
    overwrite: bool = False
    # subtitle cues (outputs/segments.py), openai-whisper's option names; they shape every format's segments
    max_line_width: int = 42
    max_line_count: int = 2
    max_words_per_line: Optional[int] = None

    def output_settings(self) -> dict:
        """The settings that change a transcript's content (used to decide whether to skip)."""
        settings = asdict(self)
        for runtime_only in ("batch_size", "device", "compute_type", "threads", "overwrite", "formats", "encoder",
                             "backend"):
            settings.pop(runtime_only)
        return settings
