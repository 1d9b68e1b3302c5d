"""Pack speech pieces from many files into shared 30 s model windows, and map words back.

Whisper always encodes 30 s; a 5 s file alone wastes 5/6 of that work. Packing pieces of
several files (separated by silence) into one window, then assigning each decoded word to
the piece it was spoken in, is what lets many short files run as fast as one long one.
"""

from __future__ import annotations

from typing import Optional

from batchscribe.engine.batching.regions import place_words
from batchscribe.engine.windows import FILL_LIMIT_SECONDS, PIECE_GAP_SECONDS, PieceRef, Window
from batchscribe.results import Word


class WindowPacker:
    """First-fit packing over a few open windows; a full window is emitted at once."""

    def __init__(
        self, language: str, gap: float = PIECE_GAP_SECONDS, limit: float = FILL_LIMIT_SECONDS, open_windows: int = 4,
        initial_prompt: Optional[str] = None,
    ):  # fmt: skip
        self.language = language
        self.initial_prompt = initial_prompt
        self.gap = gap
        self.limit = limit
        self.open_windows = open_windows
        self._open: list[Window] = []

    def add(self, ref: PieceRef) -> list[Window]:
        """Place `ref`; return the windows that are now complete."""
        duration = ref.piece.duration
        for window in self._open:
            if window.fits(duration, self.gap, self.limit):
                window.place(ref, self.gap)
                return self._take_full()
        done = []
        if len(self._open) >= self.open_windows:
            fullest = max(self._open, key=lambda w: w.end)
            self._open.remove(fullest)
            done.append(fullest)
        window = Window(self.language, [], self.initial_prompt)
        window.place(ref)
        self._open.append(window)
        return done + self._take_full()

    def _take_full(self) -> list[Window]:
        full = [w for w in self._open if w.end + self.gap + 1.0 > self.limit]
        self._open = [w for w in self._open if w not in full]
        return full

    def flush(self) -> list[Window]:
        done, self._open = self._open, []
        return done


def assign_words(window: Window, words: list[Word]) -> list[list[Word]]:
    """Split words (window time) among the window's pieces, converted to source time.

    A word belongs to the piece whose span, widened by half the gap around it, holds its
    midpoint; times are clipped to that piece so no word leaks into a neighbour's audio, then laid
    on the piece's speech regions, each word with a length (regions.py).
    """
    per_piece: list[list[Word]] = [[] for _ in window.pieces]
    bounds = [(ref.offset, ref.offset + ref.piece.duration) for ref in window.pieces]
    for word in words:
        middle = (word.start + word.end) / 2
        index = min(
            range(len(bounds)),
            key=lambda i: 0.0 if bounds[i][0] <= middle <= bounds[i][1] else min(abs(middle - b) for b in bounds[i]),
        )
        lo, hi = bounds[index]
        shift = window.pieces[index].piece.start - lo
        start = min(max(word.start, lo), hi) + shift
        end = min(max(word.end, start - shift), hi) + shift
        per_piece[index].append(Word(start, end, word.word, word.probability, tokens=word.tokens))
    return [
        place_words(placed, ref.piece.regions, ref.piece.start, ref.piece.start + ref.piece.duration)
        for ref, placed in zip(window.pieces, per_piece, strict=True)
    ]
