"""batchscribe: batch transcription with Whisper, packing speech from many files into each model batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from batchscribe.errors import BatchscribeError, InputError, ModelError, OptionsError
from batchscribe.options import TranscribeOptions
from batchscribe.results import FileResult, RunSummary, Segment, Transcript, Word

__version__ = "0.1.0"


def transcribe(
    inputs: Union[str, Path, list[Union[str, Path]]],
    output_dir: Optional[Union[str, Path]] = None,
    prompts: Optional[dict[Union[str, Path], str]] = None,
    **options,
) -> RunSummary:
    """Transcribe files, folders or globs; write outputs to `output_dir` if given.

    Keyword options are those of TranscribeOptions (model, language, task, formats, ...).
    `prompts` maps single files to their own initial prompt (instead of `initial_prompt`).
    """
    from batchscribe.pipeline import run

    specs = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs]
    chosen = replace(TranscribeOptions(), **options)
    per_file = {str(path): prompt for path, prompt in (prompts or {}).items()}
    return run(specs, Path(output_dir) if output_dir is not None else None, chosen, prompts=per_file)


__all__ = [
    "transcribe",
    "TranscribeOptions",
    "RunSummary",
    "FileResult",
    "Transcript",
    "Segment",
    "Word",
    "BatchscribeError",
    "InputError",
    "ModelError",
    "OptionsError",
]
