"""The pipeline on a fake engine (tests/fake_engine.py): ordering, failure isolation, interruption and
resume, each in about a second. Real audio (real speech carrying tone marks), real VAD, packing and
writers; only the model is fake. The end-to-end tests with a real model are test_resume.py,
test_interrupt.py and test_bad_inputs.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fake_engine import PHRASES, FakeEngine, expected_text, marked_speech, write_wav
from media import write_audio

from batchscribe.audio import SAMPLE_RATE
from batchscribe.errors import ModelError
from batchscribe.options import TranscribeOptions
from batchscribe.pipeline import Transcriber
from batchscribe.sinks import FAILURES_FILE
from batchscribe.results import FileResult

FORMATS = ("txt", "json")
# Two 30 s windows: a0 a1 a2 b0 b1 | b2 c0 c1 d0 (each phrase is a 4.1 s piece; a window holds five).
TWO_WINDOWS = {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7], "d": [8]}
WAIT = 20.0  # seconds a scripted wait may take before the test calls it a hang


def make_files(folder: Path, scripts: dict[str, list[int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, phrases in scripts.items():
        write_wav(folder / f"{name}.wav", marked_speech(phrases))
    return folder


def transcriber(engine: FakeEngine) -> Transcriber:
    """One 30 s window per model batch, so a few files make several batches."""
    return Transcriber(TranscribeOptions(formats=FORMATS, batch_size=1), engine_loader=engine.load)


class Finished:
    """A progress listener recording the order files finish in; `then(name)` runs after each."""

    def __init__(self, then=None):
        self.names: list[str] = []
        self.then = then
        self.event: dict[str, threading.Event] = {}

    def started(self, files: int, skipped: int) -> None:
        pass

    def file_finished(self, result: FileResult) -> None:
        name = Path(result.source).stem
        self.names.append(name)
        self.event.setdefault(name, threading.Event()).set()
        if self.then:
            self.then(name)

    def wait(self, name: str) -> bool:
        return self.event.setdefault(name, threading.Event()).wait(WAIT)


def by_name(summary) -> dict[str, FileResult]:
    return {Path(r.source).stem: r for r in summary.results}


def assert_written(out: Path, name: str, phrases: list[int]) -> None:
    """All of a file's transcripts, whole, saying its phrases in order."""
    assert " ".join((out / f"{name}.wav.txt").read_text().split()) == expected_text(phrases)
    document = json.loads((out / f"{name}.wav.json").read_text())
    assert document["text"].strip() == expected_text(phrases)
    starts = [segment["start"] for segment in document["segments"]]
    assert starts == sorted(starts)
    assert (out / f".{name}.wav.batchscribe").exists()


def windows_holding(engine: FakeEngine, phrases: list[int]) -> list[int]:
    """Which decoded windows (numbered over all calls) hold any of `phrases`."""
    windows = [window for call in engine.calls for window in call]
    wanted = {PHRASES[p] for p in phrases}
    return [n for n, window in enumerate(windows) if wanted & set(window)]


def test_pieces_coming_back_out_of_order_still_give_each_file_its_own_words_in_order(tmp_path):
    """The first batch is held until the last file has finished: b's third piece (second batch)
    comes back before its first two, and every file still reads its phrases in order."""
    inputs = make_files(tmp_path / "in", TWO_WINDOWS)
    finished = Finished()

    def hold_first_batch(windows: list[list[str]]) -> None:
        if any(PHRASES[0] in window for window in windows) and not finished.wait("d"):
            raise AssertionError("d never finished while the first batch was held: the batches were not parallel")

    engine = FakeEngine(workers=2, before_decode=hold_first_batch)
    summary = transcriber(engine).run([str(inputs)], tmp_path / "out", finished)

    results = by_name(summary)
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(TWO_WINDOWS, "ok")
    for name, phrases in TWO_WINDOWS.items():
        assert results[name].transcript.text == expected_text(phrases)
        assert_written(tmp_path / "out", name, phrases)
    assert len(windows_holding(engine, [3, 5])) == 2, "b's pieces were meant to span both batches"
    assert finished.names.index("d") < finished.names.index("b")
    assert finished.names.index("d") < finished.names.index("a")


