"""Whisper on PyTorch with transformers' model classes: bf16 on CPUs with AMX, fp16 on CUDA.

The same contract as whisper_ct2.py: windows are decoded without timestamp tokens by batched
beam search over a KV cache (or by sampling, for the temperature fallback), and word times come
from the alignment heads' cross-attention, matched to the audio by dynamic time warping.
transformers' own generate() is not used: it cannot give each window its own stopping point,
and its long-form logic (fallback, prompts, timestamps) is already done above the engine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from dtw import dtw
from faster_whisper.tokenizer import Tokenizer
from transformers import AttentionInterface, DynamicCache, EncoderDecoderCache, WhisperForConditionalGeneration
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.utils import logging as transformers_logging

from batchscribe.engine.decoding import (
    TOKENS_PER_SECOND,
    WINDOW_SECONDS,
    DecodedWindow,
    DecodeOptions,
    TextAndFeatures,
    new_token_limit,
)
from batchscribe.engine.device import Placement
from batchscribe.engine.timing import words_from_alignment
from batchscribe.errors import ModelError
from batchscribe.results import Word

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MEDIAN_FILTER_WIDTH = 7

transformers_logging.set_verbosity_error()
transformers_logging.disable_progress_bar()


def _beams_share_encoder(module, query, key, value, attention_mask, **kwargs):
    """transformers' sdpa attention, except where the beams of a window (query rows) outnumber the
    cached cross-attention rows (one per window): then each window's beams are its query positions.

    Each decoding step reads every row's 1,500 encoder keys and values; with 5 beams per window
    that was 5 copies of the same memory, over half of a step's time on a CPU.
    """
    windows, rows = key.shape[0], query.shape[0]
    if windows == rows:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    width = rows // windows
    _, heads, length, size = query.shape
    shared = query.view(windows, width, heads, length, size).transpose(1, 2).reshape(windows, heads, -1, size)
    output, _ = sdpa_attention_forward(module, shared, key, value, None, **kwargs)
    return output.reshape(rows, length, heads, size), None


AttentionInterface.register("beams_share_encoder", _beams_share_encoder)


class _Float32Conv(torch.nn.Module):
    """The encoder's first convolution reads the raw log-mel; in bf16 its rounding alone costs
    accuracy (tiny.en, 513 s long-form: WER 12.2% against 11.7%) for 1.5% of the encoder's work."""

    def __init__(self, conv: torch.nn.Conv1d, out_dtype: torch.dtype):
        super().__init__()
        self.conv = conv.float()
        self.stride = conv.stride  # transformers reads it to check the input length
        self.out_dtype = out_dtype

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.conv(mel.float()).to(self.out_dtype)


@dataclass
class _Hypothesis:
    tokens: list[int]
    logprob: float

    @property
    def score(self) -> float:
        """Mean log-probability per token, end-of-text included (faster-whisper's avg_logprob)."""
        return self.logprob / (len(self.tokens) + 1)


