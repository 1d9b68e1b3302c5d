"""The PyTorch backend's parts: converted weights, model folders, placement, and its decoder
against CTranslate2's on real speech. End-to-end quality is in test_quality.py for both backends."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from batchscribe.audio import open_audio
from batchscribe.engine.models import resolve as models
from batchscribe.engine.models.verify import sha256_of
from batchscribe.engine.models.ct2_weights import read_weights
from batchscribe.engine.backends.base import DecodeOptions
from batchscribe.engine.placement import Placement, choose_placement, cpu_has_bf16_matrix_units
from batchscribe.engine.models.hf_weights import CHECKSUM, WEIGHTS, hf_folder
from batchscribe.errors import ModelError, OptionsError
from conftest import LIBRISPEECH, wer


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """tiny.en converted once into a private cache."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BATCHSCRIBE_CACHE", str(cache))
        yield hf_folder(models.resolve_model("tiny.en").path)


def test_conversion_maps_every_weight_and_loads_in_transformers(tiny_hf):
    from transformers import WhisperForConditionalGeneration

    model, info = WhisperForConditionalGeneration.from_pretrained(tiny_hf, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    source = read_weights(models.resolve_model("tiny.en").path / "model.bin", "decoder/layer_3/attention/")
    fused = source["decoder/layer_3/attention/linear_1/weight"]  # cross-attention keys and values, fused
    layer = model.model.decoder.layers[3].encoder_attn
    assert np.array_equal(layer.k_proj.weight.detach().numpy(), fused[:384])
    assert np.array_equal(layer.v_proj.weight.detach().numpy(), fused[384:])
    generation = json.loads((tiny_hf / "generation_config.json").read_text())
    assert len(generation["alignment_heads"]) == 8 and generation["is_multilingual"] is False


def test_a_damaged_conversion_is_rebuilt(tiny_hf, monkeypatch):
    monkeypatch.setenv("BATCHSCRIBE_CACHE", str(tiny_hf.parents[1]))
    recorded = json.loads((tiny_hf / CHECKSUM).read_text())["sha256"]
    weights = tiny_hf / WEIGHTS
    with open(weights, "r+b") as handle:  # same size, one byte changed: only the checksum can tell
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    assert hf_folder(models.resolve_model("tiny.en").path) == tiny_hf
    assert sha256_of([weights]) == recorded


def test_model_folders_are_told_apart(tiny_hf):
    with pytest.raises(ModelError, match="--backend torch"):
        models.resolve_model(str(tiny_hf), "ct2")
    resolved = models.resolve_model(str(tiny_hf), "torch")
    assert resolved.layout == "hf" and resolved.multilingual is False


def test_hub_names_without_network_name_the_offline_models(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="Offline models: 'tiny.en', 'base', 'small'"):
        models.resolve_model("large-v3", "torch")


def test_backend_placement():
    assert choose_placement(device="cpu").backend == "ct2"  # auto: the faster one on CPUs (see engine/placement.py)
    placement = choose_placement(device="cpu", backend="torch")
    assert placement.backend == "torch" and placement.encoder == "torch"
    assert placement.compute_type == ("bfloat16" if cpu_has_bf16_matrix_units() else "float32")
    with pytest.raises(OptionsError, match="--encoder ct2 is for --backend ct2"):
        choose_placement(device="cpu", backend="torch", encoder="ct2")
    with pytest.raises(OptionsError, match="not one the PyTorch backend runs"):
        choose_placement(device="cpu", backend="torch", compute_type="int8")
    with pytest.raises(OptionsError, match="unknown backend 'onnx'"):
        choose_placement(device="cpu", backend="onnx")


def _transformers_last_hidden(model, tokens: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
    """transformers' decoder over whole sequences, no cache: the reference for the step decoder."""
    return model.model.decoder(input_ids=tokens, encoder_hidden_states=encoded).last_hidden_state


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_step_decoder_matches_transformers_through_prompt_beams_reorder_and_finished_windows(tiny_hf, dtype):
    """The lean decoder (packed weights, growing caches, beams sharing their window's encoder rows)
    computes what transformers' decoder computes over the whole sequences: after the prompt, after
    the rows become beams, after a reorder that drops and duplicates beams, and after a window ends."""
    from transformers import WhisperForConditionalGeneration

    from batchscribe.engine.backends.torch_decoder import Decoder, DecoderCache

    if dtype == torch.bfloat16 and not cpu_has_bf16_matrix_units():
        pytest.skip("bf16 packing is used only on CPUs with bf16 matrix units")
    from safetensors.torch import load_file

    reference = WhisperForConditionalGeneration.from_pretrained(tiny_hf, dtype=torch.float32).eval()
    model = WhisperForConditionalGeneration.from_pretrained(tiny_hf, dtype=dtype).eval()
    state = {name: t.to(dtype) for name, t in load_file(tiny_hf / WEIGHTS).items()}
    decoder = Decoder(state, heads=6, alignment_heads=[(2, 0), (3, 1)])

    def close(ours: torch.Tensor, tokens: torch.Tensor, memory: torch.Tensor) -> bool:
        """float32: the same to rounding; bf16 (8 bits of each value): no further from float32
        than transformers' own bf16 decoder is."""
        exact = _transformers_last_hidden(reference, tokens, memory)[:, -ours.shape[1] :]
        error = (ours.float() - exact).norm()
        if dtype == torch.float32:
            return bool(error <= 1e-4 * exact.norm())
        theirs = _transformers_last_hidden(model, tokens, memory.to(dtype))[:, -ours.shape[1] :]
        return bool(error <= 1.5 * (theirs.float() - exact).norm())

    generator = torch.Generator().manual_seed(0)
    windows, width = 3, 4
    encoded = torch.randn(windows, 1500, 384, generator=generator)
    prompt = torch.tensor([[50257, 50362, 464]] * windows)  # start, no timestamps, one text token
    with torch.inference_mode():
        cache = DecoderCache()
        hidden, queries = decoder(prompt, encoded.to(dtype), cache)
        assert hidden.shape == (windows, 3, 384) and queries.shape == (windows, 3, 2, 64)
        assert close(hidden, prompt, encoded)
        cache.repeat_rows(width)
        sequences = prompt.repeat_interleave(width, 0)
        beams_encoded = encoded.repeat_interleave(width, 0)
        for step in range(70):  # past the first buffer's 64 positions: the cache grows
            tokens = torch.randint(0, 50000, (len(sequences), 1), generator=generator)
            sequences = torch.cat([sequences, tokens], 1)
            hidden, _ = decoder(tokens, encoded.to(dtype), cache)
            if step % 20 == 0 or step == 69:
                assert close(hidden, sequences, beams_encoded), step
            if step == 10:  # beams reordered: some dropped, one kept twice
                order = torch.tensor([1, 1, 0, 3, 4, 6, 5, 7, 8, 8, 10, 11])
                cache.reorder(order)
                sequences, beams_encoded = sequences[order], beams_encoded[order]
            if step == 30:  # the second window has ended
                rows = torch.tensor([0, 1, 2, 3, 8, 9, 10, 11])
                cache.reorder(rows)
                cache.keep_windows(torch.tensor([0, 2]))
                sequences, beams_encoded, encoded = sequences[rows], beams_encoded[rows], encoded[[0, 2]]


def test_torch_decoder_agrees_with_ctranslate2_on_real_windows(tiny_hf):
    """Same texts (within a few words) and the same word times (within 0.1 s) on packed windows."""
    from batchscribe.engine.backends.whisper_ct2 import WhisperCT2
    from batchscribe.engine.backends.whisper_torch import WhisperTorch

    torch_engine = WhisperTorch(tiny_hf, choose_placement(device="cpu", threads=2, backend="torch"))
    ct2_engine = WhisperCT2(models.resolve_model("tiny.en").path, Placement("cpu", "int8", 2, 1))
    files = sorted(LIBRISPEECH.glob("*.flac"))[:4]
    audio = [np.concatenate(list(open_audio(f).blocks()))[: 30 * 16000] for f in files]
    features = np.stack([torch_engine.features(np.pad(a, (0, 30 * 16000 - len(a)))) for a in audio])
    seconds = [len(a) / 16000 for a in audio]
    ours = torch_engine.decode(features, seconds, "en", DecodeOptions())
    theirs = ct2_engine.decode(features, seconds, "en", DecodeOptions())
    assert wer([t.text for t in theirs], [o.text for o in ours]) <= 0.05
    for o, t in zip(ours, theirs, strict=True):
        assert abs(o.avg_logprob - t.avg_logprob) < 0.05 and abs(o.no_speech_prob - t.no_speech_prob) < 0.02
        same = [(a, b) for a, b in zip(o.words, t.words, strict=False) if a.word == b.word]
        assert len(same) >= 0.9 * len(t.words)
        assert np.median([abs(a.start - b.start) for a, b in same]) <= 0.1
    sampled = torch_engine.decode(features, seconds, "en", DecodeOptions(temperature=0.6))
    assert wer([t.text for t in theirs], [s.text for s in sampled]) <= 0.3


def test_median_filter_matches_the_sort_based_one():
    from batchscribe.engine.backends.whisper_torch import _median_filter

    weights = torch.randn(8, 40, 700)
    expected = torch.nn.functional.pad(weights, (3, 3), mode="reflect").unfold(-1, 7, 1).median(-1).values
    assert torch.equal(_median_filter(weights, 7), expected)


def test_a_hugging_face_folder_runs_on_pytorch_without_asking(tiny_hf):
    """auto keeps CTranslate2 on this CPU, but only PyTorch can run a transformers folder."""
    from batchscribe import transcribe
    from conftest import reference

    clip = LIBRISPEECH / "1688-142285-0000.flac"
    summary = transcribe(clip, model=str(tiny_hf), word_timestamps=True)
    assert summary.ok and summary.backend == "torch" and summary.compute_type in ("bfloat16", "float32")
    (result,) = summary.results
    assert wer([reference(f"librispeech/test-other/{clip.name}")], [result.transcript.text]) <= 0.2
    assert result.transcript.segments[0].words


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated weights", "cannot load the Hugging Face Whisper model"),
        ("another activation", r"activation_function 'relu' \(expected 'gelu'\)"),
        ("a setting missing", "lacks 'encoder_attention_heads'"),
        ("a weight missing", "lacks 'model.decoder.layer_norm.weight'"),
    ],
)
def test_a_folder_the_backend_cannot_run_is_a_model_error_saying_why(tiny_hf, tmp_path, damage, message):
    from safetensors.torch import load_file, save_file

    from batchscribe.engine.backends.whisper_torch import WhisperTorch

    folder = shutil.copytree(tiny_hf, tmp_path / "model")
    config_file, weights = folder / "config.json", folder / WEIGHTS
    config = json.loads(config_file.read_text())
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "another activation":
        config_file.write_text(json.dumps({**config, "activation_function": "relu"}))
    elif damage == "a setting missing":
        config.pop("encoder_attention_heads")
        config_file.write_text(json.dumps(config))
    else:
        state = load_file(weights)
        state.pop("model.decoder.layer_norm.weight")
        save_file(state, weights)
    with pytest.raises(ModelError, match=message):
        WhisperTorch(folder, choose_placement(device="cpu", threads=1, backend="torch"))


