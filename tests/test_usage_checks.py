"""Usage mistakes are caught before any work, and a full disk stops the run cleanly (issue 13, kind 9)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import DATA, run_cli

from batchscribe import pipeline
from batchscribe.sinks import folder as folder_sink
from batchscribe.sinks.base import Failure
from batchscribe.errors import OutputError
from batchscribe.options import TranscribeOptions
from batchscribe.outputs.writers import write_set

CASE = DATA.parent / "bugs" / "13-odd-filenames"
FORMATS = ("txt", "srt", "vtt", "json")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Eight copies of a 2 s real speech clip."""
    folder = tmp_path_factory.mktemp("clips")
    with tarfile.open(CASE / "names.tar") as tar:
        tar.extractall(folder / "case", filter="data")
    clip = folder / "case" / "names" / "-leading-dash.flac"
    inputs = folder / "in"
    inputs.mkdir()
    for n in range(8):
        shutil.copy(clip, inputs / f"clip{n}.flac")
    return inputs


def _complete_sets(out: Path) -> set[str]:
    """The stems that have every format; asserts no stem has only some (half a set)."""
    stems: dict[str, set[str]] = {}
    for path in out.iterdir():
        if not path.name.startswith(".") and path.suffix[1:] in FORMATS:
            stems.setdefault(path.stem, set()).add(path.suffix[1:])
    partial = {s: f for s, f in stems.items() if f != set(FORMATS)}
    assert not partial, f"half a transcript set: {partial}"
    assert not list(out.rglob("*.partial"))
    return set(stems)


def test_mistyped_paths_and_empty_folders_create_nothing(tmp_path, clips):
    out = tmp_path / "out"
    mistyped = run_cli("transcribe", str(tmp_path / "recordigns"), "-o", str(out))
    assert mistyped.returncode == 2 and "nothing to transcribe" in mistyped.stderr, mistyped.stderr
    assert "no such file or directory" in mistyped.stderr and "Check the path" in mistyped.stderr
    assert not out.exists(), "a mistyped input must not create the output folder (nor failures.jsonl)"

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no audio here")
    nothing = run_cli("transcribe", str(empty), "-o", str(out))
    assert nothing.returncode == 2 and "no media files in this folder" in nothing.stderr, nothing.stderr
    assert not out.exists()

    one_empty = run_cli("transcribe", str(empty), str(clips / "clip0.flac"), "-o", str(out))
    assert one_empty.returncode == 0, one_empty.stderr
    assert "no media files in this folder" in one_empty.stderr  # warned, the rest transcribed
    assert _complete_sets(out) == {"clip0.flac"}
    assert "Traceback" not in mistyped.stderr + nothing.stderr + one_empty.stderr


def test_impossible_options_and_unwritable_folders_are_named_before_the_model_loads(tmp_path, clips):
    out = tmp_path / "out"
    unknown = run_cli("transcribe", str(clips), "-o", str(out), "--model", "base", "--language", "xx")
    assert unknown.returncode == 2 and "'xx' is not a language code Whisper knows" in unknown.stderr, unknown.stderr
    english_only = run_cli("transcribe", str(clips), "-o", str(out), "--language", "de")
    assert (
        english_only.returncode == 2
        and "English-only" in english_only.stderr
        and "--model base" in (english_only.stderr)
    )
    assert "Traceback" not in unknown.stderr + english_only.stderr
    assert not out.exists()

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for command in (["transcribe", str(clips)], ["run", str(clips), "--once"]):
        result = run_cli(*command, "-o", str(locked / "out"), unprivileged=True)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "cannot be written there" in result.stderr and "writable" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "succeeded" not in result.stdout


def test_a_full_disk_stops_the_run_and_keeps_only_whole_sets(tmp_path, clips, monkeypatch):
    """Fault injection at the write layer: the third transcript set meets a full disk."""
    sets = []

    def fills_up(files):
        sets.append(files)
        if len(sets) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_set(files)

    monkeypatch.setattr(folder_sink, "write_set", fills_up)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as stopped:
        pipeline.run([str(clips / f"clip{n}.flac") for n in range(4)], out, TranscribeOptions())
    message = str(stopped.value)
    assert "disk is full" in message and "2 complete transcript set(s) are kept" in message
    assert "run the same command again" in message
    assert len(_complete_sets(out)) == 2
    assert len(sets) == 3, "no new file may be transcribed and written after the disk filled"


def test_failures_jsonl_that_cannot_be_written_is_a_warning_not_a_traceback(tmp_path, monkeypatch, caplog):
    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder_sink, "write_atomic", full)
    folder_sink.FolderSink(tmp_path).record_failures([Failure("/in/a.wav", "/in/a.wav: not audio")])  # must not raise
    assert "failures.jsonl could not be written" in caplog.text and "/in/a.wav: not audio" in caplog.text


@pytest.fixture
def small_disk(tmp_path):
    """A 100 KiB tmpfs (root only): room for a few transcript sets, then ENOSPC for real."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the fault-injection test covers the logic")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk_through_transcribe_and_run(small_disk, clips, tmp_path):
    out = small_disk / "out"
    result = run_cli("transcribe", str(clips), "-o", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "disk is full" in result.stderr and "run the same command again" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    kept = _complete_sets(out)
    assert 0 < len(kept) < 8
    shutil.rmtree(out)
    ran = run_cli("run", str(clips), "-o", str(out), "--once", "--store", str(tmp_path / "jobs.db"))
    assert ran.returncode == 2 and "disk is full" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    assert 0 < len(_complete_sets(out)) < 8
