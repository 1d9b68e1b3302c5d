"""Find the speech in a stream of audio blocks (Silero VAD as shipped by faster-whisper).

Long audio is cut on pauses, never at blind 30 s boundaries. Detection runs on a rolling
buffer: a piece is emitted once a pause confirms it has ended, so memory stays bounded by
one block plus the speech still in progress.

The detector hears a conditioned copy of the audio (`DetectorView`), never the samples that are
transcribed: see its docstring for why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Iterable, Iterator

import numpy as np
from faster_whisper.vad import VadOptions as _SileroOptions
from faster_whisper.vad import get_speech_timestamps

from batchscribe.audio.decode import SAMPLE_RATE


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5
    min_silence_ms: int = 500
    speech_pad_ms: int = 300
    min_speech_ms: int = 0
    enabled: bool = True  # False (--vad-filter False): all audio, in pieces of max_piece_seconds
    # Pieces are packed into 30 s model windows, so none may be longer than this.
    max_piece_seconds: float = 28.0
    # Neighbouring speech closer than this is kept together, real pause included.
    merge_gap_seconds: float = 1.0


@dataclass
class SpeechPiece:
    """Speech from one file: `audio` starts `start` seconds into the source.

    `regions` are the (start, end) source times of the speech inside it: pieces keep short
    pauses, and a word cannot extend into one.
    """

    start: float
    audio: np.ndarray
    regions: tuple[tuple[float, float], ...] = ()
    language_probed: bool = False  # its file's language was detected on this piece (among others)
    source: str = ""  # the channel or track it was heard on, when a file's are heard apart

    @property
    def duration(self) -> float:
        return self.audio.size / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.start + self.duration

    def shifted(self, seconds: float) -> "SpeechPiece":
        """The same piece `seconds` later (to put it on the media's timeline)."""
        if not seconds:
            return self
        regions = tuple((start + seconds, end + seconds) for start, end in self.regions)
        return replace(self, start=self.start + seconds, regions=regions)


# The detector's copy of the audio: speech band only, and quiet speech raised to a level Silero
# was trained on. Measured on the MFA two-speaker file's hoarse second speaker (a cold, a laptop
# microphone: speech-band level ~15 dB under the first speaker's, low-frequency rumble above it):
# Silero's speech probabilities hover at 0.3-0.6 there, so what passes the 0.5 threshold depends
# on where its 32 ms frames happen to fall: the same recording alone gives 22.2 s of speech, after
# 0.1 s of leading silence 15.7 s, after 26.7 s (its place in the two-speaker file) 13.3 s, and
# the transcript loses those words. Through this view: 22.8-23.4 s at every offset tried.
HIGH_PASS_HZ = 100.0  # rumble, handling noise and hum lie below; voices' formants above
TARGET_DBFS = -20.0  # the loud (95th percentile) 32 ms frames of a block are raised to this
MAX_GAIN_DB = 30.0  # never more (a block of room noise stays room noise), and never a cut
SILENT_DBFS = -70.0  # frames below this (digital silence, dither) do not count towards the level
QUIETEST_SAMPLE = 1e-9  # smaller magnitudes become 0 (a 24-bit step is 1.2e-7)
_FRAME = 512


@cache
def _high_pass_response(taps: int = 2048) -> np.ndarray:
    """The first `taps` samples of the impulse response of a 4th-order Butterworth high-pass at
    HIGH_PASS_HZ (scipy.signal.butter(4, HIGH_PASS_HZ, "highpass", fs=SAMPLE_RATE), built here
    because importing scipy.signal costs 0.75 s of start-up): two biquads from the Audio EQ
    Cookbook (R. Bristow-Johnson), with the Butterworth Q = 1 / (2 cos((2k - 1) pi / 8)). The
    response falls below 1e-12 after 1,620 samples, so a filter of these taps is the IIR filter."""
    w0 = 2 * np.pi * HIGH_PASS_HZ / SAMPLE_RATE
    signal = [1.0] + [0.0] * (taps - 1)
    for k in (1, 2):
        q = 1 / (2 * np.cos((2 * k - 1) * np.pi / 8))  # 0.541 and 1.307
        alpha = np.sin(w0) / (2 * q)
        a0 = 1 + alpha
        b0, b1, b2 = (1 + np.cos(w0)) / 2 / a0, -(1 + np.cos(w0)) / a0, (1 + np.cos(w0)) / 2 / a0
        a1, a2 = -2 * np.cos(w0) / a0, (1 - alpha) / a0
        x1 = x2 = y1 = y2 = 0.0
        out = []
        for x in signal:
            y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            out.append(y)
            x1, x2, y1, y2 = x, x1, y, y1
        signal = out
    return np.array(signal)


_FFT_SIZE = 16384  # overlap-save segments: the fastest of 8k-64k on a 60 s block


@cache
def _high_pass_spectrum() -> np.ndarray:
    return np.fft.rfft(_high_pass_response(), _FFT_SIZE)


def _high_pass(history: np.ndarray, block: np.ndarray) -> np.ndarray:
    """`block` filtered (float64), `history` being the taps - 1 samples before it (overlap-save)."""
    response = _high_pass_response()
    taps = response.size
    step = _FFT_SIZE - taps + 1
    count = -(-block.size // step)
    signal = np.concatenate([history, block.astype(np.float64), np.zeros(count * step - block.size)])
    segments = np.lib.stride_tricks.sliding_window_view(signal, _FFT_SIZE)[::step]
    filtered = np.fft.irfft(np.fft.rfft(segments, axis=1) * _high_pass_spectrum(), _FFT_SIZE, axis=1)[:, taps - 1 :]
    return filtered.reshape(-1)[: block.size]


class DetectorView:
    """Streaming: each block high-passed at HIGH_PASS_HZ (4th-order Butterworth, its state carried
    from block to block) and raised by up to MAX_GAIN_DB so that its loud frames reach
    TARGET_DBFS. Audio already at speech level (LibriSpeech's loud frames are at -15 to -17 dBFS)
    gets no gain; noise-only audio raised by 15-30 dB (the koala noise clip, white, brown noise,
    50 Hz hum) still gives Silero no speech."""

    def __init__(self) -> None:
        self._history: np.ndarray | None = None  # the filter's input before this block

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if not block.size:
            return block
        taps = _high_pass_response().size
        if self._history is None:  # start as if settled at the first sample (scipy's sosfilt_zi)
            self._history = np.full(taps - 1, float(block[0]))
        filtered = _high_pass(self._history, block)
        self._history = np.concatenate([self._history, block.astype(np.float64)])[-(taps - 1) :]
        frames = filtered[: filtered.size // _FRAME * _FRAME].reshape(-1, _FRAME)
        levels = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20) if frames.size else np.zeros(0)
        levels = levels[levels > SILENT_DBFS]
        gain = float(np.clip(TARGET_DBFS - np.percentile(levels, 95), 0.0, MAX_GAIN_DB)) if levels.size else 0.0
        heard = (filtered * 10 ** (gain / 20)).astype(np.float32)
        # The filter's tail in digital silence decays into subnormal floats, which slow Silero's
        # ONNX kernels (1.26 -> 2.03 CPU s on the 513 s file); far below a 24-bit sample's step.
        heard[np.abs(heard) < QUIETEST_SAMPLE] = 0.0
        return heard


def _detect(buffer: np.ndarray, options: VadOptions) -> list[tuple[int, int]]:
    silero = _SileroOptions(
        threshold=options.threshold,
        min_silence_duration_ms=options.min_silence_ms,
        min_speech_duration_ms=options.min_speech_ms,
        speech_pad_ms=options.speech_pad_ms,
        max_speech_duration_s=options.max_piece_seconds,
    )
    return [(s["start"], s["end"]) for s in get_speech_timestamps(buffer, silero, sampling_rate=SAMPLE_RATE)]


def _regions(blocks: Iterable[np.ndarray], options: VadOptions) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (start_sample, end_sample, audio) of each speech region, in order."""
    # Speech that ends this close to the buffer's end may still continue in the next block.
    hold = int((options.min_silence_ms + 2 * options.speech_pad_ms) / 1000 * SAMPLE_RATE) + SAMPLE_RATE
    buffer = np.zeros(0, np.float32)
    heard = buffer  # the detector's view of `buffer`, sample for sample
    view = DetectorView()
    offset = 0  # source sample index of buffer[0]
    iterator = iter(blocks)
    block = next(iterator, None)
    while block is not None:
        following = next(iterator, None)
        buffer = np.concatenate([buffer, block]) if buffer.size else block
        heard = np.concatenate([heard, view(block)]) if heard.size else view(block)
        final = following is None
        settled = buffer.size if final else max(0, buffer.size - hold)
        keep_from = settled
        for start, end in _detect(heard, options):
            if end <= settled or final:
                yield offset + start, offset + end, buffer[start:end]
            else:
                keep_from = min(keep_from, start)
                break
        buffer = buffer[keep_from:].copy()
        heard = heard[keep_from:].copy()
        offset += keep_from
        block = following


def speech_pieces(blocks: Iterable[np.ndarray], options: VadOptions = VadOptions()) -> Iterator[SpeechPiece]:
    """Yield the speech of a block stream as pieces no longer than `max_piece_seconds`."""
    if not options.enabled:
        yield from _fixed_pieces(blocks, options.max_piece_seconds)
        return
    merge_gap = int(options.merge_gap_seconds * SAMPLE_RATE)
    max_samples = int(options.max_piece_seconds * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []

    def piece() -> SpeechPiece:
        regions = tuple((start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in spans)
        return SpeechPiece(regions[0][0], np.concatenate(parts), regions)

    for start, end, audio in _regions(blocks, options):
        if spans and start - spans[-1][1] <= merge_gap and end - spans[0][0] <= max_samples:
            parts.append(np.zeros(max(0, start - spans[-1][1]), np.float32))
        elif spans:
            yield piece()
            parts, spans = [], []
        parts.append(audio)
        spans.append((start, end))
    if spans:
        yield piece()


def _fixed_pieces(blocks: Iterable[np.ndarray], seconds: float) -> Iterator[SpeechPiece]:
    """All the audio, speech or not, cut every `seconds` (openai-whisper's way, without a VAD)."""
    size = int(seconds * SAMPLE_RATE)
    buffer = np.zeros(0, np.float32)
    start = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while buffer.size >= size:
            yield _whole(start, buffer[:size].copy())
            buffer, start = buffer[size:], start + size
    if buffer.size:
        yield _whole(start, buffer)


def _whole(start_sample: int, audio: np.ndarray) -> SpeechPiece:
    start = start_sample / SAMPLE_RATE
    return SpeechPiece(start, audio, ((start, start + audio.size / SAMPLE_RATE),))
