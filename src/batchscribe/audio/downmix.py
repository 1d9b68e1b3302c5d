"""Many channels to one, without losing speech that plays fine in either of them.

A plain sum of the channels (FFmpeg's mono downmix, whose weights are kept here) cancels a channel whose
polarity is inverted (a miswired microphone, a broken stereo encode): L + (-L) is digital
silence, and the file would come back "transcribed" with no words. So each channel's sign is
checked against a reference channel, one second at a time: a channel that is clearly
anti-correlated with it is flipped before the sum (a sign-corrected sum), which keeps what
an in-phase or unrelated channel would have given and restores what cancellation destroyed.
A channel with a DC offset also loses it first: a large constant offset dominates Whisper's
log-mel spectrum and, through its 80 dB range clamp, floors the speech (4 LibriSpeech clips with
tiny.en: 8.9 % WER clean, 30 % with a +1.2 offset, 43 % with -1.5; once it is removed, the same
WER as the clean clips).

Both steps are streaming: state carries over from one block to the next.
"""

from __future__ import annotations

import numpy as np

# Subtracting the mean of the last second removes the DC and drift below ~0.5 Hz; at 100 Hz, the
# lowest voice pitch, the moving average passes under 0.3 % of the signal, so speech is untouched.
DC_WINDOW = 16000
# The DC is removed from a file once a block's mean exceeds both of these (in full scale, and as a
# share of the block's standard deviation). Real recordings stay far below: of 240 minute-long
# blocks of ../shared/data, the largest |mean| is 0.008 and the largest mean/std 0.17. Audio
# without an offset is left exactly as decoded (even harmless changes to the samples move WER by
# a few tenths of a point either way, by changing which beam wins).
DC_MIN = 0.002
DC_SHARE = 0.5
# Channel signs are judged per window of 1 s at 16 kHz.
SIGN_WINDOW = 16000
# A channel whose correlation with the reference falls below -FLIP_AT is flipped; a flipped one is
# flipped back above +FLIP_AT. The gap between the two keeps unrelated channels (correlation
# near 0) from toggling. One channel at -0.9x another plus noise as loud as the speech is -0.67.
FLIP_AT = 0.4
# Windows quieter than this (mean square, about -70 dBFS) keep their signs: nothing to judge.
SILENT_POWER = 1e-7


class _DcBlocker:
    """x - (moving average of x over the last DC_WINDOW samples), per channel, across blocks, from
    the first block with a DC offset on (see DC_MIN)."""

    def __init__(self) -> None:
        self.active = False
        self._tail: np.ndarray | None = None  # the previous block's last samples, (channels, < DC_WINDOW)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._tail is None or self._tail.shape[0] != x.shape[0]:
            self._tail = np.zeros((x.shape[0], 0), x.dtype)  # first block, or the channel count changed
        if not self.active:
            mean = np.abs(x.mean(axis=1, dtype=np.float64))
            self.active = bool(np.any((mean > DC_MIN) & (mean > DC_SHARE * x.std(axis=1, dtype=np.float64))))
        history = self._tail
        self._tail = np.concatenate([history, x[:, -(DC_WINDOW - 1) :]], axis=1)[:, -(DC_WINDOW - 1) :]
        if not self.active:
            return x
        joined = np.concatenate([history, x], axis=1)
        sums = np.zeros((x.shape[0], joined.shape[1] + 1))
        np.cumsum(joined, axis=1, dtype=np.float64, out=sums[:, 1:])
        ends = np.arange(history.shape[1] + 1, joined.shape[1] + 1)  # exclusive window ends, one per sample of x
        starts = np.maximum(ends - DC_WINDOW, 0)
        means = (sums[:, ends] - sums[:, starts]) / (ends - starts)
        return (x - means).astype(np.float32)


class MonoMix:
    """Streaming mix of (channels, samples) float32 blocks at one rate into mono float32.

    `corrected_seconds` counts the audio in which a channel's polarity was flipped to keep it
    from cancelling the others.
    """

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.corrected_seconds = 0.0
        self._dc = _DcBlocker()
        self._signs: np.ndarray | None = None  # +1/-1 per channel, kept across windows and blocks

    def __call__(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """`x`: (channels, samples) float32; `weights`: each channel's share of the mono mix (FFmpeg's
        for the layout: decode.py asks it); returns (samples,) float32."""
        x = self._dc(x)
        if x.shape[0] == 1:
            return x[0] * np.float32(weights[0]) if weights[0] != 1 else x[0]
        if self._signs is None or self._signs.size != x.shape[0]:
            self._signs = np.ones(x.shape[0])
        signs = self._window_signs(x, weights)
        per_sample = np.repeat(signs, SIGN_WINDOW, axis=1)[:, : x.shape[1]]
        return np.einsum("c,cn->n", weights.astype(np.float32), per_sample * x).astype(np.float32)

    def _window_signs(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(channels, windows) signs, from each window's correlation with the reference channel."""
        channels, samples = x.shape
        windows = -(-samples // SIGN_WINDOW)
        padded = np.zeros((channels, windows * SIGN_WINDOW), np.float32)
        padded[:, :samples] = x
        framed = padded.reshape(channels, windows, SIGN_WINDOW)
        power = np.einsum("cwn,cwn->cw", framed, framed, dtype=np.float64) / SIGN_WINDOW
        # The reference: the loudest channel that counts in the mix (not the LFE, which FFmpeg leaves out).
        reference = int(np.argmax(power.sum(axis=1) * (weights > 0)))
        dots = np.einsum("cwn,wn->cw", framed, framed[reference], dtype=np.float64) / SIGN_WINDOW
        correlation = dots / np.sqrt(np.maximum(power * power[reference], 1e-30))
        state = self._signs  # each channel's sign; what counts is its product with the reference's
        signs = np.empty((channels, windows))
        for w in range(windows):
            if power[reference, w] > SILENT_POWER:
                for c in range(channels):
                    if power[c, w] <= SILENT_POWER or c == reference:
                        continue
                    relative = state[c] * state[reference]
                    if relative > 0 and correlation[c, w] < -FLIP_AT:
                        state[c] = -state[reference]
                    elif relative < 0 and correlation[c, w] > FLIP_AT:
                        state[c] = state[reference]
            signs[:, w] = state * state[reference]
            if (signs[:, w] < 0).any():
                length = min(SIGN_WINDOW, samples - w * SIGN_WINDOW)
                self.corrected_seconds += length / self.sample_rate
        return signs
