"""`--speakers channels`: each channel of a recording decoded on its own, as 16 kHz mono.

Call centres and two-microphone interviews record one party per channel; transcribing each
channel separately is exact speaker attribution with no model. The file is decoded once per
channel (decoding costs little next to transcription; holding one channel while reading the
other would cost memory on a 3-hour file).
"""

from __future__ import annotations

import os
from typing import Iterator

import av
import numpy as np

from batchscribe.audio import SAMPLE_RATE
from batchscribe.errors import InputError

def channel_names(path: str | os.PathLike, track: int = 1) -> list[str]:
    """A label per channel of audio track `track` (from 1): left/right for two, else CH1, CH2..."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InputError(f"{path}: has no audio stream")
            layout = container.streams.audio[track - 1].layout
            names = [channel.name for channel in layout.channels]
    except av.error.FFmpegError as error:
        raise InputError(f"{path}: not a recognised audio or video file ({error})") from error
    if len(names) == 2:  # also a WAV without a channel mask, whose unnamed channels players take as L, R
        return ["left", "right"]
    return [f"CH{index + 1}" for index in range(len(names))]


def channel_blocks(
    path: str | os.PathLike, channel: int, track: int = 1, block_seconds: float = 60.0
) -> Iterator[np.ndarray]:
    """float32 16 kHz blocks of one channel (0-based) of audio track `track` (from 1); InputError on damage."""
    target = int(block_seconds * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    size = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.audio[track - 1]
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        pending.append(out.to_ndarray()[channel].copy())
                        size += pending[-1].size
                if size >= target:
                    yield np.concatenate(pending)
                    pending, size = [], 0
            for out in resampler.resample(None):
                pending.append(out.to_ndarray()[channel].copy())
    except (av.error.InvalidDataError, av.error.FFmpegError) as error:
        raise InputError(f"{path}: corrupt audio in channel {channel + 1}: {error}") from error
    if pending:
        yield np.concatenate(pending)

