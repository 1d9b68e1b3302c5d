"""Shared fixtures: the real speech corpus in ../shared/data and a runner for the real CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BATCHSCRIBE_TEST_DATA", REPO.parent / "shared" / "data"))
LIBRISPEECH = DATA / "librispeech" / "test-other"
LONGFORM = DATA / "longform" / "constructed_librispeech_test-other_6spk_60utt"

normalize = EnglishTextNormalizer()


def reference(relpath: str) -> str:
    """The reference transcript of a corpus file, as listed in MANIFEST.tsv."""
    with open(DATA / "MANIFEST.tsv", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if row[0] == relpath:
                text = row[3]
                return (DATA / text[5:].split(" ")[0]).read_text() if text.startswith("file:") else text
    raise KeyError(relpath)


def wer(references: list[str], hypotheses: list[str]) -> float:
    return jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses])


def run_cli(*args: str, check: bool = False, unprivileged: bool = False) -> subprocess.CompletedProcess:
    """Run `batchscribe ARGS` as a user would, in a fresh process.

    `unprivileged` drops root's power to read any file, so permission errors are real.
    """
    command = [sys.executable, "-m", "batchscribe", *args]
    if unprivileged and os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(
            f"batchscribe {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def librispeech_run(tmp_path_factory):
    """The 60 LibriSpeech test-other files transcribed once by the CLI."""
    out = tmp_path_factory.mktemp("librispeech")
    result = run_cli("transcribe", str(LIBRISPEECH), "-o", str(out), check=True)
    return out, result


@pytest.fixture(scope="session")
def torch_librispeech_run(tmp_path_factory):
    """The same 60 files on the PyTorch backend, in the same windows as the default run (PyTorch's
    own default packs 8 windows per batch rather than 4, which alone moves WER by a few tenths)."""
    out = tmp_path_factory.mktemp("librispeech-torch")
    result = run_cli(
        "transcribe", str(LIBRISPEECH), "-o", str(out), "--backend", "torch", "--batch-size", "4", check=True
    )
    return out, result


@pytest.fixture(scope="session", params=["auto", "torch"])
def longform_run(request, tmp_path_factory):
    """The 513 s file, on the default backend and on PyTorch's."""
    out = tmp_path_factory.mktemp(f"longform-{request.param}")
    result = run_cli(
        "transcribe", f"{LONGFORM}.flac", "-o", str(out), "--word-timestamps", "--backend", request.param, check=True
    )
    return out, result


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session (skipped where Debian's postgresql is not installed)."""
    from services import postgres, postgres_binaries

    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    with postgres() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server, request):
    """A fresh, empty database on the session's server: its URI."""
    import re

    return postgres_server.database(re.sub(r"\W", "_", request.node.name)[:50].lower() + f"_{os.getpid()}")
