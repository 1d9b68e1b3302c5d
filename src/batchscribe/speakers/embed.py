"""Speaker embeddings of speech: a vector per stretch of audio, close for the same voice.

The default encoder is Resemblyzer's (a 3-layer LSTM d-vector model trained on VoxCeleb and
LibriSpeech; Apache-2.0), whose trained weights ship inside the `resemblyzer` wheel on PyPI, so it
runs offline. Only the weights are taken from that package: importing `resemblyzer` itself pulls
in librosa (1.2 s to import, then 1.4 s of numba compilation on the first spectrogram) and
webrtcvad (which needs setuptools < 81), while its network and its 40-band mel spectrogram are a
few lines of PyTorch. batchscribe's copy gives the same embeddings (cosine 1.0000 against
`resemblyzer.VoiceEncoder` on LibriSpeech, checked when it was written).

A stronger encoder plugs in through `load_encoder`: `pyannote` (or `pyannote:MODEL`) uses
pyannote.audio's embedding model when the user has installed it (not a default dependency: it
needs torchaudio and, for the hub models, a login); `package.module:factory` calls any factory
the user writes that returns a `SpeakerEncoder` (clips in, unit vectors out).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np

from batchscribe.errors import ModelError

SAMPLE_RATE = 16000
DEFAULT_ENCODER = "resemblyzer"


class SpeakerEncoder(Protocol):
    """Turns stretches of 16 kHz mono float32 audio into unit-length speaker embeddings."""

    name: str

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        """(len(clips), dim) float32, each row L2-normalised; clips are >= 0.5 s of speech."""
        ...


class ResemblyzerEncoder:
    """Resemblyzer's d-vector network: 40 mel bands every 10 ms, read 1.6 s at a time.

    Each clip is embedded from its central 1.6 s (the length the network was trained on; a
    shorter clip is zero-padded), in one batch per call. Resemblyzer's own `embed_utterance`
    averages overlapping 1.6 s partials instead; on the ~2 s windows used here that reads 2.3x the
    frames for the same DER on the six-speaker file (4.2% vs 4.4%), and the LSTM is the cost.
    """

    name = "resemblyzer"
    PARTIAL_FRAMES = 160  # 1.6 s
    N_FFT, HOP, N_MELS = 400, 160, 40

    def __init__(self, weights: Path):
        import torch
        from faster_whisper.feature_extractor import FeatureExtractor

        self._torch = torch
        self.lstm = torch.nn.LSTM(self.N_MELS, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
            self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
            self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        except Exception as error:
            raise ModelError(f"{weights}: cannot load the speaker encoder's weights: {error}") from error
        self.lstm.eval()
        # librosa's Slaney mel filters, as Resemblyzer computes them (faster-whisper has the same code).
        filters = FeatureExtractor.get_mel_filters(SAMPLE_RATE, self.N_FFT, self.N_MELS)
        self._filters = torch.from_numpy(np.asarray(filters, np.float32))
        self._window = torch.hann_window(self.N_FFT)

    def _mel(self, audio: np.ndarray):
        torch = self._torch
        spectrum = torch.stft(
            torch.from_numpy(audio), self.N_FFT, self.HOP, window=self._window, center=True,
            pad_mode="constant", return_complex=True,
        )
        return (self._filters @ spectrum.abs() ** 2).T  # (frames, 40), power mel as Resemblyzer uses it

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        if not clips:
            return np.zeros((0, 256), np.float32)
        middles = []
        for clip in clips:
            centre = len(clip) // 2
            half = self.PARTIAL_FRAMES * self.HOP // 2
            audio = clip[max(0, centre - half) : centre + half]
            mel = self._mel(_normalise_volume(np.ascontiguousarray(audio, np.float32)))[: self.PARTIAL_FRAMES]
            middles.append(torch.nn.functional.pad(mel, (0, 0, 0, self.PARTIAL_FRAMES - mel.shape[0])))
        with torch.inference_mode():
            _, (hidden, _) = self.lstm(torch.stack(middles))
            vectors = torch.relu(self.linear(hidden[-1]))
            vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-9)
        return vectors.numpy().astype(np.float32)


def _normalise_volume(audio: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Raise quiet audio to -30 dBFS RMS, as Resemblyzer's preprocessing does (never lowers it)."""
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    if rms <= 0:
        return audio
    change = target_dbfs - 20 * np.log10(rms)
    return (audio * np.float32(10 ** (change / 20))) if change > 0 else audio


