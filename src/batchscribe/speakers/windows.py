"""Cut speech pieces into the short windows that get one speaker embedding each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batchscribe.audio import SAMPLE_RATE, SpeechPiece

WINDOW_SECONDS = 2.0  # target; a pause-free stretch of d seconds gets round(d / 2) equal windows (1.5-3 s)
MIN_WINDOW_SECONDS = 0.5  # shorter speech (a cough, a "yes") is labelled from its neighbours


@dataclass(frozen=True)
class SpeakerWindow:
    """A stretch of one file's speech, in source seconds, and its unit-length speaker embedding."""

    start: float
    end: float
    embedding: np.ndarray
    source: str = ""  # its piece's channel, when --diarize hears a file's channels apart


def speech_windows(piece: SpeechPiece) -> list[tuple[float, float, np.ndarray]]:
    """(start s, end s, audio) of each window of `piece`: its speech regions cut into ~2 s parts.

    Windows never straddle a pause the VAD found, so a turn change at a pause starts a new window.
    """
    windows = []
    for region_start, region_end in piece.regions or ((piece.start, piece.end),):
        length = region_end - region_start
        if length < MIN_WINDOW_SECONDS:
            continue
        parts = max(1, int(round(length / WINDOW_SECONDS)))
        step = length / parts
        for index in range(parts):
            start = region_start + index * step
            first = int(round((start - piece.start) * SAMPLE_RATE))
            audio = piece.audio[max(0, first) : first + int(round(step * SAMPLE_RATE))]
            if audio.size >= MIN_WINDOW_SECONDS * SAMPLE_RATE:
                windows.append((start, start + step, audio))
    return windows


def embed_piece(encoder, piece: SpeechPiece) -> list[SpeakerWindow]:
    """The speaker windows of one piece, embedded in one call (runs on the model workers' pool)."""
    cut = speech_windows(piece)
    if not cut:
        return []
    vectors = encoder.embed([audio for _, _, audio in cut])
    return [SpeakerWindow(start, end, vector, piece.source)
            for (start, end, _), vector in zip(cut, vectors, strict=True)]
