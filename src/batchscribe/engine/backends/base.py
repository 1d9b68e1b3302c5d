"""The engine's interface: what every backend decodes with and returns (options, decoded windows),
the Engine base class every backend derives from (the batching above relies on it alone), and the
limits shared by all backends."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import tokenizers
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

from batchscribe.audio import SpeechPiece
from batchscribe.engine.windows import WINDOW_SECONDS, lay_out
from batchscribe.errors import ModelError, OptionsError
from batchscribe.results import Word

FRAMES_PER_SECOND = 100  # mel frames
TOKENS_PER_SECOND = 50  # encoder positions
MAX_FRAMES = int(WINDOW_SECONDS * FRAMES_PER_SECOND)  # 3000
MAX_TOKENS = 448  # Whisper's decoder context
MAX_TOKENS_PER_SECOND = 15  # fast speech is 5-8; Japanese text runs higher
CONFIDENT_LANGUAGE = 0.5
LANGUAGE_PROBE_MIN_SECONDS = 10.0


@dataclass(frozen=True)
class DecodeOptions:
    """How windows are decoded; the thresholds are openai-whisper's (None turns a test off)."""

    task: str = "transcribe"
    beam_size: int = 5
    temperature: float = 0.0  # of this attempt; the batching above tries `temperatures` in turn
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    initial_prompt: str | None = None  # text given before each window (openai-whisper's initial_prompt)
    hotwords: str | None = None  # faster-whisper's hotwords: before the prompt, after <|startofprev|>
    suppress_tokens: tuple[int, ...] = (-1,)  # -1: the model's own non-speech symbols
    detect_language: bool = False  # also say which language each window sounds like (DecodedWindow.detected)

    def prompt(self, tokenizer: Tokenizer) -> list[int]:
        """The decoder prompt, as faster-whisper builds it: [<|startofprev|> hotwords prompt] then
        the start sequence, without timestamps. The previous text is at most half the context."""
        previous: list[int] = []
        if self.hotwords and self.hotwords.strip():
            previous += tokenizer.encode(" " + self.hotwords.strip())
        if self.initial_prompt and self.initial_prompt.strip():
            previous += tokenizer.encode(" " + self.initial_prompt.strip())
        head = [tokenizer.sot_prev, *previous[-(MAX_TOKENS // 2 - 1) :]] if previous else []
        return head + list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]


@dataclass
class DecodedWindow:
    words: list[Word]  # times in window seconds
    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: list[int] = field(default_factory=list)  # the text's tokens
    temperature: float = 0.0
    detected: tuple[str, float] | None = None  # the window's most likely language and its probability

    @property
    def compression_ratio(self) -> float:
        """High values mean a repetition loop (Whisper's own hallucination test)."""
        data = self.text.encode("utf-8")
        return len(data) / len(zlib.compress(data)) if data else 0.0


class LogMel:
    """Log-mel features of 30 s windows (safe to call from another thread). Needs only the
    model's mel count, so the audio thread computes them while the model loads."""

    def __init__(self, n_mels: int):
        self._extractor = FeatureExtractor(feature_size=n_mels)

    def features(self, window_audio: np.ndarray) -> np.ndarray:
        return self._extractor(window_audio, padding=0)[:, :MAX_FRAMES]


class Engine:
    """A loaded Whisper model, whichever library runs it (backends/__init__.py loads one).

    Every backend derives from it: it gives log-mel features, tokenizers per language and task
    and language detection; a backend adds `decode` and `_language_of`. `workers` batches can be
    decoded at once, from as many threads.
    """

    workers: int
    is_multilingual: bool

    def __init__(self, model_path: Path, n_mels: int, multilingual: bool, workers: int):
        tokenizer_file = model_path / "tokenizer.json"
        if not tokenizer_file.exists():
            raise ModelError(f"{model_path} has no tokenizer.json; copy it from the original Whisper model")
        self._hf_tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}
        self.mel = LogMel(n_mels)
        self.is_multilingual = multilingual
        self.workers = workers

    def tokenizer(self, language: str, task: str) -> Tokenizer:
        if not self.is_multilingual and (language != "en" or task != "transcribe"):
            raise OptionsError(
                f"this model is English-only: it cannot {task} '{language}' audio; "
                "use a multilingual model such as base"
            )
        key = (language, task)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(self._hf_tokenizer, self.is_multilingual, task=task, language=language)
        return self._tokenizers[key]

    def features(self, window_audio: np.ndarray) -> np.ndarray:
        return self.mel.features(window_audio)

    encodes_speech_alone = False  # whether _language_of takes fewer than 3000 frames

    def detect_language(self, pieces: Sequence[SpeechPiece]) -> tuple[str, float]:
        """The language spoken in `pieces` (a file's first speech, in order, or one piece) and its
        probability (0-1); an English-only model hears English.

        The pieces are laid in one window as the packer lays them (windows.lay_out: 1 s apart,
        as many as fit); those heard are marked `language_probed`, so the code-switching check
        (batching/batch.py) does not ask again about them.
        """
        if not self.is_multilingual:
            return "en", 1.0
        window = lay_out(pieces)
        for ref in window.pieces:
            ref.piece.language_probed = True
        return self.language_in_window(self.features(window.audio()), window.end)

    def language_in_window(self, features: np.ndarray, content_seconds: float = WINDOW_SECONDS) -> tuple[str, float]:
        """The most likely language of one window's (n_mels, 3000) features, whose speech ends at
        `content_seconds`, and its probability.

        An encoder that takes any length (PyTorch's) encodes just the speech (at least 10 s)
        instead of a padded 30 s window: about 3x less work per file, and on 105 real files
        (8 languages) the same language every time. Its probabilities run lower, so an uncertain
        answer is checked on the full window, and that answer is the one kept.
        """
        if not self.is_multilingual:
            return "en", 1.0
        if self.encodes_speech_alone and content_seconds < WINDOW_SECONDS - LANGUAGE_PROBE_MIN_SECONDS:
            frames = int(np.ceil(max(content_seconds, LANGUAGE_PROBE_MIN_SECONDS) / 2)) * 2 * FRAMES_PER_SECOND
            language, probability = self._language_of(features[:, :frames])
            if probability >= CONFIDENT_LANGUAGE:
                return language, probability
        return self._language_of(features)

    def _language_of(self, features: np.ndarray) -> tuple[str, float]:
        """The most likely language of (n_mels, frames) features and its probability."""
        raise NotImplementedError

    def decode(
        self, features: np.ndarray, content_seconds: list[float], language: str, options: DecodeOptions
    ) -> list[DecodedWindow]:
        """Decode a batch of windows, (windows, n_mels, 3000) features, all in `language`; each
        window's words carry window-relative times and lie within its `content_seconds`."""
        raise NotImplementedError


def new_token_limit(content_seconds: float) -> int:
    """Room for the densest plausible speech in `content_seconds`, not for a long repetition loop.

    A window with 3 s of audio that falls into a loop would otherwise decode Whisper's full
    224 tokens (x beam size, at every fallback temperature) before being thrown away.
    """
    return min(MAX_TOKENS // 2, int(content_seconds * MAX_TOKENS_PER_SECOND) + 16)
