"""Transcript file formats. Each writer returns the file's text; writing is atomic."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Callable

from batchscribe.names import NAME_MAX, shown
from batchscribe.options import TranscribeOptions
from batchscribe.outputs.rttm import to_rttm, turn_prefixes
from batchscribe.results import Segment, Transcript


MIN_CUE_SECONDS = 0.5  # a shorter cue is stretched into the silence after it, never over the next


def _clock(millis: int, decimal: str) -> str:
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_txt(transcript: Transcript, metadata: dict) -> str:
    turns = turn_prefixes(transcript.segments)  # "[SPEAKER_1] " where a speaker's turn starts
    return "".join(f"{p}{s.text}\n" for p, s in zip(turns, transcript.segments, strict=True))


def cues(transcript: Transcript, metadata: dict | None = None, voices: bool = False) -> list[tuple[int, int, str]]:
    """Subtitle cues (start ms, end ms, text with its line breaks) a player can show: each at least
    1 ms long and MIN_CUE_SECONDS where the silence after it allows, none overlapping the next.

    One cue per segment, or with `highlight_words` openai-whisper's karaoke style: a cue per word
    with that word underlined, and the plain line between words. Speakers: `voices` (VTT) tags every
    cue with `<v SPEAKER>`; otherwise a turn's first cue gets its "[SPEAKER] " prefix."""
    segments = transcript.segments
    if voices:
        prefixes = [f"<v {s.speaker}>" if s.speaker else "" for s in segments]
    else:
        prefixes = turn_prefixes(segments)
    timed = []
    for prefix, segment in zip(prefixes, segments, strict=True):
        plain = [(segment.start, segment.end, "\n".join(segment.lines) if segment.lines else segment.text)]
        pieces = _highlighted(segment) if (metadata or {}).get("highlight_words") else plain
        for i, (start, end, text) in enumerate(pieces):
            timed.append((start, end, (prefix if voices or i == 0 else "") + text))
    shown_cues = []
    previous_end = 0
    for k, (start_s, end_s, text) in enumerate(timed):
        start = max(round(start_s * 1000), previous_end)
        end = max(round(end_s * 1000), start + 1)
        following = round(timed[k + 1][0] * 1000) if k + 1 < len(timed) else round(transcript.duration * 1000)
        end = max(end, min(start + round(MIN_CUE_SECONDS * 1000), following))
        shown_cues.append((start, end, text))
        previous_end = end
    return shown_cues


