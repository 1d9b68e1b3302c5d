"""A fake engine for unit tests of the pipeline and the worker: it hears tone marks, not words.

Each scripted phrase is sent as real speech (a CMU ARCTIC clip, so the real VAD finds it) with a
sine tone on top whose frequency names the phrase. The fake finds the tones in the log-mel features
the pipeline hands it and returns each phrase's words spread over its tone, as Whisper returns words
over speech. The words therefore travel with the audio through VAD, packing, batching and back, and
a test knows exactly which words each file must get, in which order, in milliseconds per batch.

    engine = FakeEngine()
    Transcriber(options, engine_loader=engine.load)  # the pipeline's seam (pipeline.py)
    write_wav(path, marked_speech([0, 3]))            # a file saying PHRASES[0] then PHRASES[3]
    expected_text([0, 3])                             # what its transcript must read

`before_decode(phrases)` is called on the model worker's thread before each batch is decoded, with
the phrases heard in each of its windows: a test blocks there (pieces coming back out of order),
raises (the model failing), or asks a worker to stop.
"""

from __future__ import annotations

import threading
import wave
from functools import cache
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from conftest import DATA
from media import speech

from batchscribe.audio import SAMPLE_RATE
from batchscribe.engine.backends.base import FRAMES_PER_SECOND, DecodedWindow, LogMel
from batchscribe.engine.windows import WINDOW_SECONDS
from batchscribe.errors import OptionsError
from batchscribe.results import Word

PHRASES = (
    "alpha bravo charlie delta echo foxtrot",
    "golf hotel india juliett kilo lima",
    "mike november oscar papa quebec romeo",
    "sierra tango uniform victor whiskey xray",
    "yankee zulu one two three four",
    "five six seven eight nine ten",
    "red orange yellow green blue violet",
    "north south east west up down",
    "spring summer autumn winter rain snow",
)
# One tone per phrase, each on its own mel bin (46 to 76 of 80), above most speech energy.
TONES_HZ = (2200, 3000, 3500, 4000, 4500, 5000, 5600, 6200, 6800)
TONE_AMPLITUDE = 0.2
CARRIER = DATA / "english_misc" / "cmu_arctic" / "cmu_arctic_us_aew_a0001.wav"  # 3.9 s of speech
PAUSE_SECONDS = 2.0  # between phrases: longer than the VAD's merge gap, so each phrase is a piece of its own
N_MELS = 80  # tiny.en's, which the pipeline's audio thread computes features with

MARK_STRENGTH = 0.3  # a tone's bin above the bins 3 away, in log-mel feature units (1.2 decades)
MIN_MARK_SECONDS = 0.3  # shorter runs are noise
MAX_MARK_GAP_SECONDS = 0.5  # a longer gap starts a new run (another piece of the window)
MIN_MARKED_SHARE = 0.5  # of a run's frames; speech alone marks a scattered frame here and there


@cache
def _carrier() -> np.ndarray:
    return speech(CARRIER)


def marked_speech(phrases: list[int], pause: float = PAUSE_SECONDS) -> np.ndarray:
    """16 kHz mono float32 audio saying `phrases` (indices into PHRASES), each a piece of its own."""
    carrier = _carrier()
    time = np.arange(carrier.size) / SAMPLE_RATE
    silence = np.zeros(int(pause * SAMPLE_RATE), np.float32)
    parts = [silence]
    for phrase in phrases:
        tone = TONE_AMPLITUDE * np.sin(2 * np.pi * TONES_HZ[phrase] * time)
        parts += [(carrier + tone).astype(np.float32), silence]
    return np.concatenate(parts)


