"""Streaming decode of any container/codec FFmpeg knows to 16 kHz mono float32 (PyAV).

Audio is yielded in blocks so a 3-hour file never needs its whole signal in memory.
Every way a file can be unusable becomes an InputError that names the problem.

A media file may hold several audio tracks: `open_audio(path, track=k)` decodes the k-th
(counted from 1), and every AudioStream lists them all. Times are on the media's own timeline,
the one a player shows: an audio track that starts 4 s after the picture (an MP4 edit list, an
MKV whose first audio packet is at 4 s) has `start` = 4.0, which its transcript's times include.
The stream may change sample rate, channel count or sample format part-way (joined MP3s);
the resampler follows. Channels are mixed to mono by audio.downmix (polarity- and DC-safe).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np

from batchscribe.audio.downmix import MonoMix
from batchscribe.errors import InputError
from batchscribe.results import AudioTrack, SourceAudio

SAMPLE_RATE = 16000

# A file that decodes to less than this share of the duration its container declares
# has been cut short (an interrupted copy or upload).
_TRUNCATION_TOLERANCE = 0.9
# Undecodable packets skipped before a file counts as corrupt: this many, or this share of its packets.
_BAD_PACKETS_SKIPPED = 3
_BAD_PACKET_SHARE = 0.01
_MKV_DURATION = re.compile(r"^(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


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


def _container_start(container: av.container.InputContainer) -> float:
    """Where a player's clock starts (MPEG-TS, for one, rarely starts at 0)."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _declared_end(container: av.container.InputContainer, stream: av.audio.AudioStream) -> Optional[float]:
    """Where the audio track says it ends on the media's timeline, in seconds, if it says so.

    Only the audio track's own length counts: a video track may well run on after the audio
    stopped (a screen recording), which is not truncation. FFmpeg fills an unknown track length
    in from the whole file's, so a stream's length is believed only where the container records
    one per track (MP4/MOV, Matroska's DURATION tag) or where there is nothing but audio."""
    tag = _MKV_DURATION.match(stream.metadata.get("DURATION", ""))  # Matroska: the track's end time
    if tag:
        hours, minutes, seconds = tag.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    others = [
        s for s in container.streams
        if s.type != "audio" and not (s.type == "video" and s.disposition & av.stream.Disposition.attached_pic)
    ]  # fmt: skip
    per_track = "mov" in container.format.name.split(",")  # the MP4 family: each track's header has its length
    if stream.duration is not None and stream.time_base is not None and (per_track or not others):
        start = stream.start_time or 0
        return float((start + stream.duration) * stream.time_base) - _container_start(container)
    if container.duration is not None and not others:
        return container.duration / av.time_base
    return None


