"""A transcript says when its language was never measured or is doubtful (issue 13, kind 10)."""

from __future__ import annotations

import json
import wave

from conftest import DATA, LIBRISPEECH, run_cli

from batchscribe.confidence import language_warnings
from batchscribe.results import Word

GERMAN = [DATA / "multilingual" / "de" / name for name in ("fleurs-de-003.ogg", "fleurs-de-007.ogg")]
ENGLISH = LIBRISPEECH / "2609-156975-0007.flac"  # mean word probability 0.71 under tiny.en


def _words(probability: float, count: int) -> list[Word]:
    return [Word(k * 0.5, k * 0.5 + 0.4, " word", probability) for k in range(count)]


def test_the_rule_on_words_built_here():
    assert "probably not English" in language_warnings(_words(0.4, 20), "en", None, multilingual=False)[0]
    assert language_warnings(_words(0.8, 20), "en", None, multilingual=False) == ()
    assert language_warnings(_words(0.3, 4), "en", None, multilingual=False) == ()  # too few words to judge
    assert "no speech found" in language_warnings([], None, None, multilingual=True)[0]
    assert "uncertain" in language_warnings(_words(0.9, 20), "sv", 0.3, multilingual=True)[0]
    assert language_warnings(_words(0.9, 20), "de", 0.97, multilingual=True) == ()


def test_german_under_the_english_only_model_is_flagged(tmp_path):
    out = tmp_path / "out"
    result = run_cli("transcribe", *(str(p) for p in GERMAN), str(ENGLISH), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 ok (2 with warnings, see their JSON)" in result.stdout, result.stdout
    for path in GERMAN:
        document = json.loads((out / f"{path.name}.json").read_text())
        assert document["language_probability"] is None  # never measured, not 1.0
        assert any("probably not English" in w for w in document["warnings"]), document["warnings"]
        assert f"{path.name}: the speech is probably not English" in result.stderr  # the log
    english = json.loads((out / f"{ENGLISH.name}.json").read_text())
    assert english["language"] == "en" and english["language_probability"] is None and english["warnings"] == []


def test_a_silent_file_under_base_claims_no_language(tmp_path):
    silent = tmp_path / "in" / "quiet.wav"
    silent.parent.mkdir()
    with wave.open(str(silent), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 16000 * 4)
    result = run_cli("transcribe", str(silent), str(GERMAN[0]), "-o", str(tmp_path / "out"), "--model", "base")
    assert result.returncode == 0, result.stderr
    quiet = json.loads((tmp_path / "out" / "quiet.wav.json").read_text())
    assert quiet["language"] is None and quiet["language_probability"] is None
    assert quiet["warnings"] == ["no speech found: the language was not detected"]
    german = json.loads((tmp_path / "out" / f"{GERMAN[0].name}.json").read_text())
    assert german["language"] == "de" and german["language_probability"] > 0.5 and german["warnings"] == []
    assert "1 with warnings" in result.stdout
