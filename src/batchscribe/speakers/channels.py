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

def channel_names(path: str | os.PathLike) -> list[str]:
    """A label per channel of the file's first audio stream: left/right for two, else CH1, CH2..."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InputError(f"{path}: has no audio stream")
            layout = container.streams.audio[0].layout
            names = [channel.name for channel in layout.channels]
    except av.error.FFmpegError as error:
        raise InputError(f"{path}: not a recognised audio or video file ({error})") from error
    if len(names) == 2:  # also a WAV without a channel mask, whose unnamed channels players take as L, R
        return ["left", "right"]
    return [f"CH{index + 1}" for index in range(len(names))]


def channel_blocks(path: str | os.PathLike, channel: int, block_seconds: float = 60.0) -> Iterator[np.ndarray]:
    """float32 16 kHz blocks of one channel (0-based) of the first audio stream; InputError on damage."""
    target = int(block_seconds * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    size = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
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


class ChannelSpeech:
    """The speech pieces of every channel of an opened file, channel after channel.

    `labels[i]` names the channel of the i-th piece yielded, `turns` holds (start, end, channel)
    of the speech; `decoded_seconds` is known once `pieces()` is exhausted.
    """

    def __init__(self, stream):
        self.path = stream.path
        stream._container.close()  # opened by open_audio for its checks; each channel is decoded anew
        self.names = channel_names(self.path)
        self.labels: list[str] = []
        self.turns: list[tuple[float, float, str]] = []  # every channel's speech regions
        self.decoded_seconds = 0.0

    def pieces(self, vad_options) -> Iterator:
        from batchscribe.audio import speech_pieces

        for channel, name in enumerate(self.names):
            for piece in speech_pieces(self._counted(channel), vad_options):
                self.labels.append(name)
                self.turns.extend((start, end, name) for start, end in piece.regions)
                yield piece

    def _counted(self, channel: int) -> Iterator[np.ndarray]:
        samples = 0
        for block in channel_blocks(self.path, channel):
            samples += block.size
            yield block
        self.decoded_seconds = max(self.decoded_seconds, samples / SAMPLE_RATE)
