"""batchscribe's audio front end alone (decode, VAD, window packing, log-mel features; no model and
no language probe): audio seconds per CPU second per input format, and scaling over processes.

    .venv/bin/python -m bench frontend                        # short60 + long513, 1..os.cpu_count() processes
    .venv/bin/python -m bench frontend --corpora long513 --processes 1,2 --reps 1 --results /tmp/fe

The corpus is transcoded once (PyAV) into a cache under the temp folder, at its own sample rate and
channels: FLAC as shipped, MP3 (LAME, 64 kb/s) and AAC in M4A (64 kb/s). Each process runs the same
calls the pipeline's audio thread makes (audio.open_audio, audio.speech_pieces, engine.batching.packing's
WindowPacker, Batch.prepare with LogMel) over the whole corpus; with N processes every process gets
its own copy of the work, they start together, and throughput is N x audio over the wall time.
Results go to RESULTS/frontend.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.corpora import REPO, corpora

RESULTS = REPO / "bench" / "results" / "frontend"
FORMATS = {"flac": None, "mp3": ("libmp3lame", 64000), "m4a": ("aac", 64000)}  # codec, bit rate
CACHE = Path(tempfile.gettempdir()) / "batchscribe-bench-frontend"
BATCH = 8  # windows per Batch.prepare call, as the pipeline's default batch on CPU


def transcode(source: Path, target: Path, codec: str, bit_rate: int) -> None:
    import av

    partial = target.with_suffix(".part" + target.suffix)
    with av.open(str(source)) as src, av.open(str(partial), "w") as dst:
        audio = src.streams.audio[0]
        out = dst.add_stream(codec, rate=audio.rate, layout=audio.layout.name)
        out.bit_rate = bit_rate
        for frame in src.decode(audio):
            frame.pts = None  # the encoder re-frames (AAC takes 1024 samples a frame)
            for packet in out.encode(frame):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    partial.rename(target)  # a run stopped half-way leaves no half file in the cache


def inputs(corpus: str, fmt: str) -> list[Path]:
    """The corpus's files in `fmt`, transcoded once into CACHE."""
    sources = list(corpora()[corpus].files)
    if FORMATS[fmt] is None:
        return sources
    folder = CACHE / corpus / fmt
    folder.mkdir(parents=True, exist_ok=True)
    targets = []
    for source in sources:
        target = folder / f"{source.stem}.{fmt}"
        if not target.exists():
            transcode(source, target, *FORMATS[fmt])
        targets.append(target)
    return targets


class _Timed:
    """Adds up this thread's CPU time inside an iterator's next() (decode, for the blocks generator).
    CPU time, not wall: on a busy machine a wall share would measure the neighbours."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, items: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        while True:
            started = time.thread_time()
            item = next(items, None)
            self.seconds += time.thread_time() - started
            if item is None:
                return
            yield item


def front_end(files: list[Path], n_mels: int) -> dict:
    """Run the pipeline's audio-thread calls over `files`; seconds of audio and of each stage."""
    from batchscribe.audio import VadOptions, open_audio, speech_pieces
    from batchscribe.engine.batching.batch import Batch
    from batchscribe.engine.backends.base import LogMel
    from batchscribe.engine.batching.packing import WindowPacker
    from batchscribe.engine.windows import PieceRef

    mel = LogMel(n_mels)
    packer = WindowPacker("en")  # one packer across files, as the pipeline packs a language's pieces
    ready: list = []
    decode, features, audio, windows = _Timed(), 0.0, 0.0, 0

    def prepare(batch: list) -> float:
        started = time.thread_time()
        Batch.prepare(mel.features, batch)
        return time.thread_time() - started

    started_cpu, started = time.process_time(), time.perf_counter()
    for job_id, path in enumerate(files):
        stream = open_audio(path)
        for index, piece in enumerate(speech_pieces(decode.wrap(stream.blocks()), VadOptions())):
            ready += packer.add(PieceRef(job_id, index, piece.shifted(stream.start)))
            while len(ready) >= BATCH:
                features += prepare(ready[:BATCH])
                windows += BATCH
                del ready[:BATCH]
        audio += stream.decoded_seconds
    ready += packer.flush()
    for start in range(0, len(ready), BATCH):
        features += prepare(ready[start : start + BATCH])
    windows += len(ready)
    wall = time.perf_counter() - started
    return {"audio_seconds": audio, "cpu_seconds": time.process_time() - started_cpu, "wall_seconds": wall,
            "decode_seconds": decode.seconds, "features_seconds": features, "windows": windows}  # fmt: skip


