"""The job stores alone: how many jobs per second N worker processes claim and acknowledge.

    .venv/bin/python -m bench.store                      # SQLite, and PostgreSQL from a throwaway server
    python -m bench.store --postgres postgresql://user@host/db --jobs 5000 --processes 3

Each store gets `--jobs` jobs enqueued (timed: enqueues per second from one process), then
`--processes` processes loop claim(batch) + succeed(each) until none is left; throughput is jobs
(one claim share + one ack each) per second of wall time, for each claim batch size; the median
of `--reps` runs, the two stores interleaved. Without
--postgres, Debian's PostgreSQL is started in a temporary folder on 127.0.0.1 (as the tests do;
fsync on, unlike the tests' server). Prints a table, and the rows as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

from batchscribe.jobs.stores import open_job_store
from batchscribe.storage.objects import StoredObject


def _work(location: str, batch: int, owner: str, start, done) -> None:
    store = open_job_store(location)
    start.wait()
    taken = 0
    while jobs := store.claim(owner, batch, 60):
        for job in jobs:
            assert store.succeed(job.id, owner, 1.0)
            taken += 1
    done.put(taken)
    store.close()


def measure(location: str, jobs: int, processes: int, batch: int) -> dict:
    store = open_job_store(location)
    started = time.perf_counter()
    for n in range(jobs):
        store.enqueue(StoredObject("s3://bench/in/", f"{batch}/{n}.flac", "v1", 1), "s3://bench/out/")
    enqueue_seconds = time.perf_counter() - started
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    workers = [context.Process(target=_work, args=(location, batch, f"w{n}", start, done)) for n in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(2)  # every process imported and connected
    started = time.perf_counter()
    start.set()
    taken = sum(done.get(timeout=600) for _ in workers)
    wall = time.perf_counter() - started
    for worker in workers:
        worker.join()
    assert taken == jobs and store.status().counts["succeeded"] >= jobs
    store.close()
    return {"store": location.split(":")[0] if "://" in location else "sqlite", "processes": processes,
            "claim_batch": batch, "jobs": jobs, "enqueues_per_s": round(jobs / enqueue_seconds),
            "jobs_per_s": round(jobs / wall)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL database to use (default: a throwaway server)")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--batches", default="1,16", help="claim batch sizes")
    parser.add_argument("--reps", type=int, default=3, help="runs per row; the median is reported")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.postgres is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from services import PostgresServer

            server = PostgresServer(fsync=True)
            server.start()
        try:
            for batch in (int(b) for b in args.batches.split(",")):
                runs: dict[str, list[dict]] = {"sqlite": [], "postgresql": []}
                for rep in range(args.reps):  # interleaved, so both stores see the same machine load
                    sqlite = str(Path(tmp) / f"jobs-{batch}-{rep}.db")
                    postgres = args.postgres or server.database(f"bench_{batch}_{rep}")
                    for kind, location in (("sqlite", sqlite), ("postgresql", postgres)):
                        runs[kind].append(measure(location, args.jobs, args.processes, batch))
                        print(runs[kind][-1], file=sys.stderr)
                for kind_runs in runs.values():
                    row = dict(kind_runs[0])
                    for field in ("enqueues_per_s", "jobs_per_s"):
                        row[field] = statistics.median(run[field] for run in kind_runs)
                    row["runs"] = [run["jobs_per_s"] for run in kind_runs]
                    rows.append(row)
        finally:
            if server is not None:
                server.stop()
                server.remove()
    print("| store | processes | claim batch | jobs | enqueues/s (1 process) | jobs claimed+acked/s | runs |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['store']} | {row['processes']} | {row['claim_batch']} | {row['jobs']} | "
              f"{row['enqueues_per_s']:.0f} | {row['jobs_per_s']:.0f} | {row['runs']} |")  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
