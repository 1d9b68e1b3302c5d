"""A CTranslate2 Whisper model as a Hugging Face transformers folder, for the PyTorch backend.

The bundled offline models are CTranslate2 files; `--backend torch` converts one once, on first
use, into the cache (config, generation config, tokenizer, model.safetensors in float32, int8
weights dequantized exactly as CTranslate2 stores them). The safetensors file's sha256 is
recorded when it is written and checked again whenever the file has changed since, so a
truncated or edited copy is rebuilt rather than loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from batchscribe.engine.models.ct2_weights import read_weights
from batchscribe.engine.models.resolve import ENGLISH_ONLY_VOCABULARY, cache_dir, read_vocabulary
from batchscribe.engine.models.verify import file_stamp, is_verified, mark_verified, sha256_of
from batchscribe.errors import ModelError

WEIGHTS = "model.safetensors"
CHECKSUM = "checksum.json"
VERIFIED = ".verified"  # the weights' stamp when they last matched the checksum (see verify.py)
_ACTIVATIONS = {0: "relu", 1: "gelu_new", 2: "silu", 3: "gelu", 4: "quick_gelu", 5: "tanh"}


def hf_folder(ct2_path: Path) -> Path:
    """The converted copy of the CTranslate2 model in `ct2_path`, made if missing or damaged."""
    source = ct2_path / "model.bin"
    key = hashlib.sha256(f"{source.resolve()}:{file_stamp([source])}".encode()).hexdigest()[:16]
    target = cache_dir() / "hf" / key
    if _intact(target):
        return target
    partial = target.with_name(f"{key}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _convert(ct2_path, partial)
    except BaseException:  # an error or Ctrl-C leaves no half-converted folder behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def _intact(folder: Path) -> bool:
    record_file, weights, marker = folder / CHECKSUM, folder / WEIGHTS, folder / VERIFIED
    if not (record_file.exists() and weights.exists()):
        return False
    if is_verified(marker, [weights]):
        return True
    if sha256_of([weights]) != json.loads(record_file.read_text())["sha256"]:
        return False
    mark_verified(marker, [weights])  # same bytes, new mtime (e.g. copied): remember it
    return True


def _convert(ct2_path: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    try:
        weights = read_weights(ct2_path / "model.bin")
        ct2_config = json.loads((ct2_path / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot convert {ct2_path} for the PyTorch backend: {error}") from error
    state, config = _hf_state(weights)
    vocabulary = read_vocabulary(ct2_path)
    special = {token: vocabulary.index(token) for token in ("<|endoftext|>", "<|startoftranscript|>")}
    config.update(
        bos_token_id=special["<|endoftext|>"],
        eos_token_id=special["<|endoftext|>"],
        pad_token_id=special["<|endoftext|>"],
        decoder_start_token_id=special["<|startoftranscript|>"],
    )
    generation = {
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", []),
        "lang_to_id": {vocabulary[i]: i for i in ct2_config.get("lang_ids", [])},
        "is_multilingual": len(vocabulary) > ENGLISH_ONLY_VOCABULARY,
        "decoder_start_token_id": special["<|startoftranscript|>"],
        "eos_token_id": special["<|endoftext|>"],
    }
    if ct2_config.get("alignment_heads"):
        generation["alignment_heads"] = ct2_config["alignment_heads"]
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=1))
    (out / "generation_config.json").write_text(json.dumps(generation, indent=1))
    shutil.copyfile(ct2_path / "tokenizer.json", out / "tokenizer.json")
    weights_file = out / WEIGHTS
    record = {"sha256": sha256_of([weights_file]), "source": str(ct2_path)}
    (out / CHECKSUM).write_text(json.dumps(record))
    mark_verified(out / VERIFIED, [weights_file])


# One row per CTranslate2 tensor group: (its name, transformers' names for it, how they correspond).
# "linear": <name>/weight and /bias <-> <hf>.weight and .bias; "norm": /gamma and /beta <-> .weight
# and .bias; "fused": CTranslate2's one projection is transformers' q/k/v (or k/v) stacked, and
# Whisper's key projection has no bias; "array": the tensor itself, under the names as given.
NamePair = tuple[str, tuple[str, ...], str]


def _name_pairs(encoder_layers: int, decoder_layers: int) -> list[NamePair]:
    """Every tensor of a Whisper model with these numbers of layers, in both naming schemes."""

    def block(ct2: str, hf: str) -> list[NamePair]:
        a = f"{ct2}/self_attention"
        return [
            (f"{a}/linear_0", tuple(f"{hf}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")), "fused"),
            (f"{a}/linear_1", (f"{hf}.self_attn.out_proj",), "linear"),
            (f"{a}/layer_norm", (f"{hf}.self_attn_layer_norm",), "norm"),
            (f"{ct2}/ffn/linear_0", (f"{hf}.fc1",), "linear"),
            (f"{ct2}/ffn/linear_1", (f"{hf}.fc2",), "linear"),
            (f"{ct2}/ffn/layer_norm", (f"{hf}.final_layer_norm",), "norm"),
        ]

    pairs: list[NamePair] = [
        ("encoder/conv1", ("model.encoder.conv1",), "linear"),
        ("encoder/conv2", ("model.encoder.conv2",), "linear"),
        ("encoder/position_encodings/encodings", ("model.encoder.embed_positions.weight",), "array"),
    ]
    for i in range(encoder_layers):
        pairs += block(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
    pairs += [
        ("encoder/layer_norm", ("model.encoder.layer_norm",), "norm"),
        ("decoder/embeddings/weight", ("model.decoder.embed_tokens.weight",), "array"),
        ("decoder/position_encodings/encodings", ("model.decoder.embed_positions.weight",), "array"),
    ]
    for i in range(decoder_layers):
        ct2, hf = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        pairs += block(ct2, hf)
        pairs += [
            (f"{ct2}/attention/linear_0", (f"{hf}.encoder_attn.q_proj",), "linear"),
            (f"{ct2}/attention/linear_1", (f"{hf}.encoder_attn.k_proj", f"{hf}.encoder_attn.v_proj"), "fused"),
            (f"{ct2}/attention/linear_2", (f"{hf}.encoder_attn.out_proj",), "linear"),
            (f"{ct2}/attention/layer_norm", (f"{hf}.encoder_attn_layer_norm",), "norm"),
        ]
    pairs.append(("decoder/layer_norm", ("model.decoder.layer_norm",), "norm"))
    return pairs


def _hf_state(w: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """transformers' parameter names for CTranslate2's, and the model's dimensions."""
    layers = {side: sum(1 for n in w if n.startswith(f"{side}/layer_") and n.endswith("ffn/linear_0/weight"))
              for side in ("encoder", "decoder")}  # fmt: skip
    state: dict[str, np.ndarray] = {}
    for ct2, hf, kind in _name_pairs(layers["encoder"], layers["decoder"]):
        if kind == "array":
            state[hf[0]] = w[ct2]
        elif kind == "norm":
            state[f"{hf[0]}.weight"], state[f"{hf[0]}.bias"] = w[f"{ct2}/gamma"], w[f"{ct2}/beta"]
        elif kind == "linear":
            state[f"{hf[0]}.weight"], state[f"{hf[0]}.bias"] = w[f"{ct2}/weight"], w[f"{ct2}/bias"]
        else:
            weights, biases = np.split(w[f"{ct2}/weight"], len(hf)), np.split(w[f"{ct2}/bias"], len(hf))
            for name, weight, bias in zip(hf, weights, biases, strict=True):
                state[f"{name}.weight"] = weight
                if not name.endswith("k_proj"):
                    state[f"{name}.bias"] = bias
    tied = "decoder/projection/weight" not in w
    if not tied:
        state["proj_out.weight"] = w["decoder/projection/weight"]
    conv1 = w["encoder/conv1/weight"]
    config = {
        "model_type": "whisper",
        "architectures": ["WhisperForConditionalGeneration"],
        "vocab_size": int(w["decoder/embeddings/weight"].shape[0]),
        "num_mel_bins": int(conv1.shape[1]),
        "d_model": int(conv1.shape[0]),
        "encoder_layers": layers["encoder"],
        "decoder_layers": layers["decoder"],
        "encoder_attention_heads": int(w["encoder/num_heads"]),
        "decoder_attention_heads": int(w["decoder/num_heads"]),
        "encoder_ffn_dim": int(w["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(w["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(w["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(w["decoder/position_encodings/encodings"].shape[0]),
        "activation_function": _ACTIVATIONS.get(int(w.get("decoder/activation", 3)), "gelu"),
        "tie_word_embeddings": tied,
        "scale_embedding": False,
    }
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in state.items()}, config


def ct2_encoder_weights(state: dict[str, np.ndarray], heads: int) -> dict[str, np.ndarray]:
    """The encoder of a transformers state dict under CTranslate2's names ("encoder/..."), _hf_state
    read backwards, so that one PyTorch encoder (torch_encoder.py) serves both layouts. Queries,
    keys and values are fused as CTranslate2 fuses them (the key's bias is zero)."""
    layers = sum(1 for name in state if name.startswith("model.encoder.layers.") and name.endswith(".fc1.weight"))
    w: dict[str, np.ndarray] = {"encoder/num_heads": np.array(heads)}
    for ct2, hf, kind in _name_pairs(layers, 0):
        if not ct2.startswith("encoder/"):
            continue
        if kind == "array":
            w[ct2] = state[hf[0]]
        elif kind == "norm":
            w[f"{ct2}/gamma"], w[f"{ct2}/beta"] = state[f"{hf[0]}.weight"], state[f"{hf[0]}.bias"]
        elif kind == "linear":
            w[f"{ct2}/weight"], w[f"{ct2}/bias"] = state[f"{hf[0]}.weight"], state[f"{hf[0]}.bias"]
        else:
            w[f"{ct2}/weight"] = np.concatenate([state[f"{name}.weight"] for name in hf])
            w[f"{ct2}/bias"] = np.concatenate(
                [state.get(f"{name}.bias", np.zeros_like(state[f"{hf[0]}.bias"])) for name in hf]
            )
    return w
