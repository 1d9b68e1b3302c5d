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
    ordered, names = _clustered(windows, count)
    return _labelled(words, ordered, names), joined_turns(
        (w.start, w.end, name) for w, name in zip(ordered, names, strict=True)
    )


def diarize_sources(
    pieces: Sequence[list[Word]],
    piece_sources: Sequence[str],
    windows: Sequence[SpeakerWindow],
    count: SpeakerCount,
    build: Callable[[list[Word], bool], tuple[Segment, ...]],
    keep_words: bool,
) -> tuple[tuple[Segment, ...], tuple[Turn, ...]]:
    """`diarize` for a recording heard channel by channel (a voice per channel, speakers/sources.py):
    each channel's windows clustered on their own (a channel may hold several voices; uncorrelated
    channels are different microphones, so different people: the stereo test file's two voices are
    0.39 apart, which one channel's clustering would take for one voice), each word labelled from
    its own channel's windows (voices that overlap in time stay apart), each channel's segments cut
    where its speaker changes, then all merged by start time. The count bounds each channel's."""
    ordered, names = _clustered_by_source(windows, count)
    segments: list[Segment] = []
    for source in dict.fromkeys(piece_sources):
        words = [w for piece, s in zip(pieces, piece_sources, strict=True) if s == source for w in piece]
        own = [(w, n) for w, n in zip(ordered, names, strict=True) if w.source == source]
        if own:
            words = _labelled(words, [w for w, _ in own], [n for _, n in own])
            segments.extend(speaker_segments(words, build, keep_words))
        else:  # no speech long enough to embed on this channel
            segments.extend(build(words, keep_words))
    turns = joined_turns((w.start, w.end, name) for w, name in zip(ordered, names, strict=True))
    return _numbered(sorted(segments, key=lambda s: (s.start, s.end))), turns


def _clustered(windows: Sequence[SpeakerWindow], count: SpeakerCount) -> tuple[list[SpeakerWindow], list[str]]:
    """The windows in time order and their speakers' names (SPEAKER_1... by first appearance)."""
    ordered = sorted(windows, key=lambda w: (w.start, w.source))
    labels = cluster_speakers(np.stack([w.embedding for w in ordered]), count)
    return ordered, [f"SPEAKER_{int(label) + 1}" for label in labels]


def _clustered_by_source(
    windows: Sequence[SpeakerWindow], count: SpeakerCount
) -> tuple[list[SpeakerWindow], list[str]]:
    """The windows in time order and their speakers' names, each source's voices its own speakers."""
    keys: dict[tuple[str, str], str] = {}
    pairs = []
    for source in dict.fromkeys(w.source for w in windows):
        ordered, names = _clustered([w for w in windows if w.source == source], count)
        pairs.extend((w, (source, name)) for w, name in zip(ordered, names, strict=True))
    pairs.sort(key=lambda pair: (pair[0].start, pair[0].source))
    for _, key in pairs:
        keys.setdefault(key, f"SPEAKER_{len(keys) + 1}")
    return [w for w, _ in pairs], [keys[key] for _, key in pairs]


def _labelled(words: Sequence[Word], ordered: Sequence[SpeakerWindow], names: Sequence[str]) -> list[Word]:
    """Each word with the speaker of the window holding its midpoint, else of the nearest window."""
    starts = np.array([w.start for w in ordered])
    ends = np.array([w.end for w in ordered])
    labelled = []
    for word in words:
        middle = (word.start + word.end) / 2
        gap = np.maximum(starts - middle, 0) + np.maximum(middle - ends, 0)  # 0 inside a window
        labelled.append(replace(word, speaker=names[int(np.argmin(gap))]))
    return labelled


def joined_turns(turns: Iterable[Turn], gap: float = 0.05) -> tuple[Turn, ...]:
    """Turns in time order, a speaker's touching turns joined into one (also across another speaker's
    turn that overlaps them, as on a recording heard channel by channel)."""
    joined: list[Turn] = []
    latest: dict[str, int] = {}  # speaker -> index of their last turn in `joined`
    for start, end, speaker in sorted(turns):
        index = latest.get(speaker)
        if index is not None and start - joined[index][1] <= gap:
            joined[index] = (joined[index][0], max(end, joined[index][1]), speaker)
        else:
            latest[speaker] = len(joined)
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
