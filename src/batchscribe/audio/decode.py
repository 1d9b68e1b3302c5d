"""Streaming decode of any container/codec FFmpeg knows to 16 kHz mono float32 (PyAV).

Audio is yielded in blocks so a 3-hour file never needs its whole signal in memory.
Every way a file can be unusable becomes an InputError that names the problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from batchscribe.errors import InputError

SAMPLE_RATE = 16000

# A file that decodes to less than this share of the duration its container declares
# has been cut short (an interrupted copy or upload).
_TRUNCATION_TOLERANCE = 0.9


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an audio file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError as error:
        raise InputError(f"{path}: permission denied (cannot read the file)") from error
    except OSError as error:
        raise InputError(f"{path}: cannot be read: {error.strerror or error}") from error
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


def _check_riff_size(path: Path) -> None:
    """FFmpeg trusts the file size over a WAV header, so compare them here."""
    with open(path, "rb") as handle:
        header = handle.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return
    declared = int.from_bytes(header[4:8], "little") + 8
    actual = path.stat().st_size
    if declared not in (8, 0xFFFFFFFF + 8) and actual < declared * _TRUNCATION_TOLERANCE:
        raise InputError(
            f"{path}: truncated WAV file, its header declares {declared} bytes but the file has only {actual}"
        )


def _declared_seconds(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


@dataclass
class AudioStream:
    """An opened audio file; iterate `blocks()` once to get its samples."""

    path: Path
    codec: str
    source_rate: int
    channels: int
    declared_seconds: float | None
    _container: av.container.InputContainer
    decoded_seconds: float = 0.0  # known once blocks() is exhausted

    def blocks(self, block_seconds: float = 60.0) -> Iterator[np.ndarray]:
        """Yield float32 16 kHz mono blocks of about `block_seconds`; raise InputError on damage."""
        target = int(block_seconds * SAMPLE_RATE)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pending: list[np.ndarray] = []
        pending_samples = 0
        decoded_samples = 0
        stream = self._container.streams.audio[0]
        try:
            for packet in self._container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray().reshape(-1)
                        pending.append(samples)
                        pending_samples += samples.size
                if pending_samples >= target:
                    block = np.concatenate(pending)
                    decoded_samples += block.size
                    pending, pending_samples = [], 0
                    yield block
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(-1))
        except (av.error.InvalidDataError, av.error.FFmpegError) as error:
            at = (decoded_samples + pending_samples) / SAMPLE_RATE
            raise InputError(
                f"{self.path}: corrupt audio ({self.codec}), decoding failed at {at:.1f} s: {error}"
            ) from error
        finally:
            self._container.close()
        tail = np.concatenate(pending) if pending else np.zeros(0, np.float32)
        decoded_samples += tail.size
        self.decoded_seconds = decoded_samples / SAMPLE_RATE
        if decoded_samples == 0:
            raise InputError(f"{self.path}: no audio could be decoded from its {self.codec} stream")
        self._check_complete(self.decoded_seconds)
        if tail.size:
            yield tail

    def _check_complete(self, decoded_seconds: float) -> None:
        declared = self.declared_seconds
        if declared and decoded_seconds < declared * _TRUNCATION_TOLERANCE - 0.5:
            raise InputError(
                f"{self.path}: truncated audio ({self.codec}), the file declares {declared:.1f} s "
                f"but only {decoded_seconds:.1f} s could be decoded"
            )


def open_audio(path: str | os.PathLike) -> AudioStream:
    """Open `path` and check it holds a decodable audio stream."""
    path = Path(path)
    _check_readable(path)
    _check_riff_size(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise InputError(f"{path}: not a recognised audio or video file ({error.strerror or error})") from error
    if not container.streams.audio:
        found = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "none"
        container.close()
        raise InputError(f"{path}: has no audio stream (streams found: {found})")
    stream = container.streams.audio[0]
    stream.thread_type = "AUTO"
    return AudioStream(
        path=path,
        codec=stream.codec_context.name,
        source_rate=stream.rate or 0,
        channels=stream.channels or 0,
        declared_seconds=_declared_seconds(container, stream),
        _container=container,
    )
