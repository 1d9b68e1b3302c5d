"""Accuracy and timestamps of the real CLI on real speech (no timing assertions)."""

from __future__ import annotations

import json
import re
from itertools import pairwise

import pytest

from batchscribe.engine.placement import cpu_has_amx
from conftest import DATA, LIBRISPEECH, LONGFORM, reference, run_cli, wer

pytestmark = pytest.mark.e2e


def test_librispeech_60_files_wer(librispeech_run):
    out, result = librispeech_run
    files = sorted(LIBRISPEECH.glob("*.flac"))
    assert len(files) == 60
    assert "60 ok, 0 failed, 0 skipped" in result.stdout
    references = [reference(f"librispeech/test-other/{f.name}") for f in files]
    hypotheses = [json.loads((out / f"{f.name}.json").read_text())["text"] for f in files]
    assert wer(references, hypotheses) <= 0.131
    encoder = "torch-bf16" if cpu_has_amx() else "ct2"  # auto's choice on this CPU family
    assert f"(backend: ct2, encoder: {encoder})" in result.stdout


def test_both_backends_meet_the_librispeech_bound(librispeech_run, torch_librispeech_run):
    """Each backend is bounded against the reference, not against the other: their gap depends on the CPU
    (0.6 points on an AMX Xeon, 0.76 on an AMD EPYC with AVX-512 BF16, in either direction's favour)."""
    files = sorted(LIBRISPEECH.glob("*.flac"))
    references = [reference(f"librispeech/test-other/{f.name}") for f in files]
    ct2, torch = (wer(references, [json.loads((out / f"{f.name}.json").read_text())["text"] for f in files])
                  for out, _ in (librispeech_run, torch_librispeech_run))  # fmt: skip
    assert "60 ok, 0 failed" in torch_librispeech_run[1].stdout
    assert "(backend: torch, encoder: torch)" in torch_librispeech_run[1].stdout
    assert ct2 <= 0.131 and torch <= 0.131


@pytest.mark.parametrize("run", ["librispeech_run", "torch_librispeech_run"])
def test_no_file_is_given_another_files_words(run, request):
    """Packing puts several files in one window; none may come back with a neighbour's sentence
    (no two of these references share 8 words in a row)."""
    out, _ = request.getfixturevalue(run)
    runs = {}
    for path in sorted(out.glob("*.txt")):
        words = re.findall(r"[a-z']+", path.read_text().lower())
        runs[path.name] = {tuple(words[i : i + 8]) for i in range(len(words) - 7)}
    shared = [(a, b) for a in runs for b in runs if a < b and runs[a] & runs[b]]
    assert shared == []


def test_both_encoders_agree_on_librispeech(librispeech_run, tmp_path):
    """The CTranslate2 int8 encoder and the PyTorch bf16 one: same bound, WER within a point of each other."""
    out, _ = librispeech_run
    files = sorted(LIBRISPEECH.glob("*.flac"))
    result = run_cli("transcribe", str(LIBRISPEECH), "-o", str(tmp_path), "--encoder", "ct2", "--formats", "txt",
                     check=True)  # fmt: skip
    assert "encoder: ct2)" in result.stdout
    references = [reference(f"librispeech/test-other/{f.name}") for f in files]
    ct2 = wer(references, [(tmp_path / f"{f.name}.txt").read_text() for f in files])
    torch = wer(references, [(out / f"{f.name}.txt").read_text() for f in files])
    assert ct2 <= 0.14 and abs(ct2 - torch) <= 0.01


def test_every_format_is_written_with_the_openai_json_shape(librispeech_run):
    out, _ = librispeech_run
    stem = out / "1688-142285-0000.flac"
    document = json.loads(stem.with_name(stem.name + ".json").read_text())
    assert {"text", "segments", "language", "language_probability", "duration", "model", "options"} <= set(document)
    assert document["language"] == "en" and document["model"] == "tiny.en"
    assert document["options"]["beam_size"] == 5
    first = document["segments"][0]
    assert set(first) == {  # openai-whisper's segment fields (words only with --word-timestamps), and its language
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio",
        "no_speech_prob", "language",
    }  # fmt: skip
    assert first["language"] == "en"
    assert stem.with_name(stem.name + ".txt").read_text().strip()
    assert stem.with_name(stem.name + ".srt").read_text().startswith("1\n00:00:")
    assert stem.with_name(stem.name + ".vtt").read_text().startswith("WEBVTT\n\n00:00:")
    assert not (out / "failures.jsonl").exists()


