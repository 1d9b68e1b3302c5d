"""Speaker turns in transcripts: RTTM files and the turn prefixes of the text formats."""

from __future__ import annotations

from pathlib import PurePath
from typing import Sequence

from batchscribe.results import Segment, Transcript


def to_rttm(transcript: Transcript, metadata: dict) -> str:
    """NIST RTTM: one `SPEAKER <file> 1 <onset s> <duration s> <NA> <NA> <speaker> <NA> <NA>` line per
    segment that has a speaker, in time order. Empty when the transcript has no speaker labels."""
    source = str(metadata.get("source", "audio"))
    file_id = PurePath(source.rsplit("/", 1)[-1]).stem.replace(" ", "_") or "audio"
    lines = []
    for s in sorted(transcript.segments, key=lambda s: s.start):
        if s.speaker:
            speaker, duration = s.speaker.replace(" ", "_"), max(0.0, s.end - s.start)
            lines.append(f"SPEAKER {file_id} 1 {s.start:.3f} {duration:.3f} <NA> <NA> {speaker} <NA> <NA>\n")
    return "".join(lines)


def turn_prefixes(segments: Sequence[Segment]) -> list[str]:
    """`[SPEAKER] ` for each segment that starts a new speaker's turn, else an empty string."""
    prefixes, previous = [], None
    for s in segments:
        prefixes.append(f"[{s.speaker}] " if s.speaker and s.speaker != previous else "")
        previous = s.speaker
    return prefixes
