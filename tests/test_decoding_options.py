"""Decoding controls and outputs that Whisper users' scripts expect, on real speech (tiny.en).

1688-142285-0005 says "...accusing people of being shoppy at Helstone": tiny.en hears "Halston"
until it is told the name, with --hotwords or an initial prompt.
"""

from __future__ import annotations

import csv
import json

import pytest
from conftest import LIBRISPEECH, run_cli

from batchscribe.options import TranscribeOptions
from batchscribe.pipeline import Transcriber

pytestmark = pytest.mark.e2e

HELSTONE = LIBRISPEECH / "1688-142285-0005.flac"  # "... shoppy at Helstone"
OTHERS = [LIBRISPEECH / "3005-163389-0003.flac", LIBRISPEECH / "2414-128291-0002.flac"]


def _texts(summary) -> dict[str, str]:
    return {r.source: r.transcript.text for r in summary.results}


def test_a_files_prompt_fixes_its_name_and_changes_only_that_file():
    """With packing on, the prompted file's pieces go to windows of their own: the other files are
    packed exactly as in a run without it, and get the same words."""
    transcriber = Transcriber(TranscribeOptions(model="tiny.en", formats=("txt",)))
    plain = _texts(transcriber.run([str(HELSTONE)], None))[str(HELSTONE)]
    assert "Halston" in plain and "Helstone" not in plain  # the misrecognised name this test is about
    others = _texts(transcriber.run([str(p) for p in OTHERS], None))
    prompted = _texts(transcriber.run([str(HELSTONE), *map(str, OTHERS)], None, prompts={str(HELSTONE): "Helstone"}))
    assert "Helstone" in prompted[str(HELSTONE)]
    assert {k: v for k, v in prompted.items() if k != str(HELSTONE)} == others


