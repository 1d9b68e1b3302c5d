"""The Python API, streaming VAD and multilingual detection, on real speech."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from batchscribe import RunSummary, Transcript, transcribe
from batchscribe.audio import open_audio, speech_pieces
from batchscribe.errors import OptionsError
from conftest import DATA, LONGFORM, reference, wer

pytestmark = pytest.mark.e2e


def test_api_returns_typed_results_without_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = DATA / "english_misc" / "cmu_arctic" / "cmu_arctic_us_aew_a0001.wav"
    summary = transcribe(clip, word_timestamps=True)
    assert isinstance(summary, RunSummary) and summary.ok
    (result,) = summary.results
    assert isinstance(result.transcript, Transcript)
    assert wer([reference("english_misc/cmu_arctic/cmu_arctic_us_aew_a0001.wav")], [result.transcript.text]) <= 0.2
    assert result.transcript.segments[0].words
    assert list(tmp_path.iterdir()) == []


def test_streaming_vad_is_independent_of_block_size():
    """Small blocks (as a 3-hour file is read) find the same speech as large ones."""
    path = f"{LONGFORM}.flac"
    large = list(speech_pieces(open_audio(path).blocks(block_seconds=600)))
    small = list(speech_pieces(open_audio(path).blocks(block_seconds=7)))
    assert max(p.duration for p in small) <= 28.0
    assert abs(len(large) - len(small)) <= 3
    covered = lambda pieces: sum(p.duration for p in pieces)  # noqa: E731
    assert covered(small) == pytest.approx(covered(large), rel=0.03)
    assert all(a.end <= b.start for a, b in pairwise(small))
    assert all(np.isfinite(p.audio).all() for p in small)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_multilingual_model_detects_each_files_language(backend):
    files = [
        DATA / "multilingual" / "de" / "fleurs-de-000.ogg",
        DATA / "english_misc" / "cmu_arctic" / "cmu_arctic_us_aew_a0002.wav",
    ]
    summary = transcribe(files, model="base", backend=backend)
    languages = {r.source.rsplit("/", 1)[-1]: r.transcript.language for r in summary.results}
    assert languages == {"fleurs-de-000.ogg": "de", "cmu_arctic_us_aew_a0002.wav": "en"}
    german = next(r for r in summary.results if r.source.endswith(".ogg")).transcript
    assert german.language_probability > 0.5
    assert "hongkong" in german.text.lower().replace(" ", "").replace("-", "")


def test_english_only_model_refuses_other_languages():
    with pytest.raises(OptionsError, match="English-only"):
        transcribe(DATA / "multilingual" / "de" / "fleurs-de-000.ogg", language="de")
