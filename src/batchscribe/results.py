"""Typed results shared by the engine, the writers and the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Optional

from batchscribe.errors import is_bad_input


@dataclass(frozen=True)
class Word:
    """One word with its time in the source file (seconds) and model confidence."""

    start: float
    end: float
    word: str
    probability: float
    tokens: tuple[int, ...] = field(default=(), compare=False, repr=False)  # the model's tokens for it
    speaker: Optional[str] = None  # with --diarize / --speakers: SPEAKER_1, left, a track's title...
    language: Optional[str] = None  # set where it differs from what the file was detected as (code-switching)


@dataclass(frozen=True)
class Segment:
    """A span of speech; the decoding fields are openai-whisper's, of the 30 s window it was
    decoded in (shared by every segment and file packed into that window), None when unknown."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: Optional[str] = None  # one speaker per segment: segments are cut where the speaker changes
    tokens: tuple[int, ...] = ()
    seek: Optional[int] = None  # the window's start in the source, in 10 ms frames
    temperature: Optional[float] = None
    avg_logprob: Optional[float] = None
    compression_ratio: Optional[float] = None
    no_speech_prob: Optional[float] = None
    lines: tuple[str, ...] = ()  # the text as subtitle lines (outputs/segments.py); () : one line
    language: Optional[str] = None  # None: the transcript's language (a segment is in one language)


@dataclass(frozen=True)
class AudioTrack:
    """One audio track of a media file; `index` counts audio tracks from 1, as --audio-track does."""

    index: int
    title: Optional[str] = None
    language: Optional[str] = None  # the container's tag (e.g. "eng"), None when absent or "und"
    transcribed: bool = False

    @property
    def label(self) -> str:
        """E.g. "track 2 ('Guest mic', eng)", as the summary and errors name it."""
        details = ", ".join(d for d in (repr(self.title) if self.title else None, self.language) if d)
        return f"track {self.index}" + (f" ({details})" if details else "")


@dataclass(frozen=True)
class SourceAudio:
    """What the audio front end found and did: which track, where it starts, what the downmix fixed."""

    tracks: tuple[AudioTrack, ...] = ()
    start: float = 0.0  # seconds on the media's timeline (a player's clock) where the audio track begins
    channels: int = 1
    polarity_corrected_seconds: float = 0.0  # audio in which a channel was flipped so as not to cancel the mix

    @property
    def left_out(self) -> tuple[AudioTrack, ...]:
        return tuple(t for t in self.tracks if not t.transcribed)

    def notes(self) -> list[str]:
        """What a user should hear about, one sentence each (tracks left out, a corrected downmix)."""
        notes = []
        if self.left_out:
            chosen = ", ".join(t.label for t in self.tracks if t.transcribed)
            others = ", ".join(t.label for t in self.left_out)
            notes.append(
                f"{len(self.tracks)} audio tracks; transcribed {chosen}; left out {others} "
                f"(--audio-track N picks another)"
            )
        if self.polarity_corrected_seconds > 0:
            notes.append(
                f"its {self.channels} channels cancelled each other when mixed to mono (a polarity-inverted channel) "
                f"in {self.polarity_corrected_seconds:.1f} s of audio; transcribed their sign-corrected sum there"
            )
        return notes


@dataclass(frozen=True)
class Transcript:
    """Everything known about one transcribed file."""

    segments: tuple[Segment, ...]
    language: Optional[str]  # None: not detected (no speech under a multilingual model)
    language_probability: Optional[float]  # None: never measured (given, English-only model, no speech)
    duration: float
    audio: SourceAudio = SourceAudio()
    # (start s, end s, speaker) of each stretch of speech, with --diarize / --speakers: the speech
    # detector's times, which cover speech the words' times miss (the RTTM output)
    speaker_turns: tuple[tuple[float, float, str], ...] = ()
    warnings: tuple[str, ...] = ()  # what this transcript cannot vouch for (confidence.py)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()


FileStatus = Literal["ok", "failed", "skipped"]


class FailureKind(str, Enum):
    """Why a file failed, as a retry policy needs it (see errors.is_bad_input)."""

    BAD_INPUT = "bad input"  # the same bytes fail the same way every time: never retried
    TRANSIENT = "transient"  # storage, network, memory, the model: another attempt may succeed

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, error: BaseException) -> "FailureKind":
        return cls.BAD_INPUT if is_bad_input(error) else cls.TRANSIENT


@dataclass
class FileResult:
    source: str
    status: FileStatus
    outputs: dict[str, str] = field(default_factory=dict)  # format -> where it was stored (a path or a URI)
    transcript: Optional[Transcript] = None
    error: Optional[str] = None
    audio_seconds: float = 0.0
    failure: Optional[FailureKind] = None  # set when status is "failed"


@dataclass
class RunSummary:
    results: list[FileResult]
    wall_seconds: float
    model: str
    device: str
    compute_type: str
    encoder: str = "ct2"
    backend: str = "ct2"
    model_load_seconds: float = 0.0

    def count(self, status: FileStatus) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def audio_seconds(self) -> float:
        return sum(r.audio_seconds for r in self.results if r.status == "ok")

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    @property
    def warned(self) -> int:
        return sum(1 for r in self.results if r.transcript is not None and r.transcript.warnings)

    def line(self) -> str:
        warned = f" ({self.warned} with warnings, see their JSON)" if self.warned else ""
        if not self.count("ok"):  # nothing was transcribed: no speed or model load to report
            return f"{self.count('ok')} ok, {self.count('failed')} failed, {self.count('skipped')} skipped"
        return (
            f"{self.count('ok')} ok{warned}, {self.count('failed')} failed, {self.count('skipped')} skipped; "
            f"{self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s "
            f"(RTFx {self.rtfx:.1f}) with {self.model} on {self.device}/{self.compute_type} "
            f"(backend: {self.backend}, encoder: {self.encoder}), "
            f"model loaded in {self.model_load_seconds:.2f} s"
        )
