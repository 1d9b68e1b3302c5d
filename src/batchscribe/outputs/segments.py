"""Group words into readable segments: at sentence ends, long pauses, or a length limit."""

from __future__ import annotations

from typing import Iterable

from batchscribe.results import Segment, Word

SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")
PAUSE_SECONDS = 1.0
MIN_SENTENCE_SECONDS = 2.0
MAX_SEGMENT_SECONDS = 15.0


def build_segments(words: Iterable[Word], keep_words: bool) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    current: list[Word] = []

    def close() -> None:
        text = "".join(w.word for w in current).strip()
        if text:
            segments.append(
                Segment(len(segments), current[0].start, current[-1].end, text, tuple(current) if keep_words else ())
            )
        current.clear()

    for word in words:
        if current:
            pause = word.start - current[-1].end
            length = word.end - current[0].start
            sentence_done = current[-1].word.strip().endswith(SENTENCE_ENDS) and (
                current[-1].end - current[0].start >= MIN_SENTENCE_SECONDS
            )
            if pause >= PAUSE_SECONDS or sentence_done or length > MAX_SEGMENT_SECONDS:
                close()
        current.append(word)
    if current:
        close()
    return tuple(segments)
