import json

import pytest

from batchscribe.outputs.segments import build_segments
from batchscribe.outputs.writers import to_json, to_srt, to_txt, to_vtt, write_atomic
from batchscribe.results import Transcript, Word


def _words(*items):
    return [Word(s, e, w, 0.9) for s, e, w in items]


def test_segments_split_at_sentence_ends_and_pauses():
    words = _words(
        (0.0, 0.5, " Hello"), (0.5, 2.2, " there."), (2.5, 3.0, " Next"), (3.0, 3.5, " one"), (6.0, 6.5, " Later")
    )
    segments = build_segments(words, keep_words=True)
    assert [s.text for s in segments] == ["Hello there.", "Next one", "Later"]
    assert segments[0].words[-1].word == " there."
    assert [s.id for s in segments] == [0, 1, 2]


def test_a_segment_never_spans_two_languages():
    """Code-switching: words decoded again in another language carry it; the segment ends there
    (no pause, no sentence end) and each JSON segment says its language."""
    french = _words((0.0, 0.4, " Bonjour"), (0.4, 0.8, " et"))
    german = [Word(0.9, 1.3, " und", 0.9, language="de"), Word(1.3, 1.8, " Wasser", 0.9, language="de")]
    segments = build_segments(french + german, keep_words=False)
    assert [(s.text, s.language) for s in segments] == [("Bonjour et", None), ("und Wasser", "de")]
    document = json.loads(to_json(Transcript(segments, "fr", 0.9, 2.0), {}))
    assert [s["language"] for s in document["segments"]] == ["fr", "de"]


def test_formats():
    transcript = Transcript(
        build_segments(_words((1.5, 2.0, " Hi"), (3661.25, 3662.0, " bye")), False), "en", 1.0, 3663.0
    )
    assert to_txt(transcript, {}) == "Hi\nbye\n"
    assert to_srt(transcript, {}).startswith(
        "1\n00:00:01,500 --> 00:00:02,000\nHi\n\n2\n01:01:01,250 --> 01:01:02,000\nbye\n"
    )
    assert to_vtt(transcript, {}).startswith("WEBVTT\n\n00:00:01.500 --> 00:00:02.000\nHi\n")
    document = json.loads(to_json(transcript, {"model": "tiny.en"}))
    assert document["text"] == "Hi bye"
    assert document["segments"][0] == {"id": 0, "start": 1.5, "end": 2.0, "text": "Hi", "language": "en"}
    assert document["language"] == "en" and document["model"] == "tiny.en"


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "t.txt"
    write_atomic(target, "old")

    class Boom(Exception):
        pass

    def failing_replace(*_):
        raise Boom()

    monkeypatch.setattr("os.replace", failing_replace)
    with pytest.raises(Boom):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]



def test_a_killed_writers_temporary_is_removed_by_the_next_write_of_that_file(tmp_path):
    """SIGKILL leaves no chance to clean up; only temporaries of writers no longer running go."""
    import os
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    abandoned = tmp_path / f".t.txt.{host}-{dead.pid}.0badc0de.partial"
    live = tmp_path / f".t.txt.{host}-{os.getpid()}.0badc0de.partial"
    elsewhere = tmp_path / f".t.txt.other-host-{dead.pid}.0badc0de.partial"
    for stray in (abandoned, live, elsewhere):
        stray.write_text("half")
    write_atomic(tmp_path / "t.txt", "whole")
    assert (tmp_path / "t.txt").read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.txt", live.name, elsewhere.name])
