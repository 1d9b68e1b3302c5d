"""batchscribe with its model already loaded, as a job worker runs: no import or load in the time.

    .venv/bin/python -m bench.warm --backends ct2,torch --batch-sizes 4,8
    python -m bench.warm --device cuda --backends torch --batch-sizes 8,16,32 --model /models/tiny.en

Each (backend, batch size) loads one Transcriber, warms it on a few files, then times whole runs
over each corpus; the median of the repetitions is reported with the error rate. Prints a table,
and the rows as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.corpora import audio_seconds, corpora, error_rate
from batchscribe.errors import BatchscribeError
from batchscribe.options import TranscribeOptions
from batchscribe.pipeline import Transcriber

WARM_UP_FILES = 4


def measure(options: TranscribeOptions, names: list[str], reps: int) -> list[dict]:
    transcriber = Transcriber(options)
    with tempfile.TemporaryDirectory() as tmp:
        transcriber.run([str(f) for f in corpora()["short60"].files[:WARM_UP_FILES]], Path(tmp))
    rows = []
    for corpus in (corpora()[name] for name in names):
        walls = []
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                transcriber.run([str(f) for f in corpus.files], Path(tmp))
                walls.append(time.perf_counter() - started)
                error, metric = error_rate(Path(tmp), corpus.files)
        wall = statistics.median(walls)
        rows.append({
            "backend": transcriber.placement.backend, "device": transcriber.placement.device,
            "compute_type": transcriber.placement.compute_type, "batch_size": transcriber.options.batch_size,
            "corpus": corpus.name, "wall_seconds": round(wall, 2),
            "rtfx": round(audio_seconds(corpus.files) / wall, 1), "error": round(100 * error, 2), "metric": metric,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--backends", default="ct2,torch")
    parser.add_argument("--batch-sizes", default="0", help="windows per model call; 0: the backend's best")
    parser.add_argument("--corpora", default="short60,long513")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            options = TranscribeOptions(model=args.model, device=args.device, backend=backend,
                                        batch_size=batch_size, formats=("txt",), overwrite=True)  # fmt: skip
            try:
                measured = measure(options, args.corpora.split(","), args.reps)
            except (BatchscribeError, RuntimeError) as error:  # e.g. a backend without its GPU libraries
                print(f"{backend} batch {batch_size} left out: {error}", file=sys.stderr, flush=True)
                continue
            rows += measured
            print("\n".join(json.dumps(row) for row in measured), flush=True)
    print("| backend | device | compute | batch | corpus | warm wall s | RTFx | error % |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['device']} | {r['compute_type']} | {r['batch_size']} | {r['corpus']} "
              f"| {r['wall_seconds']} | {r['rtfx']} | {r['error']} {r['metric']} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
