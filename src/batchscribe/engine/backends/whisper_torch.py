"""Whisper on PyTorch, from a transformers model folder: bf16 on CPUs with AMX, fp16 on CUDA.

The same contract as whisper_ct2.py: windows are decoded without timestamp tokens by batched
beam search over a KV cache (or by sampling, for the temperature fallback), and word times come
from the alignment heads' cross-attention, matched to the audio by dynamic time warping.
transformers itself is not imported: importing its Whisper classes took 4 s of CPU here, more than
decoding a minute of speech, and its generate() cannot give each window its own stopping point.
The weights are read with safetensors; the encoder is torch_encoder.py's (shared with the
CTranslate2 backend), the decoder torch_decoder.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from dtw import dtw
from faster_whisper.tokenizer import Tokenizer

from batchscribe.engine.backends.base import (
    TOKENS_PER_SECOND,
    DecodedWindow,
    DecodeOptions,
    Engine,
    new_token_limit,
)
from batchscribe.engine.placement import Placement
from batchscribe.engine.models.hf_weights import ct2_encoder_weights
from batchscribe.engine.models.resolve import ENGLISH_ONLY_VOCABULARY
from batchscribe.engine.backends.timing import words_from_alignment
from batchscribe.engine.backends.torch_encoder import TorchEncoder
from batchscribe.engine.backends.torch_decoder import Decoder, DecoderCache
from batchscribe.engine.backends.torch_search import Hypothesis, SearchSettings, search
from batchscribe.errors import ModelError
from batchscribe.results import Word

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MEDIAN_FILTER_WIDTH = 7



def _keep_attention_off_cudnn() -> None:
    """PyTorch 2.11 sends attention on Hopper GPUs to cuDNN, which builds an execution plan for every
    new shape: each decoding step has a longer key cache, so every step paid for a plan (6 ms per
    attention call on an H200; 5.9 s of 6.9 s decoding the 513 s file). Flash and memory-efficient
    attention need no plans. The switch is process-wide, as PyTorch only offers it so."""
    torch.backends.cuda.enable_cudnn_sdp(False)


def _read_folder(model_path: Path) -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """config.json, generation_config.json (or the same keys in config.json) and the weights.
    Raises ModelError for a folder that cannot be read or is not a Whisper model this runs."""
    try:
        config = json.loads((model_path / "config.json").read_text())
        generation_file = model_path / "generation_config.json"
        generation = json.loads(generation_file.read_text()) if generation_file.exists() else config
        if (model_path / "model.safetensors").exists():
            from safetensors.torch import load_file

            state = load_file(model_path / "model.safetensors")
        else:
            state = torch.load(model_path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    except Exception as error:  # json, safetensors and pickle raise many types; all mean unreadable
        raise ModelError(f"cannot load the Hugging Face Whisper model in {model_path}: {error}") from error
    if "decoder.embed_tokens.weight" in state:  # saved from WhisperModel: no "model." prefix
        state = {f"model.{name}": t for name, t in state.items()}
    unlike = {
        "model_type": (config.get("model_type"), "whisper"),
        "activation_function": (config.get("activation_function", "gelu"), "gelu"),
        "scale_embedding": (config.get("scale_embedding", False), False),
    }
    different = [f"{key} {found!r} (expected {wanted!r})" for key, (found, wanted) in unlike.items() if found != wanted]
    if different or "model.decoder.embed_tokens.weight" not in state:
        raise ModelError(
            f"{model_path} is not a Whisper model this backend runs: "
            + ("; ".join(different) or "no model.decoder.* weights")
        )
    return config, generation, state


class WhisperTorch(Engine):
    """A transformers Whisper model in `model_path` (Hugging Face layout), run by PyTorch.
    Raises ModelError when the folder cannot be read or lacks a setting or weight it needs."""

    def __init__(self, model_path: Path, placement: Placement):
        torch.set_num_threads(placement.threads)
        self.device = torch.device(placement.device)
        self.dtype = DTYPES[placement.compute_type]
        config, generation, state = _read_folder(model_path)
        if self.device.type == "cuda":
            _keep_attention_off_cudnn()
        try:
            self._load(model_path, placement, config, generation, state)
        except KeyError as error:
            raise ModelError(
                f"the Hugging Face Whisper model in {model_path} lacks {error} (a setting in config.json or a weight)"
            ) from error

    def _load(self, model_path: Path, placement: Placement, config: dict, generation: dict, state: dict) -> None:
        """Takes the weights out of `state` as it goes, so that at most one extra copy is alive."""
        encoder_state = {n: state.pop(n).float().numpy() for n in list(state) if n.startswith("model.encoder.")}
        # float32 weights under autocast, as the CTranslate2 backend's bf16 encoder runs: its
        # residual stream stays float32 (and see Float32Conv). On a GPU this keeps the encoder's
        # weights in float32 too, twice the memory of float16, for one encoder on both devices.
        self._encoder = TorchEncoder(
            ct2_encoder_weights(encoder_state, int(config["encoder_attention_heads"])), self.device
        )
        del encoder_state
        vocab_size, eot = int(config["vocab_size"]), int(config["eos_token_id"])
        layers, heads = int(config["decoder_layers"]), int(config["decoder_attention_heads"])
        multilingual = vocab_size > ENGLISH_ONLY_VOCABULARY
        super().__init__(model_path, int(config["num_mel_bins"]), multilingual, placement.workers)
        self._eot = eot
        self._specials = set(range(eot + 1, vocab_size))  # start, language, task, timestamps
        self._non_speech = set(generation.get("suppress_tokens") or [])
        self._begin_suppress = set(generation.get("begin_suppress_tokens") or [eot])
        self._vocab_size = vocab_size
        self._suppress_sets: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._languages = dict(generation.get("lang_to_id") or {})
        named = generation.get("alignment_heads") or [
            [layer, head] for layer in range(layers // 2, layers) for head in range(heads)
        ]  # CTranslate2's default when a model names none
        self._alignment_heads = [(int(layer), int(head)) for layer, head in named]
        decoder_state = {
            n: state.pop(n).to(self.device, self.dtype)
            for n in list(state)
            if n.startswith(("model.decoder.", "proj_out."))
        }
        self._decoder = Decoder(decoder_state, heads, self._alignment_heads)

    def _suppressed(self, suppress_tokens: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids never produced, and those also not produced first (blank, end of text), for
        openai-whisper's suppress_tokens (-1: the model's non-speech symbols)."""
        if suppress_tokens not in self._suppress_sets:
            chosen = {t for t in suppress_tokens if t >= 0} | self._specials
            if -1 in suppress_tokens:
                chosen |= self._non_speech
            first = chosen | self._begin_suppress
            self._suppress_sets[suppress_tokens] = tuple(  # type: ignore[assignment]
                torch.tensor(sorted(t for t in ids if 0 <= t < self._vocab_size), device=self.device)
                for ids in (chosen, first)
            )
        return self._suppress_sets[suppress_tokens]

    def _step(
        self, tokens: torch.Tensor, encoded: torch.Tensor, cache: DecoderCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, queries = self._decoder(tokens, encoded, cache)
        return self._decoder.logits(hidden[:, -1]), queries

    encodes_speech_alone = True

    def encode(self, features: np.ndarray) -> torch.Tensor:
        """Any number of frames (language detection needs only the speech: see
        Engine.detect_language): (windows, frames / 2, width) in the model's dtype."""
        mel = torch.from_numpy(features).to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self._encoder(mel).to(self.dtype)

    def _language_of(self, features: np.ndarray) -> tuple[str, float]:
        if not self._languages:
            return "en", 1.0
        sot = self.tokenizer("en", "transcribe").sot
        with torch.inference_mode():
            encoded = self.encode(features[np.newaxis])
            tokens = torch.tensor([[sot]], device=self.device)
            logits = self._step(tokens, encoded, DecoderCache())[0].float()
        return self._languages_after_sot(logits)[0]

    def decode(
        self, features: np.ndarray, content_seconds: list[float], language: str, options: DecodeOptions
    ) -> list[DecodedWindow]:
        """Decode a batch of windows of one language; words carry window-relative times."""
        tokenizer = self.tokenizer(language, options.task)
        prompt = options.prompt(tokenizer)
        sot = prompt.index(tokenizer.sot)  # no-speech probability is read there, as openai-whisper does
        suppress, suppress_first = self._suppressed(options.suppress_tokens)
        settings = SearchSettings(
            width=1 if options.temperature > 0 else options.beam_size,
            temperature=options.temperature,
            limit=new_token_limit(max(content_seconds)),
            eot=self._eot,
            suppress=suppress,
            suppress_first=suppress_first,
        )
        with torch.inference_mode():
            encoded = self.encode(features)
            cache = DecoderCache()
            hidden, queries = self._decoder(torch.tensor([prompt] * len(features), device=self.device), encoded, cache)
            logits = self._decoder.logits(hidden[:, [sot, -1]]).float()
            no_speech = logits[:, 0].softmax(-1)[:, tokenizer.no_speech].tolist()
            detected = self._languages_after_sot(logits[:, 0]) if options.detect_language else [None] * len(features)
            keys = self._alignment_keys(cache)
            best = search(self._step, logits[:, 1], queries[:, -1:], cache, encoded, settings)
            words = [
                self._words(tokenizer, h, keys[i], content_seconds[i]) if h.tokens else []
                for i, h in enumerate(best)
            ]
        return [
            DecodedWindow(w, tokenizer.decode(h.tokens), h.score, p, list(h.tokens), options.temperature, d)
            for w, h, p, d in zip(words, best, no_speech, detected, strict=True)
        ]

    def _languages_after_sot(self, logits: torch.Tensor) -> list:
        """Each window's most likely language and its probability, from the logits after the
        start-of-transcript token (the prompt already computes them: no extra model call)."""
        if not self._languages:
            return [None] * logits.shape[0]
        names = list(self._languages)
        probabilities = logits[:, list(self._languages.values())].softmax(-1)
        best = probabilities.argmax(-1).tolist()
        return [(names[b][2:-2], float(probabilities[i, b])) for i, b in enumerate(best)]

    def _alignment_keys(self, cache: DecoderCache) -> torch.Tensor:
        """The alignment heads' encoder keys: (windows, heads, encoder positions, head size)."""
        return torch.stack([cache.cross[layer][0][:, head] for layer, head in self._alignment_heads], dim=1).float()

    def _words(self, tokenizer: Tokenizer, best: Hypothesis, keys: torch.Tensor, content_seconds: float) -> list[Word]:
        """Word times from the alignment heads' cross-attention (openai-whisper's find_alignment),
        using the queries kept during the search: one per text token, plus end of text."""
        frames = max(MEDIAN_FILTER_WIDTH, min(keys.shape[1], round(content_seconds * TOKENS_PER_SECOND)))
        weights = (best.queries.transpose(0, 1) @ keys[:, :frames].transpose(1, 2)).softmax(-1)
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        matrix = _median_filter((weights - mean) / std, MEDIAN_FILTER_WIDTH).mean(0)
        path = dtw(-matrix.double().cpu().numpy(), step_pattern="symmetric1")
        probabilities = np.exp(best.token_logprobs[: len(best.tokens)])
        return words_from_alignment(tokenizer, best.tokens, path.index1, path.index2, probabilities)


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a sliding window along the last axis, edges reflected (as openai-whisper).

    Sorted by an odd-even transposition network of elementwise min/max over shifted views:
    the same result as unfold().median() (or scipy's median_filter), 2-3x faster on a CPU,
    where the median sort was 7% of decoding a window.
    """
    pad = width // 2
    padded = F.pad(x, (pad, pad), mode="reflect")
    length = x.shape[-1]
    values = [padded[..., i : i + length] for i in range(width)]
    for rank in range(width):
        for i in range(rank % 2, width - 1, 2):
            values[i], values[i + 1] = torch.minimum(values[i], values[i + 1]), torch.maximum(values[i], values[i + 1])
    return values[pad]