def test_encoder_and_output_projection_match_transformers(tiny_hf):
    """The encoder (CTranslate2's layout, mapped from transformers' names) and the packed output
    projection against transformers' own, in float32."""
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration

    from batchscribe.engine.backends.torch_decoder import Decoder
    from batchscribe.engine.backends.torch_encoder import TorchEncoder
    from batchscribe.engine.models.hf_weights import ct2_encoder_weights

    reference = WhisperForConditionalGeneration.from_pretrained(tiny_hf, dtype=torch.float32).eval()
    state = load_file(tiny_hf / WEIGHTS)
    encoder = TorchEncoder(ct2_encoder_weights({n: t.numpy() for n, t in state.items() if "encoder" in n}, 6))
    mel = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(1))
    hidden = torch.randn(3, 384, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ours, theirs = encoder(mel), reference.model.encoder(mel).last_hidden_state
        assert (ours - theirs).norm() <= 1e-4 * theirs.norm()
        logits = Decoder(state, heads=6, alignment_heads=[(2, 0)]).logits(hidden)
        assert torch.allclose(logits, reference.proj_out(hidden), atol=1e-4)


def test_the_float16_path_a_gpu_runs_gives_float32s_transcript(tiny_hf):
    """On CUDA the backend runs float16: the encoder under fp16 autocast and the decoder's weights
    unpacked (oneDNN packing is for CPU bf16 only). The same code runs here on the CPU, so that path
    is tested without a GPU: same words as float32 on real speech."""
    from batchscribe.engine.backends.whisper_torch import WhisperTorch

    files = sorted(LIBRISPEECH.glob("*.flac"))[:2]
    audio = [np.concatenate(list(open_audio(f).blocks()))[: 30 * 16000] for f in files]
    texts = {}
    for compute_type in ("float32", "float16"):
        engine = WhisperTorch(tiny_hf, Placement("cpu", compute_type, 1, 1, "torch", "torch"))
        assert all(layer.fc1.packed is None for layer in engine._decoder.layers)
        features = np.stack([engine.features(np.pad(a, (0, 30 * 16000 - len(a)))) for a in audio])
        decoded = engine.decode(features, [len(a) / 16000 for a in audio], "en", DecodeOptions())
        assert all(window.words for window in decoded)
        texts[compute_type] = [window.text for window in decoded]
    assert wer(texts["float32"], texts["float16"]) <= 0.02
