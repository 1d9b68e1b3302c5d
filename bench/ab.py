"""A/B: batchscribe from two source trees (say main and a branch), interleaved, in one run.

    .venv/bin/python -m bench.ab ../main/src src --model base --corpora short60,long513 --reps 3

Each run is `batchscribe transcribe CORPUS` as a user runs it (model load included), with the
tree's src on PYTHONPATH. Reports the median wall time and CPU time (user + system, less
disturbed by other work on a shared machine) and the error rate of each tree per corpus.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpora import audio_seconds, corpora, error_rate


def _run(src: Path, model: str, files: tuple[Path, ...], out: Path, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds of one transcription process."""
    argv = [sys.executable, "-m", "batchscribe", "transcribe", *map(str, files), "-o", str(out), "--model", model,
            "--formats", "txt", "--overwrite", "--threads", str(threads)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{src}: batchscribe failed: {process.stderr.read().decode()[-800:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="source folder A (holds the batchscribe package)")
    parser.add_argument("b", type=Path, help="source folder B")
    parser.add_argument("--model", default="base")
    parser.add_argument("--corpora", default="short60,long513")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print("| corpus | tree | wall s (median) | CPU s (median) | RTFx | error % | B/A wall | B/A CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.corpora.split(","):
        corpus = corpora()[name]
        samples: dict[Path, list[tuple[float, float]]] = {args.a: [], args.b: []}
        errors: dict[Path, float] = {}
        for rep in range(args.reps):
            for src in (args.a, args.b) if rep % 2 == 0 else (args.b, args.a):  # alternate who goes first
                with tempfile.TemporaryDirectory() as tmp:
                    samples[src].append(_run(src, args.model, corpus.files, Path(tmp), args.threads))
                    errors[src] = error_rate(Path(tmp), corpus.files)[0]
                print(f"{name} {rep + 1}/{args.reps} {src}: {samples[src][-1][0]:.1f} s", file=sys.stderr, flush=True)
        audio = audio_seconds(corpus.files)
        wall = {src: statistics.median(s[0] for s in runs) for src, runs in samples.items()}
        cpu = {src: statistics.median(s[1] for s in runs) for src, runs in samples.items()}
        for src in (args.a, args.b):
            ratio = f"{wall[src] / wall[args.a]:.3f} | {cpu[src] / cpu[args.a]:.3f}"
            print(f"| {name} | {src} | {wall[src]:.1f} | {cpu[src]:.1f} | {audio / wall[src]:.1f} | "
                  f"{100 * errors[src]:.2f} | {ratio} |")  # fmt: skip


if __name__ == "__main__":
    main()