def _worker(files: list[Path], n_mels: int, start, results) -> None:
    from batchscribe.audio import speech_pieces
    from batchscribe.engine.backends.base import LogMel

    # Warm before the clock starts: imports done, the VAD model loaded, the mel filters built.
    list(speech_pieces([np.zeros(16000, np.float32)]))
    LogMel(n_mels).features(np.zeros(16000, np.float32))
    start.wait()
    began = time.perf_counter()
    measured = front_end(files, n_mels)
    results.put({**measured, "began": began, "ended": time.perf_counter()})


def run_processes(files: list[Path], n_mels: int, processes: int) -> dict:
    """`processes` processes, each over all `files`, started together; their summed figures."""
    context = multiprocessing.get_context("spawn")  # a clean process, as a worker pool would start
    start, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_worker, args=(files, n_mels, start, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    measured = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise RuntimeError(f"a front-end process failed (exit code {worker.exitcode})")
    wall = max(m["ended"] for m in measured) - min(m["began"] for m in measured)
    total = {key: sum(m[key] for m in measured) for key in ("audio_seconds", "cpu_seconds", "decode_seconds",
                                                             "features_seconds", "windows")}  # fmt: skip
    return {**total, "wall_seconds": wall}


def measure(names: list[str], formats: list[str], counts: list[int], reps: int, n_mels: int) -> list[dict]:
    rows = []
    for corpus in names:
        for fmt in formats:
            files = inputs(corpus, fmt)
            for processes in counts:
                runs = [run_processes(files, n_mels, processes) for _ in range(reps)]
                run = sorted(runs, key=lambda r: r["wall_seconds"])[len(runs) // 2]  # the median run
                busy = run["cpu_seconds"]
                rows.append({
                    "corpus": corpus, "format": fmt, "processes": processes, "files": len(files),
                    "audio_seconds": round(run["audio_seconds"], 1), "wall_seconds": round(run["wall_seconds"], 2),
                    "cpu_seconds": round(busy, 2),
                    "audio_per_cpu_second": round(run["audio_seconds"] / busy, 1),
                    "audio_per_wall_second": round(run["audio_seconds"] / run["wall_seconds"], 1),
                    "decode_share": round(run["decode_seconds"] / busy, 3),  # of the CPU time; VAD is most of
                    "features_share": round(run["features_seconds"] / busy, 3),  # the rest
                    "windows": run["windows"],
                })  # fmt: skip
                one = next(r for r in rows if (r["corpus"], r["format"], r["processes"]) == (corpus, fmt, counts[0]))
                rows[-1]["scaling"] = round(rows[-1]["audio_per_wall_second"] / one["audio_per_wall_second"], 2)
                print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(report: dict) -> str:
    lines = [
        f"Front end alone (decode, VAD, packing, log-mel; no model, no language probe) on {report['machine']}, "
        f"{report['date']}, median of {report['reps']} runs; load average {report['load_average']} at the start. "
        "Shares are of the CPU time; scaling is audio per wall second against the first process count.",
        "",
        "| corpus | format | processes | audio s | audio s per CPU s | audio s per wall s | scaling | decode share "
        "| features share | VAD and rest |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['corpus']} | {r['format']} | {r['processes']} | {r['audio_seconds']} | {r['audio_per_cpu_second']} "
            f"| {r['audio_per_wall_second']} | {r['scaling']}x | {r['decode_share']:.0%} | {r['features_share']:.0%} "
            f"| {1 - r['decode_share'] - r['features_share']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench frontend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--corpora", default="short60,long513")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"of {', '.join(FORMATS)}")
    parser.add_argument("--processes", default="", help="counts to run, e.g. 1,2,4; default 1 to os.cpu_count()")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n-mels", type=int, default=80, help="80, or 128 for large-v3's features")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for frontend.{json,md}")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")] if args.processes else list(range(1, os.cpu_count() + 1))
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    report = {
        "machine": f"{cpu or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "load_average": round(os.getloadavg()[0], 1),
        "reps": args.reps,
        "rows": measure(args.corpora.split(","), args.formats.split(","), counts, args.reps, args.n_mels),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "frontend.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.results / "frontend.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