def test_longform_wer_and_timestamps_match_the_utterances(longform_run):
    out, _ = longform_run
    document = json.loads((out / f"{LONGFORM.name}.flac.json").read_text())
    assert wer([reference(f"longform/{LONGFORM.name}.flac")], [document["text"]]) <= 0.125
    segments = document["segments"]
    for previous, current in pairwise(segments):
        assert previous["start"] <= previous["end"] <= current["start"] <= current["end"]
    utterances = json.loads(LONGFORM.with_suffix(".segments.json").read_text())
    starts = [s["start"] for s in segments]
    ends = [s["end"] for s in segments]
    for utterance in utterances:
        assert min(abs(utterance["start"] - s) for s in starts) <= 1.0, utterance
        assert min(abs(utterance["end"] - e) for e in ends) <= 1.0, utterance
    for segment in segments:  # every segment overlaps the speech it transcribes
        assert any(u["start"] - 1.0 <= segment["end"] and segment["start"] <= u["end"] + 1.0 for u in utterances)


def test_word_timestamps_are_ordered_and_inside_their_segment(longform_run):
    out, _ = longform_run
    document = json.loads((out / f"{LONGFORM.name}.flac.json").read_text())
    words = [w for s in document["segments"] for w in s["words"]]
    assert len(words) > 1000
    for segment in document["segments"]:
        for word in segment["words"]:
            assert segment["start"] <= word["start"] <= word["end"] <= segment["end"]
            assert 0.0 <= word["probability"] <= 1.0
    assert all(a["start"] <= b["start"] for a, b in pairwise(words))


def test_continuous_reading(tmp_path):
    name = "constructed_ljspeech_LJ001-0001_to_0032"
    run_cli("transcribe", str(DATA / "longform" / f"{name}.flac"), "-o", str(tmp_path), check=True)
    document = json.loads((tmp_path / f"{name}.flac.json").read_text())
    assert wer([reference(f"longform/{name}.flac")], [document["text"]]) <= 0.08
    ends = [s["end"] for s in document["segments"]]
    assert ends == sorted(ends) and ends[-1] <= document["duration"]


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def test_every_file_in_formats_transcribes(tmp_path):
    result = run_cli("transcribe", str(DATA / "formats"), "-o", str(tmp_path), "--formats", "json")
    files = sorted(p for p in (DATA / "formats").iterdir())
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(files)} ok, 0 failed" in result.stdout
    for path in files:
        text = _plain(json.loads((tmp_path / f"{path.name}.json").read_text())["text"])
        if path.name.startswith("speech_recognition"):
            expected = ("one two three", "1 2 3")
        elif path.name.startswith("stereo_two_speakers"):
            expected = ("vanish behind the curtain",)
        else:
            expected = ("from fairest creatures we desire",)
        assert any(e in text for e in expected), (path.name, text)


def test_varied_real_world_english(tmp_path):
    """LJSpeech, AN4 commands, ARCTIC, LibriVox, FLEURS, Common Voice, spontaneous and 8 kHz telephone speech."""
    folders = [DATA / "english_misc", DATA / "telephony_8k"]
    run_cli("transcribe", *map(str, folders), "-o", str(tmp_path), "--formats", "json", check=True)
    references, hypotheses = [], []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder)
            output = tmp_path / relative.parent / f"{relative.name}.json"
            references.append(reference(str(path.relative_to(DATA))))
            hypotheses.append(json.loads(output.read_text())["text"])
    assert len(references) == 111
    assert wer(references, hypotheses) <= 0.10