def test_a_file_that_cannot_be_decoded_fails_alone_with_its_reason(tmp_path):
    inputs = make_files(tmp_path / "in", {"a": [0], "c": [1]})
    (inputs / "b.wav").write_bytes(np.random.default_rng(0).bytes(20_000))  # not audio at all
    out = tmp_path / "out"
    summary = transcriber(FakeEngine()).run([str(inputs)], out)

    results = by_name(summary)
    assert [results[n].status for n in "abc"] == ["ok", "failed", "ok"]
    assert "b.wav" in results["b"].error and "not a recognised audio" in results["b"].error
    assert_written(out, "a", [0])
    assert_written(out, "c", [1])
    assert not list(out.glob("b.*"))
    failures = [json.loads(line) for line in (out / FAILURES_FILE).read_text().splitlines()]
    assert failures == [{"input": str(inputs / "b.wav"), "error": results["b"].error}]


def test_a_file_failing_after_its_speech_was_batched_with_others_fails_alone(tmp_path):
    """A truncated file is found out only at its end, after its first piece went into the model
    batch it shares with the other files: the words that come back for it are dropped, theirs kept."""
    inputs = make_files(tmp_path / "in", {"a": [0], "c": [1]})
    speech = np.concatenate([marked_speech([2, 3]), np.zeros(116 * SAMPLE_RATE, np.float32), marked_speech([4])])
    whole = write_audio(tmp_path / "whole.flac", speech, SAMPLE_RATE, codec="flac")
    prefix = write_audio(tmp_path / "prefix.flac", speech[: 122 * SAMPLE_RATE], SAMPLE_RATE, codec="flac")
    # The first 122 s of 140 (FLAC frames are independent): two 60 s blocks decode and yield speech first.
    (inputs / "b.flac").write_bytes(whole.read_bytes()[: prefix.stat().st_size])
    out = tmp_path / "out"
    engine = FakeEngine()
    summary = transcriber(engine).run([str(inputs)], out)

    results = by_name(summary)
    assert [results[n].status for n in "abc"] == ["ok", "failed", "ok"]
    assert "truncated" in results["b"].error
    assert windows_holding(engine, [0]) == windows_holding(engine, [2]), "b's speech was meant to share a's batch"
    assert_written(out, "a", [0])
    assert_written(out, "c", [1])
    assert not list(out.glob("b.*"))


def test_the_model_failing_on_a_batch_ends_the_run_keeping_finished_transcripts_then_a_rerun_resumes(tmp_path):
    """A model error is not a file's fault (out of GPU memory, a missing library): the run stops with
    an error that says to re-run, transcripts already written stay whole, and a re-run does the rest."""
    inputs = make_files(tmp_path / "in", TWO_WINDOWS)
    out = tmp_path / "out"
    broken = threading.Event()

    def fail_second_batch(windows: list[list[str]]) -> None:
        if broken.is_set() or any(PHRASES[8] in window for window in windows):
            broken.set()  # from then on every call fails, its pieces decoded alone too
            raise RuntimeError("scripted: CUDA out of memory")

    finished = Finished()
    with pytest.raises(ModelError, match="scripted: CUDA out of memory.*re-run to resume"):
        transcriber(FakeEngine(before_decode=fail_second_batch)).run([str(inputs)], out, finished)
    assert finished.names == ["a"]  # the only file wholly in the first batch
    assert_written(out, "a", TWO_WINDOWS["a"])
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
    assert sorted(p.name for p in out.iterdir()) == [".a.wav.batchscribe", "a.wav.json", "a.wav.txt"]

    engine = FakeEngine()
    summary = transcriber(engine).run([str(inputs)], out)
    assert {name: r.status for name, r in by_name(summary).items()} == {
        "a": "skipped", "b": "ok", "c": "ok", "d": "ok"
    }  # fmt: skip
    assert windows_holding(engine, TWO_WINDOWS["a"]) == []
    for name in "bcd":
        assert_written(out, name, TWO_WINDOWS[name])


