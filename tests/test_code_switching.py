"""A recording that changes language part-way (issue 13, kind 7): with a multilingual model each
part is transcribed in its own language and every JSON segment says which."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
from conftest import DATA, LIBRISPEECH, reference, run_cli
from media import speech, write_audio

pytestmark = pytest.mark.e2e
BUGS = Path(os.environ.get("BATCHSCRIBE_TEST_BUGS", DATA.parent / "bugs"))
HANDED = BUGS / "12-code-switch-fr-de"
PARTS = [("de", "fleurs-de-000"), ("es", "fleurs-es-004"), ("es", "fleurs-es-007")]  # another pair than fr -> de


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text.lower()).split()


def _wer(reference_text: str, hypothesis: str) -> float:
    return jiwer.wer(" ".join(_words(reference_text)), " ".join(_words(hypothesis)) or "-")


@pytest.fixture(scope="module")
def switched(tmp_path_factory):
    root = tmp_path_factory.mktemp("code-switching")
    folder = root / "in"
    folder.mkdir()
    pause = np.zeros(16000 * 3 // 2, np.float32)
    audio = []
    for language, name in PARTS:
        audio += [speech(DATA / "multilingual" / language / f"{name}.ogg"), pause]
    write_audio(folder / "de_then_es.wav", np.concatenate(audio), 16000, "pcm_s16le")
    shutil.copy(LIBRISPEECH / "1688-142285-0000.flac", folder / "english.flac")
    if HANDED.is_dir():
        shutil.copy(HANDED / "in" / "interview_fr_then_de.flac", folder)
    out = root / "out"
    run_cli("transcribe", str(folder), "-o", str(out), "--model", "base", check=True)
    return out


def _segments(out: Path, name: str) -> list[dict]:
    (path,) = list(out.glob(f"{name}.*.json"))  # the input's name plus .json
    return json.loads(path.read_text())["segments"]


def _language_text(segments: list[dict], language: str) -> str:
    return " ".join(s["text"] for s in segments if s["language"] == language)


def test_a_change_from_german_to_spanish_is_followed(switched):
    segments = _segments(switched, "de_then_es")
    languages = [s["language"] for s in segments]
    assert languages[0] == "de" and languages[-1] == "es"
    assert languages == sorted(languages, key=lambda language: language != "de"), languages  # one change
    for language in ("de", "es"):
        references = " ".join(
            reference(f"multilingual/{lang}/{name}.ogg") for lang, name in PARTS if lang == language
        )
        assert _wer(references, _language_text(segments, language)) <= 0.35, language


def test_one_language_files_keep_one_language(switched):
    segments = _segments(switched, "english")
    assert segments and {s["language"] for s in segments} == {"en"}


def test_handed_french_then_german(switched):
    if not HANDED.is_dir():
        pytest.skip(f"{HANDED} is not here")
    segments = _segments(switched, "interview_fr_then_de")
    french, german = _language_text(segments, "fr"), _language_text(segments, "de")
    meta = json.loads((HANDED / "meta.json").read_text())
    assert _wer(meta["refs"][0], french) <= 0.35
    assert _wer(" ".join(meta["refs"][1:]), german) <= 0.35
    found = [w for w in ("wasser", "dinosaurier", "höhle", "berge", "mekka") if w in _words(german)]
    assert len(found) >= 4, german  # base hears "mekka" as "mecker"
