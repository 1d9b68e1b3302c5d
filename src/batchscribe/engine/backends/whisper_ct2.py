"""Whisper on CTranslate2: batched encode, generate and word alignment of 30 s windows.

Windows are decoded without timestamp tokens (faster, and the model skips less); word
times come from cross-attention alignment, which is what lets words be split between the
files packed into one window.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper.tokenizer import Tokenizer

from batchscribe.engine.backends.base import (
    FRAMES_PER_SECOND,
    MAX_FRAMES,
    MAX_TOKENS,
    DecodedWindow,
    DecodeOptions,
    Engine,
    new_token_limit,
)
from batchscribe.engine.placement import Placement
from batchscribe.engine.backends.timing import words_from_alignment
from batchscribe.errors import ModelError
from batchscribe.results import Word

# CTranslate2's align() smooths the attention with a median filter before DTW; openai-whisper's width 7
# made it 36% of align's cost, and align about a quarter of beam-5 generate's. Width 3 costs 25% less
# (tiny.en, 4 windows of the 513 s file: 0.55 -> 0.42 CPU s) with the same words and WER on the 60 short
# files, the 513 s and 231 s files, and the same utterance boundaries (bench/results/speed-ab/levers.md).
ALIGN_MEDIAN_FILTER_WIDTH = 3


class WhisperCT2(Engine):
    """Decoding and alignment on CTranslate2; the encoder on CTranslate2 or, on CPUs with bf16
    matrix units, on PyTorch (see torch_encoder.py), as `placement.encoder` says."""

    def __init__(self, model_path: Path, placement: Placement):
        self._torch_encoder = None
        if placement.encoder != "torch-bf16":
            self.model = _load_model(model_path, placement)
        else:
            # CTranslate2 loads its model without the GIL, so it overlaps `import torch`: tiny.en
            # ready in 1.85-1.92 s instead of 2.19-2.29 s (2-core AMX Xeon, bench/results/speed-ab/levers.md)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchscribe-ct2-load") as loader:
                loading = loader.submit(_load_model, model_path, placement)
                try:
                    from batchscribe.engine.backends.torch_encoder import Bf16Encoder

                    self._torch_encoder = Bf16Encoder(model_path, placement.threads)
                except Exception:
                    loading.result()  # a model CTranslate2 cannot load says so first, as a ModelError
                    raise
                self.model = loading.result()
        super().__init__(model_path, self.model.n_mels, self.model.is_multilingual, placement.workers)

    def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
        if self._torch_encoder is not None:
            return ctranslate2.StorageView.from_array(self._torch_encoder(features))
        return self.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)

    @property
    def encodes_speech_alone(self) -> bool:
        return self._torch_encoder is not None

    def _language_of(self, features: np.ndarray) -> tuple[str, float]:
        """Shorter than 3000 frames only with the torch encoder (encodes_speech_alone), which encode uses."""
        token, probability = self.model.detect_language(self.encode(features[np.newaxis]))[0][0]
        return token[2:-2], probability

    def decode(
        self, features: np.ndarray, content_seconds: list[float], language: str, options: DecodeOptions
    ) -> list[DecodedWindow]:
        """Decode a batch of windows of one language; words carry window-relative times."""
        tokenizer = self.tokenizer(language, options.task)
        encoded = self.encode(features)
        prompt = options.prompt(tokenizer)
        sampling = (
            {"beam_size": 1, "sampling_temperature": options.temperature, "sampling_topk": 0}
            if options.temperature > 0
            else {"beam_size": options.beam_size}
        )
        limit = new_token_limit(max(content_seconds))
        results = self.model.generate(
            encoded,
            [prompt] * len(features),
            max_length=generation_length(limit, len(prompt)),
            suppress_blank=True,
            suppress_tokens=list(options.suppress_tokens),  # -1: the model's own list of non-speech tokens
            return_scores=True,
            return_no_speech_prob=True,
            **sampling,
        )
        texts = [[t for t in r.sequences_ids[0] if t < tokenizer.eot] for r in results]
        words = self._align(tokenizer, encoded, texts, content_seconds)
        detected: list = [None] * len(results)
        if options.detect_language and self.is_multilingual:  # one decoder step on the encoding at hand
            detected = [(best[0][0][2:-2], best[0][1]) for best in self.model.detect_language(encoded)]
        return [
            DecodedWindow(w, tokenizer.decode(t), r.scores[0], r.no_speech_prob, t, options.temperature, d)
            for w, t, r, d in zip(words, texts, results, detected, strict=True)
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
            encoded, tokenizer.sot_sequence, [texts[i] for i in spoken], frames,
            median_filter_width=ALIGN_MEDIAN_FILTER_WIDTH,
        )
        for i, alignment in zip(spoken, alignments, strict=True):
            path = np.array(alignment.alignments).reshape(-1, 2)
            words[i] = words_from_alignment(
                tokenizer, texts[i], path[:, 0], path[:, 1], np.asarray(alignment.text_token_probs)
            )
        return words


def _load_model(model_path: Path, placement: Placement) -> ctranslate2.models.Whisper:
    """Raises ModelError when CTranslate2 cannot load the model in `model_path`."""
    try:
        return ctranslate2.models.Whisper(
            str(model_path),
            device=placement.device,
            compute_type=placement.compute_type,
            intra_threads=placement.threads,
            inter_threads=placement.workers,
        )
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"cannot load the model in {model_path}: {error}") from error


def generation_length(limit: int, prompt_tokens: int) -> int:
    """CTranslate2's max_length for at most `limit` new tokens after a prompt of `prompt_tokens`.

    Whisper generates min(max_length / 2, max_length - prompt_tokens + 1) tokens in CTranslate2
    (its whisper.cc; measured on tiny.en): twice the limit, unless a long --initial-prompt leaves
    less (a prompt of half the context before a 3 s window left none, and the run ended in an
    IndexError). Never past the decoder's MAX_TOKENS positions, which it has no encoding beyond.
    """
    return min(MAX_TOKENS, max(2 * limit, limit + prompt_tokens - 1))
