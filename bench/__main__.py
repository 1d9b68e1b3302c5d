"""Reproduce batchscribe's speed and accuracy next to its peers, on this machine, in one run.

    .venv/bin/python -m bench [--reps 3] [--corpora short60,long513] [--systems ...]

Each system runs as its own process over a whole corpus (model load included), systems are
interleaved, and the median of the repetitions is reported with WER and peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BATCHSCRIBE_TEST_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"

CORPORA = {
    "short60": sorted((DATA / "librispeech" / "test-other").glob("*.flac")),
    "long513": [DATA / "longform" / "constructed_librispeech_test-other_6spk_60utt.flac"],
    "long231": [DATA / "longform" / "constructed_ljspeech_LJ001-0001_to_0032.flac"],
}
SYSTEMS = ["batchscribe", "fw-sequential", "fw-batched-8", "fw-batched-16"]


def _references() -> dict[str, str]:
    refs = {}
    with open(DATA / "MANIFEST.tsv", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            text = row[3]
            refs[row[0]] = (DATA / text[5:].split(" ")[0]).read_text() if text.startswith("file:") else text
    return refs


def _duration(files: list[Path]) -> float:
    import av

    total = 0.0
    for f in files:
        with av.open(str(f)) as c:
            total += c.duration / 1e6
    return total


def _command(system: str, model: str, out: Path, files: list[Path], threads: int) -> list[str]:
    if system == "batchscribe":
        return [
            str(REPO / ".venv" / "bin" / "batchscribe"),
            "transcribe",
            *map(str, files),
            "-o",
            str(out),
            "--model",
            model,
            "--formats",
            "txt",
            "--overwrite",
            "--threads",
            str(threads),
        ]
    from batchscribe.engine.models import resolve_model

    return [
        sys.executable,
        "-m",
        "bench.peers",
        system,
        str(resolve_model(model).path),
        str(out),
        str(threads),
        *map(str, files),
    ]


def _run(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB, and stdout of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise RuntimeError(f"{command[:3]} exited {process.returncode}: {stdout[-500:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def _wer(out: Path, files: list[Path], refs: dict[str, str]) -> float:
    normalize = EnglishTextNormalizer()
    hyps, truths = [], []
    for f in files:
        truths.append(normalize(refs[str(f.relative_to(DATA))]))
        hyp = out / f"{f.stem}.txt"
        hyps.append(normalize(hyp.read_text() if hyp.exists() else ""))
    return jiwer.wer(truths, hyps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--corpora", default="short60,long513")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    args = parser.parse_args()
    refs = _references()
    corpora = args.corpora.split(",")
    systems = args.systems.split(",")
    rows = []
    for corpus in corpora:
        files = CORPORA[corpus]
        audio = _duration(files)
        runs: dict[str, list[tuple[float, float]]] = {s: [] for s in systems}
        wers: dict[str, float] = {}
        for rep in range(args.reps):
            for system in systems:  # interleaved, so drift hits every system alike
                with tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp)
                    wall, rss, _ = _run(_command(system, args.model, out, files, args.threads))
                    runs[system].append((wall, rss))
                    wers[system] = _wer(out, files, refs)
                print(f"{corpus} rep {rep + 1}/{args.reps} {system}: {wall:.1f} s", file=sys.stderr)
        for system in systems:
            wall = statistics.median(w for w, _ in runs[system])
            rows.append(
                {
                    "corpus": corpus,
                    "system": system,
                    "model": args.model,
                    "audio_seconds": round(audio, 1),
                    "wall_seconds": round(wall, 2),
                    "rtfx": round(audio / wall, 1),
                    "wer": round(100 * wers[system], 2),
                    "peak_rss_mib": round(max(r for _, r in runs[system])),
                }
            )
        base = next(r for r in rows if r["corpus"] == corpus and r["system"] == "batchscribe")
        for row in rows:
            if row["corpus"] == corpus:
                row["batchscribe_speedup"] = round(base["rtfx"] / row["rtfx"], 2)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads"
    report = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "reps": args.reps, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    table = ["| corpus | system | RTFx | WER % | peak RSS MiB | batchscribe speed-up |", "|---|---|---|---|---|---|"]
    table += [
        f"| {r['corpus']} | {r['system']} | {r['rtfx']} | {r['wer']} | {r['peak_rss_mib']} "
        f"| {r['batchscribe_speedup']}x |"
        for r in rows
    ]
    markdown = f"{machine}, {args.model}, median of {args.reps}\n\n" + "\n".join(table) + "\n"
    (RESULTS / "latest.md").write_text(markdown)
    print(json.dumps(report))
    print(markdown)


if __name__ == "__main__":
    main()