def test_outputs_whisper_scripts_read(tmp_path):
    """--hotwords fixes the name; tsv parses back as openai-whisper writes it; JSON segments carry
    tokens, temperature, avg_logprob, compression_ratio and no_speech_prob within their ranges;
    --highlight-words underlines each word in SRT/VTT."""
    result = run_cli("transcribe", str(HELSTONE), "-o", str(tmp_path), "-f", "all", "--hotwords", "Helstone",
                     "--highlight_words", "True", "--word-timestamps", check=True)  # fmt: skip
    stem = tmp_path / HELSTONE.name  # its outputs are HELSTONE.name + .FORMAT
    assert "Helstone" in stem.with_name(stem.name + ".txt").read_text()
    with open(stem.with_name(stem.name + ".tsv"), newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    document = json.loads(stem.with_name(stem.name + ".json").read_text())
    segments = document["segments"]
    assert [(int(r["start"]), int(r["end"]), r["text"]) for r in rows] == [
        (round(s["start"] * 1000), round(s["end"] * 1000), s["text"].strip()) for s in segments
    ]
    for segment in segments:
        assert segment["tokens"] and all(isinstance(t, int) and 0 <= t < 51864 for t in segment["tokens"])
        assert segment["temperature"] == 0.0
        assert -2.0 < segment["avg_logprob"] <= 0.0
        assert 0.5 < segment["compression_ratio"] < 2.4
        assert 0.0 <= segment["no_speech_prob"] <= 0.2
        assert isinstance(segment["seek"], int) and segment["seek"] >= 0
    srt = stem.with_name(stem.name + ".srt").read_text()
    words = [w for s in segments for w in s["words"]]
    assert srt.count("<u>") == len(words) and "<u>Helstone.</u>" in srt
    assert stem.with_name(stem.name + ".vtt").read_text().count("<u>") == len(words)
    assert "RTFx" in result.stdout


def test_thresholds_decide_which_windows_fall_back():
    """A logprob threshold no decode can pass sends every window up the temperature ladder;
    without an increment there is no ladder; the default lets these clean windows through."""
    files = [str(HELSTONE), *map(str, OTHERS)]

    def temperatures(**options) -> list[float]:
        summary = Transcriber(TranscribeOptions(model="tiny.en", formats=("json",), **options)).run(files, None)
        return [s.temperature for r in summary.results for s in r.transcript.segments]

    assert set(temperatures(logprob_threshold=0.0)) - {0.0}, "nothing fell back"
    assert set(temperatures(logprob_threshold=0.0, temperature_increment_on_fallback=None)) == {0.0}
    assert set(temperatures()) == {0.0}


def test_no_packing_gives_every_file_its_transcript_alone():
    """Four short files whose words change when packed together (measured: three of them); with
    packing off each gets exactly what it gets alone."""
    files = [str(LIBRISPEECH / f"1998-15444-000{n}.flac") for n in (4, 5, 6, 7)]
    apart = Transcriber(TranscribeOptions(model="tiny.en", formats=("txt",), packing=False))
    alone = {path: _texts(apart.run([path], None))[path] for path in files}
    assert _texts(apart.run(files, None)) == alone
    packed = _texts(Transcriber(TranscribeOptions(model="tiny.en", formats=("txt",))).run(files, None))
    assert packed != alone  # what the switch is for


def test_the_pytorch_backend_takes_the_same_controls():
    options = TranscribeOptions(model="tiny.en", formats=("txt",), backend="torch", hotwords="Helstone")
    summary = Transcriber(options).run([str(HELSTONE)], None)
    (segment,) = summary.results[0].transcript.segments
    assert "Helstone" in segment.text and segment.temperature == 0.0 and segment.tokens
    assert 0.0 <= segment.no_speech_prob <= 0.2 and -2.0 < segment.avg_logprob <= 0.0


def test_run_says_what_it_does_without_a_line_per_file(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    for path in (HELSTONE, *OTHERS[:1]):
        (inbox / path.name).write_bytes(path.read_bytes())
    first = run_cli("run", str(inbox), "-o", str(tmp_path / "out"), "--once", check=True)
    start = first.stderr.splitlines()[0]
    assert start.startswith("batchscribe run: transcribing") and "model tiny.en" in start and "jobs.db" in start
    assert "2 queued, 0 already known" in first.stderr and " INFO " not in first.stderr
    assert first.stdout.startswith("2 succeeded, 0 dead;")
    again = run_cli("run", str(inbox), "-o", str(tmp_path / "out"), "--once", "--log-format", "json", check=True)
    lines = [json.loads(line) for line in again.stderr.splitlines()]
    assert [line["message"] for line in lines][1] == "0 queued, 2 already known"  # once, not once per file
    assert json.loads(again.stdout)["succeeded"] == 2
    listing = run_cli("jobs", "--store", str(tmp_path / "out" / ".batchscribe" / "jobs.db"), check=True).stdout
    rows = [line.split("\t") for line in listing.splitlines()]
    assert rows[0][:3] == ["id", "state", "attempts"]
    assert [row[1:3] for row in rows[1:]] == [["succeeded", "attempts 1"]] * 2


def test_without_the_vad_all_audio_is_decoded_in_28_s_pieces():
    from batchscribe.audio import VadOptions, open_audio, speech_pieces

    long = LIBRISPEECH.parent.parent / "longform" / "constructed_ljspeech_LJ001-0001_to_0032.flac"
    stream = open_audio(long)
    pieces = list(speech_pieces(stream.blocks(), VadOptions(enabled=False)))
    assert [round(p.start, 3) for p in pieces] == [28.0 * i for i in range(len(pieces))]
    assert all(abs(p.duration - 28.0) < 1e-6 for p in pieces[:-1])
    assert abs(sum(p.duration for p in pieces) - stream.decoded_seconds) < 0.01
    with_vad = list(speech_pieces(open_audio(long).blocks(), VadOptions()))
    assert sum(p.duration for p in with_vad) < sum(p.duration for p in pieces)  # the VAD leaves pauses out


def test_a_prompt_of_half_the_context_before_a_short_file(tmp_path):
    """A long --initial-prompt (a vocabulary list, cut to half the decoder's 448 tokens) left a
    3 s file's window no tokens to generate: the run ended with "the model failed on a batch"."""
    from media import speech, write_audio

    clip = write_audio(tmp_path / "clip.wav", speech(HELSTONE)[: 16000 * 3], 16000)  # its first 3 s
    vocabulary = ", ".join(["Helstone, Thornton, Hale, Milton, PostgreSQL, CTranslate2, SeaweedFS"] * 20)
    result = run_cli("transcribe", str(clip), "-o", str(tmp_path / "out"), "-f", "txt", "--initial-prompt", vocabulary,
                     check=True)  # fmt: skip
    assert "1 ok" in result.stderr + result.stdout
    assert (tmp_path / "out" / "clip.wav.txt").read_text().strip()
