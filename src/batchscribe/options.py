"""User-facing options for one transcription run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

ENCODERS = ("auto", "ct2", "torch")  # engine/placement.py says what each means
BACKENDS = ("auto", "ct2", "torch")

FORMATS = ("txt", "srt", "vtt", "json", "tsv")
DEFAULT_FORMATS = ("txt", "srt", "vtt", "json")  # `all` (as openai-whisper's --output_format all) adds tsv
OPTIONAL_FORMATS = ("rttm",)  # written only when asked for: speaker turns (with --diarize / --speakers)


@dataclass(frozen=True)
class TranscribeOptions:
    """What to transcribe with and how; defaults are the tuned ones (see bench/)."""

    model: str = "tiny.en"
    language: Optional[str] = None  # None: detect per file
    task: Literal["transcribe", "translate"] = "transcribe"
    formats: tuple[str, ...] = DEFAULT_FORMATS
    word_timestamps: bool = False
    beam_size: int = 5
    batch_size: int = 0  # 30 s windows per model call; 0: the backend's best (engine/placement.py)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    threads: int = 0  # 0: one per available core
    audio_workers: int = 0  # files decoded at once (audio/readahead.py); 0: the cores the model leaves free, >= 1
    encoder: Literal["auto", "ct2", "torch"] = "auto"  # torch: bf16 encoder on AMX CPUs (see engine/placement.py)
    backend: Literal["auto", "ct2", "torch"] = "auto"  # the library that runs the model (see engine/placement.py)
    overwrite: bool = False
    # Who spoke when (see speakers/): "" none, "diarize" (speaker embeddings, clustered per file) or
    # "channels" (each channel transcribed on its own); the counts bound diarization's estimate.
    speakers: Literal["", "diarize", "channels"] = ""
    num_speakers: Optional[int] = None
    min_speakers: int = 1
    max_speakers: int = 10
    speaker_model: str = "resemblyzer"
    audio_track: int = 1  # which audio track of a media file, counted from 1; 0: all, each a speaker
    # Decoding controls, with openai-whisper's names and meanings (README: "Decoding controls").
    initial_prompt: Optional[str] = None  # text before each window of a file: spelling, names, style
    hotwords: Optional[str] = None  # faster-whisper's: words to prefer, given before the prompt
    temperature: float = 0.0  # the first attempt's; 0 is beam search
    temperature_increment_on_fallback: Optional[float] = 0.2  # None: no fallback
    compression_ratio_threshold: Optional[float] = 2.4  # None: no repetition test
    logprob_threshold: Optional[float] = -1.0  # None: no confidence test
    no_speech_threshold: Optional[float] = 0.6  # None: no silence test
    condition_on_previous_text: bool = False  # see README: not with packed windows
    suppress_tokens: str = "-1"  # comma list of token ids; -1: the model's non-speech symbols
    vad_filter: bool = True  # False: every 28 s of audio is decoded, speech or not
    vad_threshold: float = 0.5
    vad_min_speech_duration_ms: int = 0
    vad_min_silence_duration_ms: int = 500
    vad_speech_pad_ms: int = 300
    highlight_words: bool = False  # SRT/VTT: one cue per word with it underlined (needs word times)
    packing: bool = True  # False: every file in windows and batches of its own (its transcript alone)

    def temperatures(self) -> tuple[float, ...]:
        """The temperatures tried in turn, as openai-whisper's CLI builds them."""
        if not self.temperature_increment_on_fallback:
            return (self.temperature,)
        steps = int((1.0 + 1e-6 - self.temperature) / self.temperature_increment_on_fallback) + 1
        return tuple(round(self.temperature + i * self.temperature_increment_on_fallback, 6) for i in range(steps))

    def suppress_token_ids(self) -> tuple[int, ...]:
        """openai-whisper's --suppress_tokens: comma-separated token ids; -1 is the model's non-speech set.

        Raises OptionsError for anything else."""
        try:
            return tuple(int(t) for t in self.suppress_tokens.split(",") if t.strip())
        except ValueError:
            from batchscribe.errors import OptionsError

            raise OptionsError(
                f"--suppress-tokens takes comma-separated token ids (-1 or -1,50256), not {self.suppress_tokens!r}"
            ) from None
    # subtitle cues (outputs/segments.py), openai-whisper's option names; they shape every format's segments
    max_line_width: int = 42
    max_line_count: int = 2
    max_words_per_line: Optional[int] = None

    def output_settings(self) -> dict:
        """The settings that change a transcript's content, as every JSON records them. The resume key
        adds the backend and batch size the Transcriber resolved (pipeline/transcriber.py
        settings_runtime; sinks/base.py SettingsKeys), which change it too.

        Decoding controls appear only when changed, so outputs written before they existed are
        still recognised as up to date."""
        settings = asdict(self)
        for runtime_only in ("batch_size", "device", "compute_type", "threads", "audio_workers", "overwrite", "formats",
                             "encoder", "backend"):
            settings.pop(runtime_only)
        for name in _LATER_SETTINGS:
            if settings[name] == _DEFAULTS[name]:
                settings.pop(name)
        if not self.speakers:  # transcripts made before speaker labels existed stay up to date
            for speaker_setting in ("speakers", "num_speakers", "min_speakers", "max_speakers", "speaker_model"):
                settings.pop(speaker_setting)
        elif self.speakers == "channels":
            for diarization_only in ("num_speakers", "min_speakers", "max_speakers", "speaker_model"):
                settings.pop(diarization_only)
        return settings


_LATER_SETTINGS = (
    "initial_prompt", "hotwords", "temperature", "temperature_increment_on_fallback", "compression_ratio_threshold",
    "logprob_threshold", "no_speech_threshold", "condition_on_previous_text", "suppress_tokens", "vad_filter",
    "vad_threshold", "vad_min_speech_duration_ms", "vad_min_silence_duration_ms", "vad_speech_pad_ms",
    "highlight_words", "packing", "audio_track", "max_line_width", "max_line_count", "max_words_per_line",
)  # fmt: skip
_DEFAULTS = asdict(TranscribeOptions())
