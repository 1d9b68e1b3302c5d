"""The 30 s window Whisper reads, and speech pieces laid in it at offsets with silence between.

The packer (batching/packing.py) fills windows with pieces of many files; language detection
(backends/base.py) lays a file's first pieces in one window the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from batchscribe.audio import SAMPLE_RATE, SpeechPiece

WINDOW_SECONDS = 30.0
PIECE_GAP_SECONDS = 1.0  # silence between two pieces of a window
FILL_LIMIT_SECONDS = 29.0  # a window's speech ends by then


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

    def fits(self, duration: float, gap: float = PIECE_GAP_SECONDS, limit: float = FILL_LIMIT_SECONDS) -> bool:
        """Whether a piece of `duration` seconds still fits after this window's last one."""
        return self.end + gap + duration <= limit

    def place(self, ref: PieceRef, gap: float = PIECE_GAP_SECONDS) -> None:
        """Put `ref` `gap` seconds after the last piece (at 0 in an empty window)."""
        ref.offset = self.end + gap if self.pieces else 0.0
        self.pieces.append(ref)

    def audio(self) -> np.ndarray:
        buffer = np.zeros(int(WINDOW_SECONDS * SAMPLE_RATE), np.float32)
        for ref in self.pieces:
            start = int(round(ref.offset * SAMPLE_RATE))
            samples = ref.piece.audio[: buffer.size - start]
            buffer[start : start + samples.size] = samples
        return buffer


def lay_out(pieces: Sequence[SpeechPiece], language: str = "") -> Window:
    """The first of `pieces` laid in one window as the packer lays them (PIECE_GAP_SECONDS apart,
    within FILL_LIMIT_SECONDS); the first piece always, the rest until one does not fit."""
    window = Window(language)
    for index, piece in enumerate(pieces):
        if window.pieces and not window.fits(piece.duration):
            break
        window.place(PieceRef(-1, index, piece))
    return window