def expected_text(phrases: list[int]) -> str:
    """The transcript text of a file made by `marked_speech(phrases)`."""
    return " ".join(PHRASES[phrase] for phrase in phrases)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """Write 16 kHz mono samples as 16-bit PCM WAV (stdlib wave)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@cache
def _tone_bins() -> tuple[int, ...]:
    mel = LogMel(N_MELS)
    time = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    bins = tuple(int(mel.features(np.sin(2 * np.pi * hz * time).astype(np.float32))[:, 50].argmax()) for hz in TONES_HZ)
    assert len(set(bins)) == len(bins) and max(bins) + 3 < N_MELS, bins
    return bins


def heard(features: np.ndarray, content_seconds: float) -> list[tuple[int, float, float]]:
    """(phrase, start, end) of each tone in one window's (n_mels, frames) features, seconds in the window.

    Each phrase's tone is looked for on its own: a frame of speech that peaks near another tone's bin
    must not cut a run in two, and a few such frames are too sparse to make a run of their own.
    """
    bins = np.array(_tone_bins())
    frames = features[:, : int(round(min(content_seconds, WINDOW_SECONDS) * FRAMES_PER_SECOND))]
    marked = frames[bins] - np.maximum(frames[bins - 3], frames[bins + 3]) > MARK_STRENGTH  # (phrases, frames)
    found = []
    max_gap = MAX_MARK_GAP_SECONDS * FRAMES_PER_SECOND
    for phrase, row in enumerate(marked):
        hits = np.flatnonzero(row)
        if not hits.size:
            continue
        for run in np.split(hits, np.flatnonzero(np.diff(hits) > max_gap) + 1):
            first, last = int(run[0]), int(run[-1])
            length = last + 1 - first
            if length >= MIN_MARK_SECONDS * FRAMES_PER_SECOND and run.size >= MIN_MARKED_SHARE * length:
                found.append((phrase, first / FRAMES_PER_SECOND, (last + 1) / FRAMES_PER_SECOND))
    return sorted(found, key=lambda run: run[1])


def _decoded(runs: list[tuple[int, float, float]]) -> DecodedWindow:
    words = []
    for phrase, start, end in runs:
        spoken = PHRASES[phrase].split()
        step = (end - start) / len(spoken)
        words += [Word(start + k * step, start + (k + 0.8) * step, " " + w, 0.9) for k, w in enumerate(spoken)]
    if not words:
        return DecodedWindow([], "", avg_logprob=-0.5, no_speech_prob=0.9)
    return DecodedWindow(words, "".join(w.word for w in words), avg_logprob=-0.1, no_speech_prob=0.01)


class FakeEngine:
    """An Engine (engine/backends/base.py) for English that returns the phrases its tones name."""

    is_multilingual = False

    def __init__(self, workers: int = 1, before_decode: Optional[Callable[[list[list[str]]], None]] = None):
        self.workers = workers  # batches decoded at once, as Placement.workers
        self.before_decode = before_decode
        self.mel = LogMel(N_MELS)
        self.loads = 0
        self.calls: list[list[list[str]]] = []  # per decode call, the phrases heard in each window
        self._lock = threading.Lock()

    def load(self, model: object, placement: object) -> FakeEngine:
        """An engine_loader for Transcriber: this engine, whatever the model."""
        self.loads += 1
        return self

    def features(self, window_audio: np.ndarray) -> np.ndarray:
        return self.mel.features(window_audio)

    def tokenizer(self, language: str, task: str) -> None:
        if language != "en" or task != "transcribe":
            raise OptionsError(f"the fake engine is English-only: it cannot {task} '{language}' audio")

    def detect_language(self, pieces: list) -> tuple[str, float]:
        return "en", 1.0

    def decode(self, features: np.ndarray, content_seconds: list[float], language: str, options: object) -> list:
        runs = [heard(window, seconds) for window, seconds in zip(features, content_seconds, strict=True)]
        phrases = [[PHRASES[phrase] for phrase, _, _ in window] for window in runs]
        with self._lock:
            self.calls.append(phrases)
        if self.before_decode is not None:
            self.before_decode(phrases)
        return [_decoded(window) for window in runs]
