"""User-facing options for one transcription run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

ENCODERS = ("auto", "ct2", "torch")  # engine/device.py says what each means
BACKENDS = ("auto", "ct2", "torch")

FORMATS = ("txt", "srt", "vtt", "json")
OPTIONAL_FORMATS = ("rttm",)  # written only when asked for: speaker turns (with --diarize / --speakers)


@dataclass(frozen=True)
class TranscribeOptions:
    """What to transcribe with and how; defaults are the tuned ones (see bench/)."""

    model: str = "tiny.en"
    language: Optional[str] = None  # None: detect per file
    task: Literal["transcribe", "translate"] = "transcribe"
    formats: tuple[str, ...] = FORMATS
    word_timestamps: bool = False
    beam_size: int = 5
    batch_size: int = 0  # 30 s windows per model call; 0: the backend's best (engine/device.py)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    threads: int = 0  # 0: one per available core
    encoder: Literal["auto", "ct2", "torch"] = "auto"  # torch: bf16 encoder on AMX CPUs (see engine/device.py)
    backend: Literal["auto", "ct2", "torch"] = "auto"  # the library that runs the model (see engine/device.py)
    overwrite: bool = False
    # Who spoke when (see speakers/): "" none, "diarize" (speaker embeddings, clustered per file) or
    # "channels" (each channel transcribed on its own); the counts bound diarization's estimate.
    speakers: Literal["", "diarize", "channels"] = ""
    num_speakers: Optional[int] = None
    min_speakers: int = 1
    max_speakers: int = 10
    speaker_model: str = "resemblyzer"
    audio_track: int = 1  # which audio track of a media file, counted from 1; 0: all, each a speaker

    def output_settings(self) -> dict:
        """The settings that change a transcript's content (used to decide whether to skip)."""
        settings = asdict(self)
        for runtime_only in ("batch_size", "device", "compute_type", "threads", "overwrite", "formats", "encoder",
                             "backend"):
            settings.pop(runtime_only)
        if self.audio_track == 1:  # the default: transcripts made before the option existed stay up to date
            settings.pop("audio_track")
        if not self.speakers:  # transcripts made before speaker labels existed stay up to date
            for speaker_setting in ("speakers", "num_speakers", "min_speakers", "max_speakers", "speaker_model"):
                settings.pop(speaker_setting)
        elif self.speakers == "channels":
            for diarization_only in ("num_speakers", "min_speakers", "max_speakers", "speaker_model"):
                settings.pop(diarization_only)
        return settings
