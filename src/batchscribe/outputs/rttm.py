"""Speaker turns in transcripts: RTTM files and the turn prefixes of the text formats."""

from __future__ import annotations

from pathlib import PurePath
from typing import Sequence

from batchscribe.results import Segment, Transcript


def to_rttm(transcript: Transcript, metadata: dict) -> str:
    """NIST RTTM: one `SPEAKER <file> 1 <onset s> <duration s> <NA> <NA> <speaker> <NA> <NA>` line per
    speaker turn, in time order: the speech detector's stretches of speech with their speakers
    (segments with a speaker where there are none). Empty when the transcript has no speakers."""
    source = str(metadata.get("source", "audio"))
    file_id = PurePath(source.rsplit("/", 1)[-1]).stem.replace(" ", "_") or "audio"
    turns = transcript.speaker_turns or [(s.start, s.end, s.speaker) for s in transcript.segments if s.speaker]
    lines = []
    for start, end, speaker in sorted(turns):
        name, duration = speaker.replace(" ", "_"), max(0.0, end - start)
        lines.append(f"SPEAKER {file_id} 1 {start:.3f} {duration:.3f} <NA> <NA> {name} <NA> <NA>\n")
    return "".join(lines)


def turn_prefixes(segments: Sequence[Segment]) -> list[str]:
    """`[SPEAKER] ` for each segment that starts a new speaker's turn, else an empty string."""
    prefixes, previous = [], None
    for s in segments:
        prefixes.append(f"[{s.speaker}] " if s.speaker and s.speaker != previous else "")
        previous = s.speaker
    return prefixes
