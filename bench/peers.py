"""Peer systems, each run as `python -m bench.peers SYSTEM MODEL_DIR OUT_DIR FILE...` in its own process.

Every system writes OUT_DIR/<file stem>.txt and prints one JSON line with its model-load time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def faster_whisper(model_dir: str, out: Path, files: list[str], batch_size: int, threads: int) -> float:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    started = time.perf_counter()
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    load = time.perf_counter() - started
    pipeline = BatchedInferencePipeline(model) if batch_size else None
    for file in files:
        if pipeline:
            segments, _ = pipeline.transcribe(file, batch_size=batch_size)
        else:
            segments, _ = model.transcribe(file)
        text = " ".join(s.text.strip() for s in segments)
        (out / f"{Path(file).stem}.txt").write_text(text + "\n")
    return load


def main(argv: list[str]) -> None:
    system, model_dir, out_dir, threads, *files = argv
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch = {"fw-sequential": 0, "fw-batched-8": 8, "fw-batched-16": 16}[system]
    load = faster_whisper(model_dir, out, files, batch, int(threads))
    print(json.dumps({"load_seconds": load}))


if __name__ == "__main__":
    main(sys.argv[1:])