def test_audio_the_model_fails_on_fails_its_own_file_and_the_others_in_its_batch_are_transcribed(tmp_path):
    """The model raising on one file's speech (every time, whatever it is batched with) is that
    file's failure: the batch's pieces are decoded again alone, the files beside it in its window
    are written, the run goes on, and the file's error says what the model said."""
    inputs = make_files(tmp_path / "in", TWO_WINDOWS)
    out = tmp_path / "out"

    def poisoned(windows: list[list[str]]) -> None:
        if any(PHRASES[8] in window for window in windows):
            raise IndexError("scripted: list index out of range")

    engine = FakeEngine(before_decode=poisoned)
    summary = transcriber(engine).run([str(inputs)], out)
    results = by_name(summary)
    assert {name: r.status for name, r in results.items()} == {"a": "ok", "b": "ok", "c": "ok", "d": "failed"}
    assert "the model failed on its audio: IndexError: scripted: list index out of range" in results["d"].error
    shared, d_alone = windows_holding(engine, [8])  # d's piece in its packed window, then alone
    assert [w for call in engine.calls for w in call][d_alone] == [PHRASES[8]]
    assert len(windows_holding(engine, [5])) == 2  # b's last piece beside it, then alone
    for name in "abc":
        assert_written(out, name, TWO_WINDOWS[name])
    assert not list(out.glob("d.wav.*"))
    assert "d.wav" in (out / FAILURES_FILE).read_text()


def test_an_interrupt_keeps_finished_transcripts_whole_takes_no_more_batches_and_a_rerun_resumes(tmp_path):
    """Ctrl-C (KeyboardInterrupt in the main thread) right after the first file is written: no model
    batch starts after it, nothing half-written is left, and the next run transcribes only the rest."""
    inputs = make_files(tmp_path / "in", TWO_WINDOWS)
    out = tmp_path / "out"
    engine = FakeEngine()
    decoded_when_stopped = []

    def interrupt(name: str) -> None:
        decoded_when_stopped.append(len(engine.calls))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        transcriber(engine).run([str(inputs)], out, Finished(then=interrupt))
    assert len(engine.calls) == decoded_when_stopped[0]  # the second batch was never decoded
    assert windows_holding(engine, [8]) == []
    assert_written(out, "a", TWO_WINDOWS["a"])
    assert sorted(p.name for p in out.iterdir()) == [".a.wav.batchscribe", "a.wav.json", "a.wav.txt"]

    again = FakeEngine()
    summary = transcriber(again).run([str(inputs)], out)
    assert sorted(r.status for r in summary.results) == ["ok", "ok", "ok", "skipped"]
    assert windows_holding(again, TWO_WINDOWS["a"]) == []
    for name, phrases in TWO_WINDOWS.items():
        assert_written(out, name, phrases)


def test_a_rerun_skips_finished_files_and_transcribes_only_new_ones(tmp_path):
    inputs = make_files(tmp_path / "in", {"a": [0], "b": [1]})
    out = tmp_path / "out"
    first = transcriber(FakeEngine()).run([str(inputs)], out)
    assert [r.status for r in first.results] == ["ok", "ok"]

    make_files(inputs, {"c": [2]})
    engine = FakeEngine()
    second = transcriber(engine).run([str(inputs)], out)
    assert {name: r.status for name, r in by_name(second).items()} == {"a": "skipped", "b": "skipped", "c": "ok"}
    assert engine.calls == [[[PHRASES[2]]]]
    assert_written(out, "c", [2])

    idle = FakeEngine()
    third = transcriber(idle).run([str(inputs)], out)
    assert [r.status for r in third.results] == ["skipped"] * 3
    assert idle.loads == 0, "nothing to do must not load the model"


