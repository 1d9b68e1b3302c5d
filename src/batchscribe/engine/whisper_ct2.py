"""Whisper on CTranslate2: batched encode, generate and word alignment of 30 s windows.

Windows are decoded without timestamp tokens (faster, and the model skips less); word
times come from cross-attention alignment, which is what lets words be split between the
files packed into one window.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import numpy as np
import tokenizers
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

from batchscribe.engine.device import Placement
from batchscribe.errors import ModelError, OptionsError
from batchscribe.results import Word

FRAMES_PER_SECOND = 100  # mel frames
TOKENS_PER_SECOND = 50  # encoder positions
MAX_FRAMES = 3000
MAX_TOKENS = 448  # Whisper's decoder context
MAX_TOKENS_PER_SECOND = 15  # fast speech is 5-8; Japanese text runs higher
WINDOW_SECONDS = MAX_FRAMES / FRAMES_PER_SECOND
LANGUAGE_PROBE_MIN_SECONDS = 10.0
CONFIDENT_LANGUAGE = 0.5


@dataclass(frozen=True)
class DecodeOptions:
    task: str = "transcribe"
    beam_size: int = 5
    temperature: float = 0.0


@dataclass
class DecodedWindow:
    words: list[Word]  # times in window seconds
    text: str
    avg_logprob: float
    no_speech_prob: float

    @property
    def compression_ratio(self) -> float:
        """High values mean a repetition loop (Whisper's own hallucination test)."""
        data = self.text.encode("utf-8")
        return len(data) / len(zlib.compress(data)) if data else 0.0


class WhisperCT2:
    """Decoding and alignment on CTranslate2; the encoder on CTranslate2 or, on CPUs with bf16
    matrix units, on PyTorch (see torch_encoder.py), as `placement.encoder` says."""

    def __init__(self, model_path: Path, placement: Placement):
        try:
            self.model = ctranslate2.models.Whisper(
                str(model_path),
                device=placement.device,
                compute_type=placement.compute_type,
                intra_threads=placement.threads,
                inter_threads=placement.workers,
            )
        except (RuntimeError, ValueError) as error:
            raise ModelError(f"cannot load the model in {model_path}: {error}") from error
        tokenizer_file = model_path / "tokenizer.json"
        if not tokenizer_file.exists():
            raise ModelError(f"{model_path} has no tokenizer.json; copy it from the original Whisper model")
        self._hf_tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}
        self.mel = FeatureExtractor(feature_size=self.model.n_mels)
        self.is_multilingual = self.model.is_multilingual
        self.workers = placement.workers
        self._torch_encoder = None
        if placement.encoder == "torch-bf16":
            from batchscribe.engine.torch_encoder import Bf16Encoder

            self._torch_encoder = Bf16Encoder(model_path, placement.threads)

    def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
        if self._torch_encoder is not None:
            return ctranslate2.StorageView.from_array(self._torch_encoder(features))
        return self.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)

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
        """Log-mel features of one 30 s window (safe to call from another thread)."""
        return self.mel(window_audio, padding=0)[:, :MAX_FRAMES]

    def detect_language(self, features: np.ndarray, content_seconds: float = WINDOW_SECONDS) -> tuple[str, float]:
        """The most likely language and its probability.

        The PyTorch encoder can encode just the speech (at least 10 s) instead of a padded 30 s
        window: about 3x less work per file, and on 105 real files (8 languages) the same
        language every time. Its probabilities run lower, so an uncertain answer is checked on
        the full window, and that answer is the one kept.
        """
        if not self.is_multilingual:
            return "en", 1.0
        if self._torch_encoder is not None and content_seconds < WINDOW_SECONDS - LANGUAGE_PROBE_MIN_SECONDS:
            frames = int(np.ceil(max(content_seconds, LANGUAGE_PROBE_MIN_SECONDS) / 2)) * 2 * FRAMES_PER_SECOND
            encoded = ctranslate2.StorageView.from_array(self._torch_encoder(features[np.newaxis, :, :frames]))
            language, probability = self._top_language(encoded)
            if probability >= CONFIDENT_LANGUAGE:
                return language, probability
        return self._top_language(self.encode(features[np.newaxis]))

    def _top_language(self, encoded: ctranslate2.StorageView) -> tuple[str, float]:
        token, probability = self.model.detect_language(encoded)[0][0]
        return token[2:-2], probability

    def decode(
        self, features: np.ndarray, content_seconds: list[float], language: str, options: DecodeOptions
    ) -> list[DecodedWindow]:
        """Decode a batch of windows of one language; words carry window-relative times."""
        tokenizer = self.tokenizer(language, options.task)
        encoded = self.encode(features)
        prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        sampling = (
            {"beam_size": 1, "sampling_temperature": options.temperature, "sampling_topk": 0}
            if options.temperature > 0
            else {"beam_size": options.beam_size}
        )
        results = self.model.generate(
            encoded,
            [prompt] * len(features),
            max_length=_length_limit(max(content_seconds)),
            suppress_blank=True,
            suppress_tokens=[-1],  # the model's own list of non-speech tokens
            return_scores=True,
            return_no_speech_prob=True,
            **sampling,
        )
        texts = [[t for t in r.sequences_ids[0] if t < tokenizer.eot] for r in results]
        words = self._align(tokenizer, encoded, texts, content_seconds)
        return [
            DecodedWindow(words=w, text=tokenizer.decode(t), avg_logprob=r.scores[0], no_speech_prob=r.no_speech_prob)
            for w, t, r in zip(words, texts, results, strict=True)
        ]

    def _align(
        self,
        tokenizer: Tokenizer,
        encoded: ctranslate2.StorageView,
        texts: list[list[int]],
        content_seconds: list[float],
    ) -> list[list[Word]]:
        spoken = [i for i, t in enumerate(texts) if t]
        words: list[list[Word]] = [[] for _ in texts]
        if not spoken:
            return words
        if len(spoken) < len(texts):
            encoded = ctranslate2.StorageView.from_array(np.asarray(encoded)[spoken])
        frames = [min(MAX_FRAMES, int(round(content_seconds[i] * FRAMES_PER_SECOND))) for i in spoken]
        alignments = self.model.align(
            encoded, tokenizer.sot_sequence, [texts[i] for i in spoken], frames, median_filter_width=7
        )
        for i, alignment in zip(spoken, alignments, strict=True):
            words[i] = _words_from_alignment(tokenizer, texts[i], alignment)
        return words


