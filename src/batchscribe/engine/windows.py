"""The 30 s window Whisper reads, and speech pieces laid in it at offsets with silence between.

The packer (batching/packing.py) fills windows with pieces of many files; language detection
(backends/base.py) lays a file's first pieces in one window the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from batchscribe.audio import SAMPLE_RATE, SpeechPiece

WINDOW_SECONDS = 30.0


@dataclass
class PieceRef:
    """A piece of one file's speech, placed at `offset` seconds into a window."""

    file_id: int
    index: int  # position of the piece within its file
    piece: SpeechPiece
    offset: float = 0.0


@dataclass
class Window:
    language: str
    pieces: list[PieceRef] = field(default_factory=list)
    initial_prompt: Optional[str] = None  # of every file in it: files with other prompts go elsewhere

    @property
    def end(self) -> float:
        return self.pieces[-1].offset + self.pieces[-1].piece.duration if self.pieces else 0.0

    def audio(self) -> np.ndarray:
        buffer = np.zeros(int(WINDOW_SECONDS * SAMPLE_RATE), np.float32)
        for ref in self.pieces:
            start = int(round(ref.offset * SAMPLE_RATE))
            samples = ref.piece.audio[: buffer.size - start]
            buffer[start : start + samples.size] = samples
        return buffer
