"""Peer systems, each run as `python -m bench.peers SYSTEM MODEL_DIR OUT_DIR THREADS DEVICE FILE...` in its
own process.

Every system writes OUT_DIR/<file stem>.txt and prints one JSON line with its model-load time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def faster_whisper(model_dir: str, out: Path, files: list[str], batch_size: int, threads: int, device: str) -> float:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    started = time.perf_counter()
    compute_type = "float16" if device == "cuda" else "int8"
    model = WhisperModel(model_dir, device=device, compute_type=compute_type, cpu_threads=threads)
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


def transformers_pipeline(model_dir: str, out: Path, files: list[str], batch_size: int, threads: int,
                          device: str) -> float:  # fmt: skip
    """transformers' own ASR pipeline, as GPU users run it (insanely-fast-whisper's recipe): 30 s
    chunks of every file batched together, greedy, fp16 on CUDA."""
    import torch
    from faster_whisper import decode_audio
    from transformers import pipeline

    torch.set_num_threads(threads)
    torch.backends.cuda.enable_cudnn_sdp(False)  # the fix batchscribe applies too (engine/backends/whisper_torch.py)
    started = time.perf_counter()
    dtype = torch.float16 if device == "cuda" else torch.float32
    asr = pipeline("automatic-speech-recognition", model=model_dir, device=device, dtype=dtype)
    load = time.perf_counter() - started
    audio = [{"raw": decode_audio(file), "sampling_rate": 16000} for file in files]
    for file, result in zip(files, asr(audio, chunk_length_s=30, batch_size=batch_size), strict=True):
        (out / f"{Path(file).stem}.txt").write_text(result["text"].strip() + "\n")
    return load


def whisper_s2t(model_dir: str, out: Path, files: list[str], beam_size: int, threads: int, device: str) -> float:
    """WhisperS2T (CTranslate2 backend) as its README runs it: `transcribe_with_vad` over all files
    at once, its own VAD, speech of many files packed into shared batches; greedy unless `beam_size`
    > 1. It reads audio through the `ffmpeg` command-line tool."""
    import torch
    import whisper_s2t

    torch.set_num_threads(threads)  # its VAD and log-mel features run on PyTorch
    started = time.perf_counter()
    compute_type = "float16" if device == "cuda" else "int8"
    asr_options = {"beam_size": beam_size} if beam_size > 1 else {}
    model = whisper_s2t.load_model(model_dir, backend="CTranslate2", device=device, compute_type=compute_type,
                                   cpu_threads=threads, asr_options=asr_options)  # fmt: skip
    load = time.perf_counter() - started
    results = model.transcribe_with_vad(files, lang_codes=["en"] * len(files), tasks=["transcribe"] * len(files),
                                        initial_prompts=[None] * len(files), batch_size=16)  # fmt: skip
    for file, segments in zip(files, results, strict=True):
        text = " ".join(s["text"].strip() for s in segments)
        (out / f"{Path(file).stem}.txt").write_text(text + "\n")
    return load


def main(argv: list[str]) -> None:
    system, model_dir, out_dir, threads, device, *files = argv
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if system == "hf-pipeline-16":
        load = transformers_pipeline(model_dir, out, files, 16, int(threads), device)
    elif system.startswith("whisper-s2t"):
        beam = {"whisper-s2t": 1, "whisper-s2t-beam5": 5}[system]
        load = whisper_s2t(model_dir, out, files, beam, int(threads), device)
    else:
        batch = {"fw-sequential": 0, "fw-batched-8": 8, "fw-batched-16": 16}[system]
        load = faster_whisper(model_dir, out, files, batch, int(threads), device)
    print(json.dumps({"load_seconds": load}))


if __name__ == "__main__":
    main(sys.argv[1:])
