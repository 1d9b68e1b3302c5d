"""Peak memory of `batchscribe transcribe` on one long file, as the file grows (issue 18's memory target:
a 3-hour file peaks no higher than a 1-hour one did).

    .venv/bin/python -m bench memory                          # 1 h and 3 h, tiny.en, default options
    .venv/bin/python -m bench memory --hours 0.33,1 --results /tmp/mem --keep /tmp/mem/out

Each file is made the way the scaling run makes its 1-hour file (bench.corpora.write_scaled: the
513 s long-form recording repeated), as 16 kHz WAV under the temp folder. batchscribe runs as its own
process with its default options (threads, batch size, encoder: what `auto` picks on this machine)
and every text format (txt, srt, vtt, json), as a user would run it. Peak RSS is the process's
ru_maxrss, the figure `/usr/bin/time -v` prints as "Maximum resident set size"; it does not depend on
the machine's load. The RSS is also sampled twice a second, and the largest sample of each quarter of
the run is reported, so growth along the file shows. Results go to RESULTS/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.corpora import REPO, corpora, write_scaled

RESULTS = REPO / "bench" / "results" / "memory"
FORMATS = "txt,srt,vtt,json"
SAMPLE_SECONDS = 0.5


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next((ln for ln in status if ln.startswith("VmRSS:")), None)
    except OSError:
        return None
    return int(line.split()[1]) / 1024 if line else None


def transcribe(audio: Path, out: Path, model: str, extra: list[str]) -> dict:
    """Wall seconds, peak RSS (MiB) and the RSS samples of one `batchscribe transcribe` process."""
    argv = [sys.executable, "-m", "batchscribe", "transcribe", str(audio), "-o", str(out), "--model", model,
            "--formats", FORMATS, "--overwrite", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    samples: list[tuple[float, float]] = []
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO, env=env)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                value = rss_mib(process.pid)
                if value is not None:
                    samples.append((time.perf_counter() - started, value))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        sampler.join()
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"batchscribe failed on {audio.name}: {(stdout + errors.read())[-800:]}")
    quarters = [max((v for t, v in samples if q * wall / 4 <= t < (q + 1) * wall / 4), default=0.0) for q in range(4)]
    return {"wall_seconds": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "rss_by_quarter_mib": [round(q) for q in quarters],
            "summary": stdout.strip().splitlines()[-1:]}  # fmt: skip


def markdown(report: dict) -> str:
    lines = [
        f"Measured on {report['machine']}, {report['date']}: `{report['command']}`",
        "",
        f"`batchscribe transcribe FILE --model {report['model']} --formats {FORMATS}` with default options"
        + (f" and `{' '.join(report['extra'])}`" if report["extra"] else "")
        + "; peak RSS is the process's ru_maxrss (`/usr/bin/time -v`'s maximum resident set size).",
        "",
        "| file | audio s | wall s | RTFx | peak RSS MiB | largest RSS sample per quarter of the run, MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        quarters = " / ".join(str(q) for q in r["rss_by_quarter_mib"])
        rtfx = round(r["audio_seconds"] / r["wall_seconds"], 1)
        lines.append(
            f"| {r['label']} | {r['audio_seconds']} | {r['wall_seconds']} | {rtfx} | {r['peak_rss_mib']} | {quarters} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--hours", default="1,3", help="file lengths in hours, comma-separated")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for latest.{json,md}")
    parser.add_argument("--keep", type=Path, help="keep each file's transcripts under this folder")
    parser.add_argument("extra", nargs="*", help="more batchscribe options, after --")
    args = parser.parse_args(argv)
    source = corpora()["long513"].files[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for hours in (float(h) for h in args.hours.split(",")):
            seconds = round(hours * 3600)
            audio = write_scaled(Path(tmp), seconds, source)
            out = (args.keep / f"{hours:g}h") if args.keep else Path(tmp) / "out"
            out.mkdir(parents=True, exist_ok=True)
            row = {"label": f"{hours:g} h", "audio_seconds": seconds, **transcribe(audio, out, args.model, args.extra)}
            rows.append(row)
            audio.unlink()
            print(f"{row['label']}: peak RSS {row['peak_rss_mib']} MiB, {row['wall_seconds']} s, RSS by quarter "
                  f"{row['rss_by_quarter_mib']}", file=sys.stderr, flush=True)  # fmt: skip
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    report = {
        "machine": f"{cpu or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m bench memory " + " ".join(argv),
        "model": args.model,
        "extra": args.extra,
        "rows": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.results / "latest.md").write_text(markdown(report))
    print(markdown(report))