def test_files_read_on_several_threads_give_the_same_transcripts_and_a_bad_file_still_fails_alone(tmp_path):
    """--audio-workers 3: files are decoded and their speech found at once, on reader threads;
    packing, batches and every transcript are as with one reader."""
    scripts = {"a": [0, 1], "c": [2], "d": [3, 4, 5], "e": [6]}
    inputs = make_files(tmp_path / "in", scripts)
    (inputs / "b.wav").write_bytes(np.random.default_rng(0).bytes(20_000))  # not audio at all
    summaries = {}
    for workers in (1, 3):
        options = TranscribeOptions(formats=FORMATS, batch_size=1, audio_workers=workers)
        engine = FakeEngine()
        out = tmp_path / f"out{workers}"
        summaries[workers] = by_name(Transcriber(options, engine_loader=engine.load).run([str(inputs)], out))
        for name, phrases in scripts.items():
            assert_written(out, name, phrases)
        assert summaries[workers]["b"].status == "failed" and "not a recognised audio" in summaries[workers]["b"].error
    assert {n: r.transcript.text for n, r in summaries[1].items() if r.transcript} == {
        n: r.transcript.text for n, r in summaries[3].items() if r.transcript
    }


class EndlessStream:
    """A file that never ends (a live stream, or a file far longer than any test): speech blocks forever."""

    start, channels, blocks_read = 0.0, 1, 0

    def blocks(self):
        block = marked_speech([6, 7])
        while True:
            EndlessStream.blocks_read += 1
            yield block


def files_with_an_endless_one(tmp_path: Path, monkeypatch) -> Path:
    """a (two phrases) and b, a file that never ends (EndlessStream): a's two pieces and b's first share
    a window."""
    import batchscribe.pipeline.producer as producer

    inputs = make_files(tmp_path / "in", {"a": [0, 1], "b": [6]})
    real_open = producer.open_audio
    monkeypatch.setattr(producer, "open_audio", lambda path, track: EndlessStream() if "b.wav" in str(path)
                        else real_open(path, track))  # fmt: skip
    return inputs


def assert_nothing_reads_any_more() -> None:
    """Neither the audio thread nor a reader thread is left, and the endless file is read no further."""
    deadline = time.monotonic() + WAIT
    names = ("batchscribe-audio", "batchscribe-read")
    while any(t.name.startswith(names) for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith(names)]
    read = EndlessStream.blocks_read
    time.sleep(0.5)
    assert EndlessStream.blocks_read == read


def test_when_the_model_fails_the_audio_thread_and_its_readers_stop_reading(tmp_path, monkeypatch):
    """The run ends at its first batch while a file is still being read: that file is read no further,
    and neither the audio thread nor a reader thread is left behind."""
    inputs = files_with_an_endless_one(tmp_path, monkeypatch)
    engine = FakeEngine(before_decode=lambda windows: (_ for _ in ()).throw(RuntimeError("scripted: out of memory")))
    options = TranscribeOptions(formats=FORMATS, batch_size=1, audio_workers=2)
    with pytest.raises(ModelError):
        Transcriber(options, engine_loader=engine.load).run([str(inputs)], tmp_path / "out")
    assert_nothing_reads_any_more()
    assert len(engine.calls) == 3  # the batch, then a's and b's first piece alone (both failing: the model)


def test_an_endless_file_the_model_fails_on_is_read_no_further_and_the_run_ends(tmp_path, monkeypatch):
    """The model fails on every piece of a file that never ends: that file fails, its reader stops,
    and the run ends with the other file written (it is not read and decoded forever)."""
    inputs = files_with_an_endless_one(tmp_path, monkeypatch)

    def poisoned(windows: list[list[str]]) -> None:
        if any(PHRASES[6] in window or PHRASES[7] in window for window in windows):
            raise RuntimeError("scripted: the model cannot take this audio")

    engine = FakeEngine(before_decode=poisoned)
    options = TranscribeOptions(formats=FORMATS, batch_size=1, audio_workers=2)
    results = by_name(Transcriber(options, engine_loader=engine.load).run([str(inputs)], tmp_path / "out"))
    assert results["a"].status == "ok" and results["b"].status == "failed"
    assert "the model failed on its audio: RuntimeError: scripted" in results["b"].error
    assert_written(tmp_path / "out", "a", [0, 1])
    assert_nothing_reads_any_more()