class WhisperTorch(TextAndFeatures):
    """A transformers Whisper model in `model_path` (Hugging Face layout), run by PyTorch."""

    def __init__(self, model_path: Path, placement: Placement):
        torch.set_num_threads(placement.threads)
        self.device = torch.device(placement.device)
        self.dtype = DTYPES[placement.compute_type]
        try:
            model = WhisperForConditionalGeneration.from_pretrained(
                model_path, dtype=self.dtype, attn_implementation="beams_share_encoder"
            )
        except (OSError, ValueError) as error:
            raise ModelError(f"cannot load the Hugging Face Whisper model in {model_path}: {error}") from error
        model.eval().to(self.device)
        encoder = model.model.encoder
        self._feature_dtype = self.dtype
        if self.dtype == torch.bfloat16:
            encoder.conv1 = _Float32Conv(encoder.conv1, self.dtype)
            self._feature_dtype = torch.float32
        self.model = model
        config, generation = model.config, model.generation_config
        super().__init__(model_path, config.num_mel_bins, config.vocab_size > 51864, placement.workers)
        self._eot = config.eos_token_id
        specials = range(self._eot + 1, config.vocab_size)  # start, language, task and timestamp tokens
        self._suppress = self._mask(list(generation.suppress_tokens or []) + list(specials))
        self._suppress_first = self._suppress + self._mask(list(generation.begin_suppress_tokens or [self._eot]))
        self._languages = dict(getattr(generation, "lang_to_id", None) or {})
        heads = getattr(generation, "alignment_heads", None) or [
            [layer, head]
            for layer in range(config.decoder_layers // 2, config.decoder_layers)
            for head in range(config.decoder_attention_heads)
        ]  # CTranslate2's default when a model names none
        self._alignment_heads = [(int(layer), int(head)) for layer, head in heads]
        self._queries = threading.local()  # alignment reads cross-attention queries per thread
        for layer in {layer for layer, _ in self._alignment_heads}:
            attention = model.model.decoder.layers[layer].encoder_attn
            attention.q_proj.register_forward_hook(self._query_hook(layer, attention.scaling))

    def _mask(self, tokens: list[int]) -> torch.Tensor:
        mask = torch.zeros(self.model.config.vocab_size, device=self.device)
        mask[[t for t in tokens if 0 <= t < len(mask)]] = -torch.inf
        return mask

    def _query_hook(self, layer: int, scaling: float):
        def keep(_module, _inputs, output: torch.Tensor) -> None:
            captured = getattr(self._queries, "by_layer", None)
            if captured is not None:
                captured[layer] = output.float() * scaling

        return keep

    def encode(self, features: np.ndarray) -> torch.Tensor:
        mel = torch.from_numpy(features).to(self.device, self._feature_dtype)
        with torch.inference_mode():
            return self.model.model.encoder(mel).last_hidden_state

    def _decoder(self, tokens: torch.Tensor, encoded: torch.Tensor, cache: EncoderDecoderCache) -> torch.Tensor:
        return self.model.model.decoder(
            input_ids=tokens, encoder_hidden_states=encoded, cache=cache, use_cache=True
        ).last_hidden_state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.proj_out(hidden).float()

    def detect_language(self, features: np.ndarray, content_seconds: float = WINDOW_SECONDS) -> tuple[str, float]:
        """The most likely language of a 30 s window and its probability."""
        if not self.is_multilingual or not self._languages:
            return "en", 1.0
        sot = self.tokenizer("en", "transcribe").sot
        with torch.inference_mode():
            encoded = self.encode(features[np.newaxis])
            tokens = torch.tensor([[sot]], device=self.device)
            logits = self._logits(self._decoder(tokens, encoded, _new_cache())[0, -1])
        names, ids = list(self._languages), list(self._languages.values())
        probabilities = logits[ids].softmax(-1)
        best = int(probabilities.argmax())
        return names[best][2:-2], float(probabilities[best])

    def decode(
        self, features: np.ndarray, content_seconds: list[float], language: str, options: DecodeOptions
    ) -> list[DecodedWindow]:
        """Decode a batch of windows of one language; words carry window-relative times."""
        tokenizer = self.tokenizer(language, options.task)
        prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        with torch.inference_mode():
            encoded = self.encode(features)
            best, no_speech = self._search(
                encoded,
                prompt,
                new_token_limit(max(content_seconds)),
                1 if options.temperature > 0 else options.beam_size,
                options.temperature,
                tokenizer.no_speech,
            )
            texts = [h.tokens for h in best]
            words = self._align(tokenizer, encoded, texts, content_seconds)
        return [
            DecodedWindow(words=w, text=tokenizer.decode(h.tokens), avg_logprob=h.score, no_speech_prob=p)
            for w, h, p in zip(words, best, no_speech, strict=True)
        ]

    def _search(
        self,
        encoded: torch.Tensor,
        prompt: list[int],
        limit: int,
        width: int,
        temperature: float,
        no_speech_token: int,
    ) -> tuple[list[_Hypothesis], list[float]]:
        """Beam search (or sampling when `temperature` > 0) for every window at once.

        A window stops when `width` hypotheses have ended (patience 1, as in faster-whisper) and
        leaves the batch. The cross-attention cache keeps one row per window, shared by its beams
        (see _beams_share_encoder); only the self-attention cache follows the beams.
        """
        windows = encoded.shape[0]
        cache = _new_cache()
        hidden = self._decoder(torch.tensor([prompt] * windows, device=self.device), encoded, cache)
        first = self._logits(hidden[:, [0, -1]])
        no_speech = first[:, 0].softmax(-1)[:, no_speech_token].tolist()
        logprobs = F.log_softmax(first[:, 1] + self._suppress_first, dim=-1)
        tokens = _choose(logprobs, width, temperature)
        cache.self_attention_cache.batch_repeat_interleave(width)
        beams = [[_Hypothesis([t], float(logprobs[w, t])) for t in tokens[w].tolist()] for w in range(windows)]
        finished: list[list[_Hypothesis]] = [[] for _ in range(windows)]
        active = list(range(windows))
        vocabulary = logprobs.shape[-1]
        for _ in range(1, limit):
            last = torch.tensor([[h.tokens[-1]] for w in active for h in beams[w]], device=self.device)
            logprobs = F.log_softmax(self._logits(self._decoder(last, encoded, cache)[:, -1]) + self._suppress, dim=-1)
            sums = torch.tensor([h.logprob for w in active for h in beams[w]], device=self.device)
            if temperature > 0:
                picked = _choose(logprobs, 1, temperature)
                top_scores = (sums + logprobs.gather(1, picked)[:, 0])[:, None]
                top_index = picked
            else:
                candidates = (sums[:, None] + logprobs).view(len(active), width * vocabulary)
                top_scores, top_index = candidates.topk(2 * width)
            rows, still = [], []
            choices = zip(active, top_scores.tolist(), top_index.tolist(), strict=True)
            for position, (w, scores, indices) in enumerate(choices):
                kept = []
                for score, index in zip(scores, indices, strict=True):
                    beam, token = divmod(index, vocabulary)
                    parent = beams[w][beam]
                    if token == self._eot:
                        finished[w].append(_Hypothesis(parent.tokens, score))
                    else:
                        kept.append(_Hypothesis(parent.tokens + [token], score))
                        rows.append(position * width + beam)
                    if len(kept) == width:
                        break
                if len(finished[w]) < width:
                    beams[w] = kept
                    still.append(w)
                else:
                    del rows[len(rows) - len(kept) :]
            if not still:
                break
            cache.self_attention_cache.reorder_cache(torch.tensor(rows, device=self.device))
            if len(still) < len(active):
                keep = [active.index(w) for w in still]
                cache.cross_attention_cache.batch_select_indices(torch.tensor(keep, device=self.device))
            active = still
        for w in active:  # out of room: the live beams compete with what has ended
            finished[w].extend(beams[w])
        return [max(f, key=lambda h: h.score) for f in finished], no_speech

    def _align(
        self, tokenizer: Tokenizer, encoded: torch.Tensor, texts: list[list[int]], content_seconds: list[float]
    ) -> list[list[Word]]:
        """Word times from the alignment heads' cross-attention (openai-whisper's find_alignment)."""
        spoken = [i for i, t in enumerate(texts) if t]
        words: list[list[Word]] = [[] for _ in texts]
        if not spoken:
            return words
        prefix = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        longest = max(len(texts[i]) for i in spoken)
        rows = [prefix + texts[i] + [self._eot] * (longest + 1 - len(texts[i])) for i in spoken]
        cache = _new_cache()
        self._queries.by_layer = {}
        try:
            hidden = self._decoder(torch.tensor(rows, device=self.device), encoded[spoken], cache)
            queries = self._queries.by_layer
        finally:
            self._queries.by_layer = None
        keys = {layer: cache.cross_attention_cache.layers[layer].keys.float() for layer in queries}
        logits = self._logits(hidden[:, len(tokenizer.sot_sequence) :])
        for row, i in enumerate(spoken):
            count = len(texts[i])
            frames = max(MEDIAN_FILTER_WIDTH, min(encoded.shape[1], round(content_seconds[i] * TOKENS_PER_SECOND)))
            weights = torch.stack(
                [
                    _attention(queries[layer], keys[layer], row, head, len(prefix) - 1, count + 1, frames)
                    for layer, head in self._alignment_heads
                ]
            )
            std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
            matrix = _median_filter((weights - mean) / std, MEDIAN_FILTER_WIDTH).mean(0)
            path = dtw(-matrix.double().cpu().numpy(), step_pattern="symmetric1")
            probabilities = logits[row, :count, : self._eot].softmax(-1)
            text_probabilities = probabilities[torch.arange(count), torch.tensor(texts[i])].cpu().numpy()
            words[i] = words_from_alignment(tokenizer, texts[i], path.index1, path.index2, text_probabilities)
        return words


def _new_cache() -> EncoderDecoderCache:
    return EncoderDecoderCache(DynamicCache(), DynamicCache())


def _choose(logprobs: torch.Tensor, width: int, temperature: float) -> torch.Tensor:
    """The `width` best next tokens per row, or one sampled at `temperature`."""
    if temperature > 0:
        return torch.multinomial((logprobs / temperature).softmax(-1), 1)
    return logprobs.topk(width).indices


def _attention(
    queries: torch.Tensor, keys: torch.Tensor, row: int, head: int, start: int, length: int, frames: int
) -> torch.Tensor:
    """One head's attention of text positions [start, start + length) over the first `frames`."""
    width = keys.shape[-1]
    q = queries[row, start : start + length, head * width : (head + 1) * width]
    return (q @ keys[row, head, :frames].T).softmax(-1)


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a sliding window along the last axis, edges reflected (as openai-whisper)."""
    pad = width // 2
    return F.pad(x, (pad, pad), mode="reflect").unfold(-1, width, 1).median(-1).values

