"""How each system is run: one process per corpus, as its users would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bench.corpora import REPO

SEED_TOOL = REPO.parent / "shared" / "tools" / "seed_baseline.py"
CONVERTER = REPO.parent / "shared" / "tools" / "ct2_to_hf.py"
SYSTEMS = ("batchscribe", "batchscribe-torch", "fw-sequential", "fw-batched-8", "fw-batched-16", "whisper-s2t",
           "whisper-s2t-beam5", "seed")  # fmt: skip
"""Run by default; `hf-pipeline-16` (transformers' batched ASR pipeline), `batchscribe-ct2`,
`batchscribe-no-packing` (every file in windows of its own: `--no-packing`), `batchscribe-told-en` (`--language
en`: told the language, as WhisperS2T is, instead of detecting it per file) and `batchscribe-before`
(another checkout's code, named by BENCH_BEFORE_SRC, e.g. a worktree's src: a before/after table
from one run) on request."""
ENGLISH_ONLY = ("whisper-s2t", "whisper-s2t-beam5", "batchscribe-told-en")
"""Systems without language detection (WhisperS2T takes each file's language from its caller, and is told "en"):
left out of the multilingual corpus rather than told the answer."""
BACKEND_OF = {
    "batchscribe": "auto", "batchscribe-ct2": "ct2", "batchscribe-torch": "torch", "batchscribe-no-packing": "auto",
    "batchscribe-before": "auto", "batchscribe-told-en": "auto",
}  # fmt: skip


def ct2_model(name: str) -> Path:
    from batchscribe.engine.models.resolve import resolve_model

    return resolve_model(name).path


def hf_model(name: str) -> Path:
    """The same weights in Hugging Face format, converted once, for the seed approach."""
    from batchscribe.engine.models.resolve import cache_dir

    target = cache_dir() / "hf" / name.strip("/").replace("/", "_")  # a size name or a model folder
    if not (target / "model.safetensors").exists():
        subprocess.run([sys.executable, str(CONVERTER), str(ct2_model(name)), str(target)], check=True)
    return target


def command(system: str, model: str, out: Path, files: list[Path], threads: int, device: str = "cpu") -> list[str]:
    paths = [str(f) for f in files]
    if system in BACKEND_OF:
        before = ["env", f"PYTHONPATH={os.environ['BENCH_BEFORE_SRC']}"] if system == "batchscribe-before" else []
        return [*before, sys.executable, "-m", "batchscribe", "transcribe", *paths, "-o", str(out), "--model", model,
                "--formats", "txt", "--overwrite", "--threads", str(threads), "--backend", BACKEND_OF[system],
                "--device", device, *(["--no-packing"] if system == "batchscribe-no-packing" else []),
                *(["--language", "en"] if system == "batchscribe-told-en" else [])]  # fmt: skip
    if system == "seed":
        return [sys.executable, str(SEED_TOOL), "--model", str(hf_model(model)), "--out", str(out),
                "--threads", str(threads), "--device", device, *paths]  # fmt: skip
    weights = hf_model(model) if system.startswith("hf-") else ct2_model(model)
    return [sys.executable, "-m", "bench.peers", system, str(weights), str(out), str(threads), device, *paths]


def load_seconds(system: str, stdout: str) -> float | None:
    """Each system reports its model-load time in its own words."""
    if system.startswith("batchscribe"):
        found = re.search(r"model loaded in ([0-9.]+) s", stdout)
    elif system == "seed":
        found = re.search(r"model load: ([0-9.]+) s", stdout)
    else:
        line = next((ln for ln in stdout.splitlines() if ln.startswith("{")), None)
        return json.loads(line)["load_seconds"] if line else None
    return float(found.group(1)) if found else None