def _length_limit(content_seconds: float) -> int:
    """Room for the densest plausible speech in `content_seconds`, not for a long repetition loop.

    CTranslate2 generates at most max_length / 2 tokens (Whisper's sample_len of 224). A window
    with 3 s of audio that falls into a loop would otherwise decode 224 tokens (x beam size, at
    every fallback temperature) before being thrown away.
    """
    return min(MAX_TOKENS, 2 * (int(content_seconds * MAX_TOKENS_PER_SECOND) + 16))


def _words_from_alignment(tokenizer: Tokenizer, text: list[int], alignment) -> list[Word]:
    """Turn token-level DTW alignment into word timings (as openai-whisper's timing.py does)."""
    word_texts, word_tokens = tokenizer.split_to_word_tokens(text + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    text_indices = np.array([pair[0] for pair in alignment.alignments])
    time_indices = np.array([pair[1] for pair in alignment.alignments])
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    starts = jump_times[boundaries[:-1]]
    ends = jump_times[boundaries[1:]]
    probabilities = alignment.text_token_probs
    spoken = word_texts[:-1]  # the last "word" is the end-of-text token
    return attach_punctuation(
        [
            Word(float(s), float(e), w, float(np.mean(probabilities[i:j])) if j > i else 0.0)
            for w, s, e, i, j in zip(spoken, starts, ends, boundaries[:-1], boundaries[1:], strict=True)
        ]
    )


OPENING = set("\"'“¿([{«")


def attach_punctuation(words: list[Word]) -> list[Word]:
    """Punctuation joins its word, keeping that word's times (as Whisper's own timing does).

    Alignment places a closing "." in the pause after a sentence; left alone it could be
    given to the next file packed into the same window.
    """
    merged: list[Word] = []
    opening = ""
    for word in words:
        text = word.word.strip()
        if text and not any(ch.isalnum() for ch in text):
            if all(ch in OPENING for ch in text):
                opening += word.word
                continue
            if merged:
                last = merged[-1]
                merged[-1] = Word(last.start, last.end, last.word + text, min(last.probability, word.probability))
                continue
        if opening:
            lead = " " if opening.startswith(" ") or word.word.startswith(" ") else ""
            word = Word(word.start, word.end, lead + opening.strip() + word.word.lstrip(), word.probability)
            opening = ""
        merged.append(word)
    return merged
