"""Reproduce batchscribe's speed, accuracy and memory next to its peers, on this machine, in one run.

    .venv/bin/python -m bench                       # tiny.en and base, 3 repetitions, scaling run
    .venv/bin/python -m bench --models tiny.en --reps 1 --no-scaling --results /tmp/quick

Each system runs as its own process over a whole corpus (model load included), with the same
weights and thread count; systems are interleaved and the median of the repetitions reported.
Results go to bench/results/latest.{json,md,png}. On a GPU machine, for example:

    python -m bench --device cuda --models tiny.en --corpora short60,long513 --no-scaling \
        --systems batchscribe-ct2,batchscribe-torch,fw-batched-16,hf-pipeline-16,seed

A system that fails (say CTranslate2 without its CUDA libraries) is reported and left out.
`python -m bench frontend` times the audio front end alone (see bench/frontend.py);
`python -m bench memory --hours 1,3` reads peak RSS as one file grows (see bench/memory.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpora import REPO, audio_seconds, corpora, error_rate, untranscribed, write_scaled
from bench.report import save
from bench.systems import ENGLISH_ONLY, SYSTEMS, command, load_seconds

RESULTS = REPO / "bench" / "results"


def run_process(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO)
        stdout = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            errors.seek(0)
            raise RuntimeError(f"{' '.join(argv[:4])} failed: {(stdout + errors.read())[-800:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def compare(model: str, names: list[str], systems: list[str], reps: int, threads: int, device: str) -> list[dict]:
    rows = []
    failed: dict[str, str] = {}
    for corpus in (corpora()[n] for n in names):
        if model.endswith(".en") and not corpus.english_only:
            continue
        audio = audio_seconds(corpus.files)
        here_systems = [s for s in systems if corpus.english_only or s not in ENGLISH_ONLY]
        samples: dict[str, list[tuple[float, float, float | None]]] = {s: [] for s in systems}
        scores: dict[str, tuple[float, str]] = {}
        for rep in range(reps):
            for system in here_systems:  # interleaved: drift in the machine hits every system alike
                if system in failed:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        argv = command(system, model, Path(tmp), list(corpus.files), threads, device)
                        wall, rss, stdout = run_process(argv)
                        missing = untranscribed(Path(tmp), corpus.files)
                        if missing:
                            raise RuntimeError(f"no transcript for {len(missing)} of {len(corpus.files)} files")
                    except (RuntimeError, subprocess.CalledProcessError) as error:  # reported, not fatal
                        failed[system] = str(error)
                        print(f"{system} left out: {error}", file=sys.stderr, flush=True)
                        continue
                    scores[system] = error_rate(Path(tmp), corpus.files)
                samples[system].append((wall, rss, load_seconds(system, stdout)))
                print(f"{model} {corpus.name} {rep + 1}/{reps} {system}: {wall:.1f} s", file=sys.stderr, flush=True)
        for system in (s for s in here_systems if samples[s]):
            wall = statistics.median(s[0] for s in samples[system])
            loads = [s[2] for s in samples[system] if s[2] is not None]
            rows.append({
                "model": model, "corpus": corpus.name, "system": system, "files": len(corpus.files),
                "audio_seconds": round(audio, 1), "wall_seconds": round(wall, 2), "rtfx": round(audio / wall, 1),
                "error": round(100 * scores[system][0], 2), "metric": scores[system][1],
                "peak_rss_mib": round(max(s[1] for s in samples[system])),
                "load_seconds": round(statistics.median(loads), 2) if loads else None,
            })  # fmt: skip
        here = [r for r in rows if r["corpus"] == corpus.name and r["model"] == model]
        ours = next((r for r in here if r["system"] in ("batchscribe", "batchscribe-ct2")), None)
        for row in here:
            row["batchscribe_speedup"] = round(ours["rtfx"] / row["rtfx"], 2) if ours else None
    for system, error in failed.items():
        rows.append({"model": model, "system": system, "failed": error[-600:]})
    return rows


def scaling(threads: int, device: str) -> list[dict]:
    """batchscribe's RTFx as the number of files and the length of one file grow."""
    short = list(corpora()["short60"].files)
    long_source = corpora()["long513"].files[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        copies = []
        for n in range(4):  # 240 files: the 60 utterances four times, under distinct names
            for path in short:
                copy = folder / "files" / f"{n}_{path.name}"
                copy.parent.mkdir(exist_ok=True)
                shutil.copy(path, copy)
                copies.append(copy)
        runs = [(f"{n} files", copies[:n]) for n in (1, 10, 60, 240)]
        runs += [(f"1 file of {label}", [write_scaled(folder, s, long_source)]) for s, label in
                 ((30, "30 s"), (300, "5 min"), (1200, "20 min"), (3600, "1 h"))]  # fmt: skip
        for label, files in runs:
            audio = audio_seconds(files)
            with tempfile.TemporaryDirectory() as out:
                wall, rss, _ = run_process(command("batchscribe", "tiny.en", Path(out), files, threads, device))
            results.append({"label": label, "audio_seconds": round(audio, 1), "rtfx": round(audio / wall, 1),
                            "peak_rss_mib": round(rss)})  # fmt: skip
            print(f"scaling {label}: RTFx {audio / wall:.1f}, peak RSS {rss:.0f} MiB", file=sys.stderr, flush=True)
    return results


def gpu_name(device: str) -> str:
    if device != "cuda":
        return ""
    import torch

    return f", {torch.cuda.get_device_name()}"


def main() -> None:
    if sys.argv[1:2] == ["frontend"]:  # `python -m bench frontend ...`: the audio front end alone
        from bench.frontend import main as frontend

        frontend(sys.argv[2:])
        return
    if sys.argv[1:2] == ["memory"]:  # `python -m bench memory ...`: peak RSS as one file grows
        from bench.memory import main as memory

        memory(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--corpora", default="short60,long513,long231,multilingual")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for latest.{json,md,png}")
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        rows += compare(model, args.corpora.split(","), args.systems.split(","), args.reps, args.threads, args.device)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    report = {
        "machine": f"{cpu or platform.machine()}, {os.cpu_count()} cores" + gpu_name(args.device),
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "reps": args.reps,
        "rows": rows,
        "scaling": [] if args.no_scaling else scaling(args.threads, args.device),
    }
    print(save(report, args.results))


if __name__ == "__main__":
    main()