def _highlighted(segment: Segment) -> list[tuple[float, float, str]]:
    if not segment.words:
        return [(segment.start, segment.end, segment.text)]
    texts = [w.word for w in segment.words]
    plain = "".join(texts).strip()
    cues = []
    last = segment.words[0].start
    for i, word in enumerate(segment.words):
        if round(last * 1000) != round(word.start * 1000):
            cues.append((last, word.start, plain))
        marked = "".join(re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", t) if j == i else t for j, t in enumerate(texts))
        cues.append((word.start, word.end, marked.strip()))
        last = word.end
    return cues


def to_srt(transcript: Transcript, metadata: dict) -> str:
    return "".join(
        f"{n}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n\n"
        for n, (start, end, text) in enumerate(cues(transcript, metadata), start=1)
    )


def to_vtt(transcript: Transcript, metadata: dict) -> str:
    timed = cues(transcript, metadata, voices=True)
    body = "".join(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n\n" for start, end, text in timed)
    return "WEBVTT\n\n" + body


def to_tsv(transcript: Transcript, metadata: dict) -> str:
    """openai-whisper's TSV: start and end in integer milliseconds, then the text (tabs made spaces)."""
    rows = "".join(
        f"{round(1000 * s.start)}\t{round(1000 * s.end)}\t{s.text.strip().replace(chr(9), ' ')}\n"
        for s in transcript.segments
    )
    return "start\tend\ttext\n" + rows


def to_json(transcript: Transcript, metadata: dict) -> str:
    """openai-whisper's shape (text, segments, language) plus what a batch user needs."""
    segments = []
    for s in transcript.segments:
        entry = {"id": s.id, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text,
                 "language": s.language or transcript.language}  # fmt: skip
        if s.speaker:
            entry["speaker"] = s.speaker
        if s.avg_logprob is not None:  # openai-whisper's fields, of the window the segment was decoded in
            entry.update(
                seek=s.seek,
                tokens=list(s.tokens),
                temperature=s.temperature,
                avg_logprob=round(s.avg_logprob, 4),
                compression_ratio=round(s.compression_ratio or 0.0, 4),
                no_speech_prob=round(s.no_speech_prob or 0.0, 4),
            )
        if s.words:
            entry["words"] = [
                {
                    "word": w.word,
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "probability": round(w.probability, 4),
                    **({"speaker": w.speaker} if w.speaker else {}),
                }
                for w in s.words
            ]
        segments.append(entry)
    document = {
        "text": transcript.text,
        "segments": segments,
        "language": transcript.language,
        "language_probability": None
        if transcript.language_probability is None
        else round(transcript.language_probability, 4),  # None: never measured
        "warnings": list(transcript.warnings),
        "duration": round(transcript.duration, 3),
        **_audio(transcript),
        **{k: v for k, v in metadata.items() if k != "highlight_words"},
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _audio(transcript: Transcript) -> dict:
    """Which audio tracks were transcribed, where the audio starts, and what the downmix corrected."""
    audio = transcript.audio
    document: dict = {
        "audio_start": audio.start,
        "audio_tracks": [
            {"index": t.index, "title": t.title, "language": t.language, "transcribed": t.transcribed}
            for t in audio.tracks
        ],
    }
    if audio.polarity_corrected_seconds:
        document["downmix"] = {
            "channels": audio.channels,
            "polarity_corrected_seconds": round(audio.polarity_corrected_seconds, 1),
            "method": "sign-corrected sum (a polarity-inverted channel cancelled the plain mono mix)",
        }
    return document


WRITERS: dict[str, Callable[[Transcript, dict], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
    "tsv": to_tsv,
    "rttm": to_rttm,  # only when asked for (--formats rttm): who spoke when, the diarization standard
}


def render(transcript: Transcript, model: str, source: str, options: TranscribeOptions) -> dict[str, str]:
    """Each requested format's text for one transcript, with the metadata every JSON carries."""
    metadata = {"model": model, "source": source, "options": options.output_settings()}
    if options.highlight_words:
        metadata["highlight_words"] = True
    return {fmt: WRITERS[fmt](transcript, metadata) for fmt in options.formats}


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    write_set({path: text})


def write_set(files: dict[Path, str]) -> None:
    """Write several files all or nothing: a transcript set is never left as `.txt` without `.json`.

    Every file is written to a temporary in its own folder and fsynced first; only then are they
    renamed into place. A failure (a full disk, a name the file system refuses) removes the
    temporaries and raises, so the previous set, if any, stays whole. Text is UTF-8; an
    undecodable file-name byte quoted in it is written `%XX` (see batchscribe.names).

    The temporary name is chosen before the file exists and created inside the cleanup's reach:
    with tempfile.mkstemp, a Ctrl-C landing in its own Python code after the file was created
    left a stray .partial behind (seen once in a full test run). A writer killed outright
    (SIGKILL) cannot clean up, so the next write of the same file removes the temporaries of
    writers on this machine that are no longer running (their name carries host and pid).
    Raises OSError.
    """
    encoded = {path: shown(text).encode("utf-8") for path, text in files.items()}
    temporaries: list[Path] = []
    try:
        for path, data in encoded.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{_temporary_prefix(path.name)}{_WRITER}.{uuid.uuid4().hex[:8]}.partial")
            temporaries.append(temporary)
            with open(temporary, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        for path, temporary in zip(encoded, temporaries, strict=True):
            os.replace(temporary, path)
    except BaseException:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise
    for path in encoded:
        _remove_abandoned_temporaries(path)


_WRITER = f"{socket.gethostname()}-{os.getpid()}"


def _temporary_prefix(name: str) -> str:
    """`.NAME.`, or for a name near the length limit `.~HASH.` (the temporary must fit too)."""
    prefix = f".{name}."
    if len(os.fsencode(f"{prefix}{_WRITER}.00000000.partial")) > NAME_MAX:
        prefix = f".~{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}."
    return prefix


def _remove_abandoned_temporaries(path: Path) -> None:
    host = socket.gethostname()
    prefix = _temporary_prefix(path.name)
    for stray in path.parent.glob(f"{glob.escape(prefix)}{glob.escape(host)}-*.partial"):
        pid = stray.name[len(f"{prefix}{host}-") :].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            stray.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
