"""Ctrl-C keeps finished transcripts, leaves no partial file, and a re-run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tracemalloc
import wave

import numpy as np
import pytest

from batchscribe.audio import open_audio, speech_pieces
from conftest import LIBRISPEECH, LONGFORM, REPO, run_cli

pytestmark = pytest.mark.e2e


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's disposition and mask are inherited across exec, and a shell without job control
    starts a background command (`make test &`) with SIGINT ignored: the suite run that way sent
    its Ctrl-C into a command that ignored it and finished (exit 0). The command gets SIGINT as an
    interactive shell gives it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def test_interrupt_then_resume(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "batchscribe", "transcribe", str(LIBRISPEECH), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it could be interrupted: {process.communicate()}"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "re-run to resume" in stderr
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
    finished = len(list(out.glob("*.json")))
    assert 1 <= finished < 60

    resumed = run_cli("transcribe", str(LIBRISPEECH), "-o", str(out), check=True)
    done = int(resumed.stdout.split(" ok,")[0].split()[-1])
    skipped = int(resumed.stdout.split(" skipped")[0].split()[-1])
    assert done + skipped == 60 and skipped >= finished - 4  # the last few may lack their stamp


def test_an_hour_of_audio_streams_in_bounded_memory(tmp_path):
    """Reading and segmenting a 1-hour file never holds its decoded signal (230 MB) at once."""
    speech = np.concatenate([block for block in open_audio(f"{LONGFORM}.flac").blocks()])
    pcm = (speech * 32767).astype("<i2").tobytes()
    hour = tmp_path / "hour.wav"
    with wave.open(str(hour), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        for _ in range(8):  # 8 x 513 s = 68 min
            out.writeframes(pcm)
    del speech, pcm
    tracemalloc.start()
    pieces = 0
    seconds = 0.0
    for piece in speech_pieces(open_audio(hour).blocks()):
        pieces += 1
        seconds += piece.duration
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds > 3000 and pieces > 300
    assert peak < 60 * 2**20, f"peak {peak / 2**20:.0f} MiB"
