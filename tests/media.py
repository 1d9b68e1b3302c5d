"""Build media files of the awkward kinds real users have, from real speech, with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np


def speech(path: Path, rate: int = 16000) -> np.ndarray:
    """A recording as float32 mono samples at `rate`."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(chunks)


def resample(samples: np.ndarray, rate: int, source_rate: int = 16000) -> np.ndarray:
    """Linear resampling: enough for speech a model only has to understand."""
    return np.interp(np.arange(0, samples.size, source_rate / rate), np.arange(samples.size), samples).astype(
        np.float32
    )


def _frames(samples: np.ndarray, rate: int, layout: str, fmt: str, size: int):
    """(channels, n) float32 samples as audio frames of `size` samples in `fmt`."""
    samples = np.atleast_2d(samples).astype(np.float32)
    for start in range(0, samples.shape[1], size):
        part = samples[:, start : start + size]
        if fmt.startswith("s16"):
            part = (np.clip(part, -1, 1) * 32767).astype(np.int16)
        if not fmt.endswith("p"):  # packed: channels interleaved in one plane
            part = part.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        yield frame


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_f32le", fmt: Optional[str] = None,
                container_format: Optional[str] = None) -> Path:  # fmt: skip
    """Encode (channels, n) or (n,) float32 samples (at `rate`) as one audio stream."""
    samples = np.atleast_2d(samples)
    layout = {1: "mono", 2: "stereo"}.get(samples.shape[0], f"{samples.shape[0]}c")
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if fmt:
            stream.codec_context.format = fmt
        fmt = stream.codec_context.format.name
        for frame in _frames(samples, rate, layout, fmt, stream.codec_context.frame_size or 1024):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass
class Track:
    """An audio track of a video: mono float32 16 kHz `samples` starting `start` seconds into the video."""

    samples: np.ndarray
    start: float = 0.0
    title: Optional[str] = None
    language: Optional[str] = None


def write_video(path: Path, tracks: list[Track], video_seconds: float) -> Path:
    """A small MPEG-4 video (grey, 10 fps) with AAC audio tracks, each at its own start time
    (MP4 writes an edit list for a late track, Matroska a late first packet)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = []
        for track in tracks:
            stream = container.add_stream("aac", rate=16000, layout="mono")
            if track.title:
                stream.metadata["title"] = track.title
            if track.language:
                stream.metadata["language"] = track.language
            audio.append(stream)
        for n in range(int(video_seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
            frame.pts = n
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for track, stream in zip(tracks, audio, strict=True):
            packets = []
            for frame in _frames(track.samples, 16000, "mono", "fltp", 1024):
                packets.extend(stream.encode(frame))
            packets.extend(stream.encode(None))
            for packet in packets:
                shift = int(round(track.start / packet.time_base))
                packet.pts += shift
                packet.dts += shift
                container.mux(packet)
    return path
