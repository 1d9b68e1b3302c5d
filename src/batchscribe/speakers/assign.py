"""Give every word a speaker, and cut segments where the speaker changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable, Sequence

import numpy as np

from batchscribe.results import Segment, Word
from batchscribe.speakers.cluster import SpeakerCount, cluster_speakers
from batchscribe.speakers.windows import SpeakerWindow


Turn = tuple[float, float, str]  # (start s, end s, speaker) of a stretch of speech


def diarize(
    words: Sequence[Word], windows: Sequence[SpeakerWindow], count: SpeakerCount
) -> tuple[list[Word], tuple[Turn, ...]]:
    """`words` with `speaker` set (SPEAKER_1, SPEAKER_2, ... by first appearance), and the speaker
    turns: the speech windows with their speakers, neighbours of one speaker joined.

    Each word takes the speaker of the window holding its midpoint, else of the nearest window.
    No windows (silence, or speech too short to embed) leaves the words unlabelled.
    """
    if not windows:
        return list(words), ()
    ordered = sorted(windows, key=lambda w: w.start)
    names = [f"SPEAKER_{int(label) + 1}" for label in cluster_speakers(np.stack([w.embedding for w in ordered]), count)]
    starts = np.array([w.start for w in ordered])
    ends = np.array([w.end for w in ordered])
    labelled = []
    for word in words:
        middle = (word.start + word.end) / 2
        gap = np.maximum(starts - middle, 0) + np.maximum(middle - ends, 0)  # 0 inside a window
        labelled.append(replace(word, speaker=names[int(np.argmin(gap))]))
    return labelled, joined_turns((w.start, w.end, name) for w, name in zip(ordered, names, strict=True))


def joined_turns(turns: Iterable[Turn], gap: float = 0.05) -> tuple[Turn, ...]:
    """Turns in time order, a speaker's touching turns joined into one."""
    joined: list[Turn] = []
    for start, end, speaker in sorted(turns):
        if joined and joined[-1][2] == speaker and start - joined[-1][1] <= gap:
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]), speaker)
        else:
            joined.append((start, end, speaker))
    return tuple(joined)


def speaker_segments(
    words: Iterable[Word], build: Callable[[list[Word], bool], tuple[Segment, ...]], keep_words: bool
) -> tuple[Segment, ...]:
    """Segments from `build` (outputs.segments.build_segments) over each run of one speaker's
    words, so that no segment spans a change of speaker; ids renumbered in time order."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    return _numbered(s for run in runs for s in _tagged(build(run, keep_words), run[0].speaker))


def channel_segments(
    pieces: Sequence[list[Word]],
    piece_channels: Sequence[str],
    build: Callable[[list[Word], bool], tuple[Segment, ...]],
    keep_words: bool,
) -> tuple[Segment, ...]:
    """Each channel's (or track's) words, the words of its pieces, segmented on their own, then
    merged by start time."""
    words_by_channel: dict[str, list[Word]] = {name: [] for name in dict.fromkeys(piece_channels)}
    for name, words in zip(piece_channels, pieces, strict=True):
        words_by_channel[name].extend(words)
    segments = []
    for name, words in words_by_channel.items():
        segments.extend(_tagged(build([replace(w, speaker=name) for w in words], keep_words), name))
    return _numbered(sorted(segments, key=lambda s: (s.start, s.end)))


def _tagged(segments: Iterable[Segment], speaker) -> list[Segment]:
    return [replace(s, speaker=speaker) for s in segments]


def _numbered(segments: Iterable[Segment]) -> tuple[Segment, ...]:
    return tuple(replace(s, id=index) for index, s in enumerate(segments))
