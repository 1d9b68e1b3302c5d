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



# A recording has a speaker per channel (`--diarize` then hears each channel on its own) when its
# channels are not one sound picked up twice: in the seconds where two channels both carry sound,
# their correlation stays near zero. A mono recording stored as stereo, a panned mix or a stereo
# microphone pair correlate far above this; one voice per channel (the MFA two-speaker file, the
# stereo test file, a call centre's agent/customer recording) is at 0.0-0.1.
APART_CORRELATION = 0.2
ACTIVE_POWER = 1e-6  # -60 dBFS mean square: below it a second of a channel holds no sound to compare
CHECKED_SECONDS = 600.0  # the decision is taken on the first ten minutes


def channels_apart(path: str | os.PathLike, track: int = 1) -> bool:
    """True when the two channels of a stereo audio track `track` both carry sound and, where they
    carry it at the same time, are uncorrelated (median |r| of 1 s windows below APART_CORRELATION).

    Only two channels: in a surround mix the dialogue has the centre channel and music the others,
    uncorrelated too, but those are not one voice per channel."""
    second = SAMPLE_RATE
    pending: list[np.ndarray] = []
    correlations: list[float] = []
    active = None
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.audio[track - 1]
            if len(stream.layout.channels) != 2:
                return False
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE)
            taken = 0
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        pending.append(out.to_ndarray())
                buffered = sum(p.shape[1] for p in pending)
                if buffered >= second:
                    audio = np.concatenate(pending, axis=1)
                    usable = audio.shape[1] // second * second
                    for start in range(0, usable, second):
                        active = _compare(audio[:, start : start + second], correlations, active)
                    pending = [audio[:, usable:]]
                    taken += usable
                    if taken >= CHECKED_SECONDS * SAMPLE_RATE:
                        break
    except (av.error.InvalidDataError, av.error.FFmpegError) as error:
        raise InputError(f"{path}: corrupt audio: {error}") from error
    if active is None or active.sum() < 2:
        return False
    return not correlations or float(np.median(correlations)) < APART_CORRELATION


def _compare(window: np.ndarray, correlations: list[float], active):
    """Add |r| of each pair of channels that both carry sound in `window` (channels, samples); return
    which channels have carried sound so far."""
    centred = window - window.mean(axis=1, keepdims=True)
    power = np.mean(centred**2, axis=1)
    loud = power > ACTIVE_POWER
    live = np.flatnonzero(loud)
    for i, first in enumerate(live):
        for other in live[i + 1 :]:
            product = float(np.sqrt(power[first] * power[other]))
            correlations.append(abs(float(np.mean(centred[first] * centred[other]))) / product)
    return loud if active is None else (active | loud)
