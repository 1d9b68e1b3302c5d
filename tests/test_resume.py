"""Re-runs skip what is done for the same content and settings; --overwrite forces."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import DATA, run_cli

pytestmark = pytest.mark.e2e

CLIPS = ["cmu_arctic_us_aew_a0001.wav", "cmu_arctic_us_aew_a0002.wav"]


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in CLIPS:
        shutil.copy(DATA / "english_misc" / "cmu_arctic" / name, folder / name)
    return folder


def _stamp_times(out):
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}


def test_rerun_skips_done_files_and_redoes_changed_ones(inputs, tmp_path):
    out = tmp_path / "out"
    first = run_cli("transcribe", str(inputs), "-o", str(out), check=True)
    assert "2 ok, 0 failed, 0 skipped" in first.stdout
    before = _stamp_times(out)

    second = run_cli("transcribe", str(inputs), "-o", str(out), check=True)
    assert "0 ok, 0 failed, 2 skipped" in second.stdout
    assert _stamp_times(out) == before

    # New content under an old name is transcribed again; the other file is still skipped.
    shutil.copy(DATA / "english_misc" / "cmu_arctic" / "cmu_arctic_us_aew_a0003.wav", inputs / CLIPS[0])
    third = run_cli("transcribe", str(inputs), "-o", str(out), check=True)
    assert "1 ok, 0 failed, 1 skipped" in third.stdout

    # Different settings mean different transcripts: nothing is skipped.
    fourth = run_cli("transcribe", str(inputs), "-o", str(out), "--beam-size", "2", check=True)
    assert "2 ok, 0 failed, 0 skipped" in fourth.stdout
    assert json.loads((out / "cmu_arctic_us_aew_a0002.wav.json").read_text())["options"]["beam_size"] == 2


def test_overwrite_forces_and_missing_output_is_redone(inputs, tmp_path):
    out = tmp_path / "out"
    run_cli("transcribe", str(inputs), "-o", str(out), check=True)
    forced = run_cli("transcribe", str(inputs), "-o", str(out), "--overwrite", check=True)
    assert "2 ok, 0 failed, 0 skipped" in forced.stdout
    (out / "cmu_arctic_us_aew_a0001.wav.srt").unlink()
    again = run_cli("transcribe", str(inputs), "-o", str(out), check=True)
    assert "1 ok, 0 failed, 1 skipped" in again.stdout
    assert (out / "cmu_arctic_us_aew_a0001.wav.srt").exists()


def test_formats_option_writes_only_those(inputs, tmp_path):
    out = tmp_path / "out"
    run_cli("transcribe", str(inputs / CLIPS[0]), "-o", str(out), "--formats", "srt,txt", check=True)
    assert sorted(p.suffix for p in out.iterdir() if not p.name.startswith(".")) == [".srt", ".txt"]


def test_usage_errors_exit_2_with_a_message(tmp_path):
    result = run_cli("transcribe", str(tmp_path), "-o", str(tmp_path / "o"), "--model", str(tmp_path))
    assert result.returncode == 2 and "no CTranslate2 model.bin" in result.stderr
    result = run_cli("transcribe", str(tmp_path), "-o", str(tmp_path / "o"), "--formats", "doc")
    assert result.returncode == 2 and "choose from txt,srt,vtt,json" in result.stderr
