"""The backends that run Whisper, each an Engine (base.py); load_engine loads a resolved model on
the one its placement names (see engine/placement.py for the choice)."""

from __future__ import annotations

from batchscribe.engine.backends.base import Engine
from batchscribe.engine.placement import Placement
from batchscribe.engine.models.resolve import ResolvedModel


def load_engine(model: ResolvedModel, placement: Placement) -> Engine:
    if placement.backend == "torch":
        from batchscribe.engine.models.hf_weights import hf_folder
        from batchscribe.engine.backends.whisper_torch import WhisperTorch

        return WhisperTorch(model.path if model.layout == "hf" else hf_folder(model.path), placement)
    from batchscribe.engine.backends.whisper_ct2 import WhisperCT2

    return WhisperCT2(model.path, placement)