@functools.lru_cache(maxsize=64)
def _mono_weights(layout: str) -> np.ndarray:
    """Each channel's weight in FFmpeg's own mono downmix of `layout` (FL/FR 0.707, FC 1, surround
    0.5, LFE 0): read off its resampler by a probe with one channel at a time, so the mix is as
    loud as FFmpeg's (a plain average is 3 dB quieter, and the VAD then finds less of a quiet voice)."""
    count = len(av.AudioLayout(layout).channels)
    if count == 1:
        return np.ones(1)
    block = 64
    probe = np.zeros((count * block, count), np.float32)
    for channel in range(count):
        probe[channel * block : (channel + 1) * block, channel] = 1.0
    frame = av.AudioFrame.from_ndarray(probe.reshape(1, -1), format="flt", layout=layout)
    frame.sample_rate = SAMPLE_RATE
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)  # same rate: a matrix only
    mono = np.concatenate([f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]])
    return mono[np.arange(count) * block + block // 2].astype(np.float64)


def _tracks(container: av.container.InputContainer, chosen: int) -> tuple[AudioTrack, ...]:
    tracks = []
    for number, stream in enumerate(container.streams.audio, start=1):
        tags = {key.lower(): value for key, value in stream.metadata.items()}
        language = tags.get("language")
        tracks.append(
            AudioTrack(
                index=number,
                title=tags.get("title") or tags.get("name") or None,
                language=language if language and language != "und" else None,
                transcribed=number == chosen,
            )
        )
    return tuple(tracks)


@dataclass
class AudioStream:
    """An opened audio track; iterate `blocks()` once to get its samples.

    `start` (seconds on the media's timeline of the first sample) is known once the first block
    is out; `decoded_seconds`, `end` and `source_audio()` once blocks() is exhausted."""

    path: Path
    codec: str
    channels: int
    declared_end: Optional[float]
    tracks: tuple[AudioTrack, ...]
    track: int  # which of `tracks` this is, from 1
    _container: av.container.InputContainer
    _stream: av.audio.AudioStream
    decoded_seconds: float = 0.0
    start: float = 0.0
    _mix: MonoMix = field(default_factory=lambda: MonoMix(SAMPLE_RATE))
    _changed: bool = False  # the stream changed rate, layout or sample format part-way
    _packets: int = 0
    _bad_packets: int = 0

    @property
    def end(self) -> float:
        return self.start + self.decoded_seconds

    def source_audio(self) -> SourceAudio:
        return SourceAudio(self.tracks, round(self.start, 3), self.channels, self._mix.corrected_seconds)

    def blocks(self, block_seconds: float = 60.0) -> Iterator[np.ndarray]:
        """Yield float32 16 kHz mono blocks of about `block_seconds`; raise InputError on damage."""
        target = int(block_seconds * SAMPLE_RATE)
        resampler: Optional[av.AudioResampler] = None
        setup: Optional[tuple] = None
        channels: list[np.ndarray] = []  # resampled (channels, samples) chunks not yet mixed, one layout
        layout = ""
        pending: list[np.ndarray] = []  # mixed mono chunks
        pending_samples = 0
        decoded_samples = 0
        first = True

        def take(frames: list[av.AudioFrame]) -> None:
            nonlocal pending_samples, layout
            for out in frames:
                if channels and out.layout.name != layout:
                    mix()
                layout = out.layout.name
                count = len(out.layout.channels)
                samples = out.to_ndarray().reshape(-1, count).T  # packed: samples interleaved
                channels.append(samples)
                pending_samples += samples.shape[1]

        def mix() -> None:
            if channels:
                pending.append(self._mix(np.concatenate(channels, axis=1), _mono_weights(layout)))
                channels.clear()

        try:
            for packet in self._container.demux(self._stream):
                for frame in self._decode(packet):
                    if first:
                        self._set_start(frame)
                        first = False
                    # A stream may change rate, layout or sample format part-way (joined MP3s):
                    # a resampler is set up for one of each, so make a new one at a change.
                    now = (frame.format.name, frame.layout.name, frame.sample_rate)
                    if now != setup:
                        if resampler is not None:
                            take(resampler.resample(None))
                            self._changed = True
                        # packed: PyAV reads at most 8 planes, a file may have more channels
                        resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=SAMPLE_RATE)
                        setup = now
                    take(resampler.resample(frame))
                if pending_samples >= target:
                    mix()
                    block = np.concatenate(pending)
                    decoded_samples += block.size
                    pending, pending_samples = [], 0
                    yield block
            if resampler is not None:
                take(resampler.resample(None))
            mix()
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
        self._check_complete()
        if tail.size:
            yield tail

    def _decode(self, packet: av.Packet) -> list[av.AudioFrame]:
        """A packet's frames; a few undecodable packets are skipped, as FFmpeg's own tools do (an ID3
        tag left between joined MP3s is one), but a file with more than a few is corrupt."""
        self._packets += 1
        try:
            return packet.decode()
        except av.error.InvalidDataError:
            self._bad_packets += 1
            if self._bad_packets > max(_BAD_PACKETS_SKIPPED, _BAD_PACKET_SHARE * self._packets):
                raise
            return []

    def _set_start(self, frame: av.AudioFrame) -> None:
        """The first sample's time on the media's timeline: the decoder's timestamps honour MP4
        edit lists and Matroska's first-packet time alike."""
        if frame.time is not None:
            first = frame.time
        elif self._stream.start_time is not None and self._stream.time_base is not None:
            first = float(self._stream.start_time * self._stream.time_base)
        else:
            first = 0.0
        self.start = max(0.0, first - _container_start(self._container))

    def _check_complete(self) -> None:
        declared = self.declared_end
        # A stream that changed part-way declares (at best) its first part's length: MP3's is
        # estimated from the first frame's bit rate and the file size.
        if declared and not self._changed and self.end < declared * _TRUNCATION_TOLERANCE - 0.5:
            raise InputError(
                f"{self.path}: truncated audio ({self.codec}), the file declares {declared - self.start:.1f} s "
                f"but only {self.decoded_seconds:.1f} s could be decoded"
            )


def open_audio(path: str | os.PathLike, track: int = 1) -> AudioStream:
    """Open audio track `track` (counted from 1) of `path` and check it can be decoded.

    Raises InputError when the file is missing, unreadable, not media, has no audio, or has
    no such track (the message lists the tracks it has)."""
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
    tracks = _tracks(container, track)
    if not 1 <= track <= len(tracks):
        container.close()
        listed = ", ".join(t.label for t in tracks)
        raise InputError(f"{path}: has no audio track {track} (counted from 1); it has {len(tracks)}: {listed}")
    stream = container.streams.audio[track - 1]
    stream.thread_type = "AUTO"
    return AudioStream(
        path=path,
        codec=stream.codec_context.name,
        channels=stream.channels or 0,
        declared_end=_declared_end(container, stream),
        tracks=tracks,
        track=track,
        _container=container,
        _stream=stream,
    )


def declared_seconds(path: str | os.PathLike) -> Optional[float]:
    """How long `path` says it is (its container's header; nothing is decoded), or None when it
    does not say or cannot be opened (open_audio reports why when the file is read)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            if container.duration is not None:
                return container.duration / av.time_base
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (av.error.FFmpegError, OSError):
        pass
    return None
