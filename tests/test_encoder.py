"""The PyTorch bf16 encoder against CTranslate2's, on real speech, with weights read from model.bin."""

from dataclasses import replace

import ctranslate2
import numpy as np
import pytest
from conftest import LIBRISPEECH, LONGFORM, run_cli

from batchscribe.audio import open_audio
from batchscribe.audio.decode import declared_seconds
from batchscribe.engine.models.ct2_weights import read_weights
from batchscribe.engine.models.resolve import resolve_model
from batchscribe.engine.placement import Placement, choose_encoder, cpu_has_amx, quick_start
from batchscribe.errors import ModelError, OptionsError

torch = pytest.importorskip("torch")


def windows(n: int, mels: int) -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    audio = np.concatenate(list(open_audio(LONGFORM.with_suffix(".flac")).blocks()))
    extractor = FeatureExtractor(feature_size=mels)
    return np.stack([extractor(audio[i * 480000 : (i + 1) * 480000], padding=0)[:, :3000] for i in range(n)])


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_bf16_encoder_matches_ctranslate2(name):
    from batchscribe.engine.backends.torch_encoder import Bf16Encoder

    path = resolve_model(name).path
    model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8")
    features = windows(2, model.n_mels).astype(np.float32)
    reference = np.asarray(model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    ours = Bf16Encoder(path, threads=2)(features)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).mean() < 0.1 * np.abs(reference).mean()


def test_a_small_run_keeps_ctranslate2s_encoder():
    """tiny.en below 120 s of audio in all: importing PyTorch costs more than its encoder saves."""
    amx = Placement("cpu", "int8", 1, 2, "torch-bf16")
    assert quick_start(amx, "auto", "tiny.en", [15.0, 30.0]).encoder == "ct2"
    assert quick_start(amx, "auto", "tiny.en", [100.0, 30.0]).encoder == "torch-bf16"
    assert quick_start(amx, "auto", "tiny.en", [15.0, None]).encoder == "torch-bf16"  # a length unknown: no guess
    assert quick_start(amx, "torch", "tiny.en", [15.0]).encoder == "torch-bf16"  # asked for by name
    assert quick_start(amx, "auto", "base", [15.0]).encoder == "torch-bf16"  # its int8 encoder costs more
    assert quick_start(replace(amx, encoder="ct2"), "auto", "tiny.en", [500.0]).encoder == "ct2"
    assert quick_start(amx, "auto", "tiny.en", [1.0] * 16).encoder == "ct2"
    assert quick_start(amx, "auto", "tiny.en", [1.0] * 17).encoder == "torch-bf16"  # too many to probe
    probed = []

    def durations():
        for seconds in (200.0, 1.0):
            probed.append(seconds)
            yield seconds

    quick_start(amx, "auto", "tiny.en", durations())
    assert probed == [200.0]  # a large run probes only its first files


def test_declared_seconds():
    assert declared_seconds(LONGFORM.with_suffix(".flac")) == pytest.approx(513.27, abs=0.01)
    assert declared_seconds(LONGFORM.with_suffix(".ref.txt")) is None


def test_one_short_file_runs_without_pytorch_or_scipy_signal(tmp_path, monkeypatch):
    """The command a user types on one file: CTranslate2's encoder on every CPU, and none of the
    imports that made start-up slow (`import torch` 1.25 s, scipy.signal 0.75 s, against 0.7 s
    from the command to the first batch on the model without them)."""
    audio = sorted(LIBRISPEECH.glob("*.flac"))[0]
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # python -X importtime, on stderr
    result = run_cli("transcribe", str(audio), "-o", str(tmp_path), "--formats", "txt", check=True)
    assert "(backend: ct2, encoder: ct2)" in result.stdout
    assert (tmp_path / f"{audio.name}.txt").read_text().strip()
    timed = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip() for line in timed}
    assert "batchscribe.audio.vad" in imported  # the probe reports imports at all
    assert not {"torch", "scipy.signal"} & imported


@pytest.mark.parametrize("encoder", ["ct2", "torch-bf16"])
def test_a_damaged_model_gives_a_model_error_whichever_encoder_loads_beside_it(tmp_path, encoder):
    """With PyTorch's encoder, CTranslate2 loads its model in a thread while torch is imported;
    its failure must still end the load with the same ModelError, not be lost in that thread."""
    import shutil

    from batchscribe.engine.backends import load_engine

    source = resolve_model("tiny.en")
    shutil.copytree(source.path, tmp_path / "model")
    weights = tmp_path / "model" / "model.bin"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match="cannot load the model in"):
        load_engine(replace(source, path=tmp_path / "model"), Placement("cpu", "int8", 1, 2, encoder))
    engine = load_engine(source, Placement("cpu", "int8", 1, 2, encoder))  # and the intact one loads
    assert engine.model.n_mels == 80 and (engine._torch_encoder is not None) == (encoder == "torch-bf16")


def test_weights_are_read_and_dequantized_from_model_bin():
    weights = read_weights(resolve_model("base").path / "model.bin", "encoder/")
    assert int(weights["encoder/num_heads"]) == 8
    assert weights["encoder/layer_5/self_attention/linear_0/weight"].shape == (3 * 512, 512)
    assert all(w.dtype == np.float32 for k, w in weights.items() if k != "encoder/num_heads")
    assert not any(k.endswith("_scale") for k in weights)


def test_encoder_choice():
    assert choose_encoder("cpu", "ct2") == "ct2"
    assert choose_encoder("cuda", "auto") == "ct2"
    assert choose_encoder("cpu", "auto") == ("torch-bf16" if cpu_has_amx() else "ct2")
    with pytest.raises(OptionsError, match="CPU only"):
        choose_encoder("cuda", "torch")
    with pytest.raises(OptionsError, match="choose auto, ct2, torch"):
        choose_encoder("cpu", "tpu")


@pytest.mark.parametrize("backend", ["ct2", "torch"])
def test_language_from_the_speech_alone_agrees_with_the_padded_window(backend):
    """Detection encodes only the probe's speech (see Engine.language_in_window); on every
    multilingual recording it must name the language the full 30 s window names."""
    from conftest import DATA

    from batchscribe.engine.backends import load_engine
    from batchscribe.engine.placement import choose_placement

    engine = load_engine(resolve_model("base"), choose_placement(threads=2, encoder="torch", backend=backend))
    assert engine.encodes_speech_alone
    files = sorted(p for p in (DATA / "multilingual").rglob("*") if p.suffix in {".wav", ".flac", ".ogg", ".mp3"})
    assert len(files) >= 20
    if backend == "torch":  # the same encoder class as ct2's above, which hears every file: one per language
        files = list({path.parent: path for path in reversed(files)}.values())
        assert len(files) >= 7
    for path in files:
        audio = np.concatenate(list(open_audio(path).blocks()))[: 12 * 16000]
        features = engine.features(np.pad(audio, (0, 480000 - audio.size)))
        speech_only = engine.language_in_window(features, content_seconds=audio.size / 16000)
        padded = engine.language_in_window(features)
        assert speech_only[0] == padded[0], path.name