class PyannoteEncoder:
    """pyannote.audio's speaker embedding model, for users who have installed it (`pyannote:MODEL`)."""

    def __init__(self, model: str):
        try:
            from pyannote.audio import Inference, Model
        except ImportError as error:
            raise ModelError(
                "--speaker-model pyannote needs pyannote.audio (pip install pyannote.audio; its hub models "
                "need a Hugging Face token in HF_TOKEN)"
            ) from error
        self.name = f"pyannote:{model}"
        self._inference = Inference(Model.from_pretrained(model), window="whole")
        self._lock = threading.Lock()

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        import torch

        with self._lock:
            rows = [
                np.asarray(self._inference({"waveform": torch.from_numpy(c)[None], "sample_rate": SAMPLE_RATE}))
                for c in clips
            ]
        vectors = np.stack(rows).reshape(len(clips), -1).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def resemblyzer_weights() -> Path:
    """The trained weights inside the installed `resemblyzer` wheel, found without importing it."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "speaker labels need the offline speaker encoder: pip install 'batchscribe[speakers]' "
            "(or: pip install --no-deps resemblyzer==0.1.4)"
        )
    weights = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not weights.is_file():
        raise ModelError(f"{weights}: the resemblyzer package is installed but its trained weights are missing")
    return weights


_loaded: dict[str, SpeakerEncoder] = {}
_loading = threading.Lock()


def load_encoder(name: str = DEFAULT_ENCODER) -> SpeakerEncoder:
    """The named encoder, loaded once per process (like the Whisper model); raises ModelError."""
    with _loading:
        if name not in _loaded:
            if name == "resemblyzer":
                _loaded[name] = ResemblyzerEncoder(resemblyzer_weights())
            elif name == "pyannote" or name.startswith("pyannote:"):
                _loaded[name] = PyannoteEncoder(name.partition(":")[2] or "pyannote/embedding")
            elif ":" in name:
                _loaded[name] = _plugged_in(name)
            else:
                raise ModelError(
                    f"unknown speaker model {name!r}: use resemblyzer, pyannote, pyannote:MODEL or "
                    "package.module:factory (your own SpeakerEncoder)"
                )
        return _loaded[name]


def _plugged_in(name: str) -> SpeakerEncoder:
    """The encoder made by the factory `name` names ("package.module:factory", importable here)."""
    module, _, attribute = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"--speaker-model {name}: cannot import {attribute} from {module}: {error}") from error
    encoder = factory()
    if not callable(getattr(encoder, "embed", None)):
        raise ModelError(f"--speaker-model {name}: {attribute}() returned {type(encoder).__name__}, "
                         "which has no embed(clips) method (see batchscribe.speakers.SpeakerEncoder)")
    return encoder


def load_encoder_soon(name: Optional[str]) -> Callable[[], Optional[SpeakerEncoder]]:
    """Start loading the named encoder (None: none wanted) and the clustering library in the
    background, beside the Whisper model rather than after it; the returned call waits for them
    and raises what loading raised."""
    if name is None:
        return lambda: None

    def load() -> SpeakerEncoder:
        import scipy.cluster.hierarchy  # noqa: F401 (imported here, off the path of the first finished file)

        return load_encoder(name)

    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchscribe-speakers")
    loading = loader.submit(load)
    loader.shutdown(wait=False)
    return loading.result
