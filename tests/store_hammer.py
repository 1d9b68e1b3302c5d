"""One process of the job store concurrency test: 8 threads enqueue, claim, heartbeat, succeed,
fail and retry jobs on one store at once, and write down what every call answered.

    python tests/store_hammer.py LOCATION PROCESS_INDEX OUT.json

Each job's fate is fixed by its key (see `plan`), so the parent can check the store's final state
against it and against the calls' answers.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import zlib

from batchscribe.jobs.store import JobState
from batchscribe.jobs.stores import open_job_store
from batchscribe.storage.objects import StoredObject

THREADS = 8
OWN_JOBS = 10  # per thread
SHARED_JOBS = 16  # enqueued by every thread of every process: one job each
LEASE_SECONDS = 3.0
HOLD_PAST_LEASE = 3.5  # some jobs are held longer than their lease: only the heartbeat keeps them
BEAT_SECONDS = 0.25
ROOT, DEST = "s3://media/in/", "s3://media/out/"


def plan(key: str) -> str:
    """'ok', 'fail-once' (then ok), 'bad' (fails every attempt: dead), 'bad-retried' (dead, retried
    once by the thread that saw it die, dead again)."""
    return ("ok", "ok", "fail-once", "bad", "ok", "ok", "fail-once", "bad-retried")[zlib.crc32(key.encode()) % 8]


def keys(process: int, thread: int) -> list[str]:
    return [f"p{process}t{thread}-{n}" for n in range(OWN_JOBS)] + [f"shared-{n}" for n in range(SHARED_JOBS)]


class Hammer:
    def __init__(self, location: str, process: int):
        self.store = open_job_store(location, max_attempts=3, backoff_seconds=0.02)
        self.process = process
        self.lock = threading.Lock()
        self.held: dict[str, set[int]] = {}  # owner -> job ids it holds now
        self.log: dict[str, list] = {"errors": [], "violations": [], "enqueued": [], "succeeded": [],
                                     "failed": [], "retried": [], "calls": [0]}  # fmt: skip
        self.done = threading.Event()

    def call(self, name: str, *args):
        try:
            result = getattr(self.store, name)(*args)
        except Exception as error:
            with self.lock:
                self.log["errors"].append(f"{name}: {error!r}")
            return "error"
        with self.lock:
            self.log["calls"][0] += 1
        return result

    def worker(self, thread: int) -> None:
        owner = f"p{self.process}t{thread}"
        rng = random.Random(owner)
        self.held[owner] = set()
        for key in keys(self.process, thread):
            job_id = self.call("enqueue", StoredObject(ROOT, key, "v1", 1), DEST)
            if job_id not in (None, "error"):
                self.log["enqueued"].append(job_id)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            jobs = self.call("claim", owner, 3, LEASE_SECONDS)
            if jobs == "error":
                continue
            if not jobs:
                if self.call("unfinished") == 0:
                    return
                time.sleep(0.02)
                continue
            with self.lock:
                self.held[owner].update(job.id for job in jobs)
            for job in jobs:
                self.work(owner, job, rng)
        self.log["errors"].append(f"{owner}: jobs left unfinished after 240 s")

    def work(self, owner: str, job, rng: random.Random) -> None:
        time.sleep(HOLD_PAST_LEASE if rng.random() < 0.03 else rng.uniform(0, 0.005))
        if job.lost_leases:
            self.log["violations"].append(f"job {job.id} was claimed after a lost lease")
        fate = plan(job.key)
        previous_round = int(job.last_error.split()[1]) if job.last_error else 0
        this_round = previous_round + (1 if job.last_error and job.attempts == 0 else 0)
        failing = fate in ("bad", "bad-retried") or (fate == "fail-once" and job.attempts == 0)
        if failing:
            state = self.call("fail", job.id, owner, f"round {this_round} attempt {job.attempts + 1}")
            if state is None:
                self.log["violations"].append(f"job {job.id}: fail() found the lease gone although it was renewed")
            elif state != "error":
                self.log["failed"].append([job.id, str(state)])
                if state is JobState.DEAD and fate == "bad-retried" and this_round == 0:
                    self.log["retried"].append([job.id, self.call("retry", [job.id])])
        else:
            acked = self.call("succeed", job.id, owner, 1.0)
            if acked is False:
                self.log["violations"].append(f"job {job.id}: succeed() found the lease gone although it was renewed")
            elif acked is True:
                self.log["succeeded"].append(job.id)
        with self.lock:
            self.held[owner].discard(job.id)

    def heartbeat(self) -> None:
        while not self.done.wait(BEAT_SECONDS):
            with self.lock:
                held = {owner: sorted(ids) for owner, ids in self.held.items() if ids}
            for owner, ids in held.items():
                self.call("heartbeat", owner, ids, LEASE_SECONDS)
            if rng_status.random() < 0.2:  # readers too, as `status` and the webhook's health check
                self.call("status")


rng_status = random.Random(0)


def main() -> None:
    location, process, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    hammer = Hammer(location, process)
    beat = threading.Thread(target=hammer.heartbeat)
    beat.start()
    threads = [threading.Thread(target=hammer.worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hammer.done.set()
    beat.join()
    with open(out, "w") as handle:
        json.dump(hammer.log, handle)


if __name__ == "__main__":
    main()
