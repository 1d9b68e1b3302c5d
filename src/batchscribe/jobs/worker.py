"""A worker: claims jobs in batches, transcribes them together with one loaded model, writes, acks.

Each file is acknowledged the moment its transcripts are stored (not at the end of the
batch), so a worker killed mid-batch loses only the files still in flight; their leases
expire and another worker takes them. SIGTERM (or Ctrl-C) lets the current batch finish and
claims no more; a second one gives the unfinished jobs back at once and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from batchscribe.checks import disk_full
from batchscribe.errors import OutputError
from batchscribe.jobs.metrics import worker_metrics
from batchscribe.jobs.store import Job, JobStore
from batchscribe.options import TranscribeOptions
from batchscribe.results import FailureKind, FileResult
from batchscribe.sinks.base import identity_of
from batchscribe.sinks.objects import ObjectSink
from batchscribe.storage.objects import Store, open_store

if TYPE_CHECKING:
    from batchscribe.pipeline import Transcriber

log = logging.getLogger("batchscribe.worker")


@dataclass(frozen=True)
class WorkerOptions:
    files_per_batch: int = 16  # jobs claimed at once: their speech is packed into shared model batches
    lease_seconds: float = 120.0  # renewed every third of this while the batch runs
    poll_seconds: float = 1.0
    exit_when_idle: bool = False  # stop once no job is queued, running or waiting for a retry
    endpoint_url: Optional[str] = None


class _Stopping(BaseException):
    """Raised inside a batch after a second stop request: give the rest back. (A BaseException: the
    pipeline, which catches a sink's errors to fail that file alone, lets it through.)"""


class _JobSink(ObjectSink):
    """A job's destination: stores nothing more once a second stop was asked for."""

    def __init__(self, store: Store, worker: "Worker"):
        super().__init__(store)
        self.worker = worker

    def write(self, *args, **kwargs):
        if self.worker.stop_requests > 1:
            raise _Stopping()
        return super().write(*args, **kwargs)


class _Held:
    """The jobs this worker holds a lease on (in flight, or finished but not yet acknowledged).
    The heartbeat thread reads it while the main thread changes it, hence the lock."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def add(self, job_ids: list[int]) -> None:
        with self._lock:
            self._ids.update(job_ids)

    def discard(self, job_id: int) -> None:
        with self._lock:
            self._ids.discard(job_id)

    def ids(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)


class Worker:
    def __init__(
        self,
        job_store: JobStore,
        options: TranscribeOptions,
        worker_options: WorkerOptions = WorkerOptions(),
        transcriber: Optional[Transcriber] = None,
    ):
        """`transcriber`: one made for `options` unless given (a test hands in one with a fake engine)."""
        self.job_store = job_store
        self.options = options
        self.worker_options = worker_options
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        if transcriber is None:
            from batchscribe.pipeline import Transcriber  # the engine: loaded by workers, never by `serve`

            transcriber = Transcriber(options)
        self.transcriber = transcriber
        self.stop_requests = 0
        self.halted: Optional[str] = None  # why the worker stopped on its own (a full disk)
        self._object_stores: dict[str, Store] = {}  # object stores by root URI (sources and destinations)
        self._sinks: dict[str, ObjectSink] = {}
        self._held = _Held()
        self._owed: list[tuple[str, Callable[[], object]]] = []  # store updates made while it was unreachable

    def request_stop(self, *_: object) -> None:
        self.stop_requests += 1
        log.warning("stop requested: %s", "finishing the current batch" if self.stop_requests == 1 else "now")

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self, idle: Optional[Callable[[], bool]] = None) -> None:
        """Work until asked to stop (or, with exit_when_idle, until nothing is left and `idle()` agrees).
        An unreachable job store pauses the work, never ends it: finished transcripts are kept and
        acknowledged once it answers again."""
        beat = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(beat,), name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            while not self.stop_requests and not self.halted:
                if not self._settle_owed():
                    time.sleep(self.worker_options.poll_seconds)
                    continue
                try:
                    options = self.worker_options
                    jobs = self.job_store.claim(self.owner, options.files_per_batch, options.lease_seconds)
                    if not jobs:
                        if options.exit_when_idle and self.job_store.unfinished() == 0 and (idle is None or idle()):
                            return
                        time.sleep(self.worker_options.poll_seconds)
                        continue
                except Exception as error:
                    log.warning("job store unreachable, waiting: %s", error)
                    time.sleep(self.worker_options.poll_seconds)
                    continue
                self.run_batch(jobs)
            # a first stop still acknowledges what was finished
            while self.stop_requests < 2 and not self.halted and not self._settle_owed():
                time.sleep(self.worker_options.poll_seconds)
        finally:
            beat.set()
            heartbeat.join()
        if self.halted:
            raise OutputError(self.halted)

    def _object_store(self, root: str) -> Store:
        if root not in self._object_stores:
            self._object_stores[root] = open_store(root, self.worker_options.endpoint_url)
        return self._object_stores[root]

    def _sink(self, root: str) -> ObjectSink:
        if root not in self._sinks:
            self._sinks[root] = _JobSink(self._object_store(root), self)
        return self._sinks[root]

    def run_batch(self, jobs: list[Job]) -> None:
        pending = {job.id: job for job in jobs}  # the main thread's own: jobs not yet finished either way
        self._held.add(list(pending))
        self._claimed = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="batchscribe-") as scratch:
                checked = self._skip_done(pending)
                for fetched in _rounds(self._fetch(pending, Path(scratch))):
                    listener = _BatchListener(self, [job for _, job in fetched], pending)
                    sources = [self._source(p, job, job.id in checked) for p, job in fetched]
                    self.transcriber.run(sources, None, listener)  # each result, skipped ones too, to `finish`
            for job in list(pending.values()):  # the pipeline reports every file; this is a safety net
                self._fail(pending, job, "the transcription run ended without a result for this file")
        except _Stopping:
            for job_id in list(pending):
                self._held.discard(job_id)
            self._record("release", lambda ids=list(pending): self.job_store.release(self.owner, ids), owe=False)
        except Exception as error:  # model or machine trouble: every unfinished job fails this attempt
            if isinstance(error, OutputError) and disk_full(error):  # the destination's disk
                self.halted = (
                    f"{error}. This worker stopped taking jobs; the unfinished jobs are queued again: free space "
                    "and start it again to resume"
                )
                log.error("%s", self.halted)
                for job_id in list(pending):
                    self._held.discard(job_id)
                self._record("release", lambda ids=list(pending): self.job_store.release(self.owner, ids), owe=False)
                return
            if disk_full(error):  # the job store's disk: nothing can be recorded; the leases will expire
                self.halted = f"the disk is full ({error}); this worker stopped: free space and start it again"
                return
            log.exception("batch failed")
            for job in list(pending.values()):
                self._fail(pending, job, f"batch failed: {error!r}")
        finally:
            worker_metrics().batch_done(time.monotonic() - self._claimed, self.transcriber.model_load_seconds)

    def _source(self, path: Path, job: Job, resume_checked: bool = False):
        from batchscribe.pipeline import SourceFile  # with the engine: see __init__

        identity = identity_of(job)
        sink = self._sink(job.dest_root)
        return SourceFile(path, job.key, job.source_uri, identity, label=job.source_uri, sink=sink,
                          resume_checked=resume_checked)  # fmt: skip

    def _skip_done(self, pending: dict[int, Job]) -> set[int]:
        """Acknowledge, without fetching them, jobs whose transcripts are already stored for this very
        object version and these settings (the sink's stamp: a lease that expired after the store).
        Returns the ids of the jobs found not done, which the pipeline need not ask about again (one
        stamp read per job)."""
        if self.options.overwrite:
            return set()
        keys = self.transcriber.settings_keys()
        checked = set()
        for job in list(pending.values()):
            try:
                done = self._sink(job.dest_root).is_done(job.key, identity_of(job), keys, self.options.formats)
            except Exception as error:  # the pipeline asks again; storing will say what is wrong
                log.warning("%s: cannot tell whether it is already transcribed: %s", job.source_uri, error)
                continue
            if done:
                self.finish(pending, job, FileResult(job.source_uri, "skipped"))
            else:
                checked.add(job.id)
        return checked

    def _fetch(self, pending: dict[int, Job], scratch: Path) -> list[tuple[Path, Job]]:
        """Each job's local copy (a folder's file is read where it is: two versions of it share a path)."""
        fetched = []
        for job in list(pending.values()):
            try:
                path = self._object_store(job.source_root).local_copy(job.key, scratch / str(job.id))
            except Exception as error:
                bad = FailureKind.of(error) is FailureKind.BAD_INPUT  # e.g. deleted since it was queued
                self._fail(pending, job, f"{job.source_uri}: cannot be fetched: {error}", permanent=bad)
                continue
            fetched.append((path, job))
        return fetched

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.worker_options.lease_seconds / 3):
            held = self._held.ids()
            if not held:
                continue
            try:
                self.job_store.heartbeat(self.owner, held, self.worker_options.lease_seconds)
            except Exception as error:  # a busy or restarting store: the next beat will do
                log.warning("heartbeat failed: %s", error)

    def finish(self, pending: dict[int, Job], job: Job, result: FileResult) -> None:
        if self.stop_requests > 1:
            raise _Stopping()
        if result.status == "failed" or (result.status == "ok" and result.transcript is None):
            # the pipeline names the file by its URI (SourceFile.shown): the message is the user's already
            self._fail(pending, job, result.error or "failed", permanent=result.failure is FailureKind.BAD_INPUT)
            return
        if result.transcript is not None:  # stored by the job's sink (sinks/objects.py)
            for warning in result.transcript.warnings:
                log.warning("%s: %s", job.source_uri, warning)
        else:
            log.info("%s: already transcribed (its stamp matches this version and settings); skipped", job.source_uri)
        pending.pop(job.id, None)
        took = time.monotonic() - self._claimed
        for note in result.transcript.audio.notes() if result.transcript else ():  # tracks left out, a downmix
            log.warning("%s: %s", job.source_uri, note)

        def acknowledge(job: Job = job, seconds: float = result.audio_seconds) -> None:
            if self.job_store.succeed(job.id, self.owner, seconds):
                log.info("done: %s", job.source_uri)
                worker_metrics().job_succeeded(took, seconds)
            else:
                log.warning("%s: transcribed, but its lease had passed to another worker", job.source_uri)
            self._held.discard(job.id)

        self._record(f"done: {job.source_uri}", acknowledge)

    def _fail(self, pending: dict[int, Job], job: Job, error: str, permanent: bool = False) -> None:
        pending.pop(job.id, None)
        worker_metrics().job_failed(error)

        def record(job: Job = job) -> None:
            state = self.job_store.fail(job.id, self.owner, error, permanent)
            self._held.discard(job.id)
            log.warning("%s (%s)", error, state)

        self._record(f"failed: {job.source_uri}", record)

    def _record(self, what: str, update: Callable[[], object], owe: bool = True) -> None:
        """Tell the store; if it cannot be reached, keep the update (and its lease) to tell it later."""
        if self._owed and owe:  # keep the order: an earlier update still waits
            self._owed.append((what, update))
            return
        try:
            update()
        except Exception as error:
            if not owe:
                log.warning("job store unreachable (%s): %s", what, error)
                return
            log.warning("job store unreachable (%s): %s; kept, to be recorded when it answers", what, error)
            self._owed.append((what, update))

    def _settle_owed(self) -> bool:
        """Record the updates kept while the store was unreachable; True once none is left."""
        while self._owed:
            what, update = self._owed[0]
            try:
                update()
            except Exception as error:
                log.warning("job store still unreachable (%s): %s", what, error)
                return False
            self._owed.pop(0)
            log.info("recorded after the store came back: %s", what)
        return True


def _rounds(fetched: list[tuple[Path, Job]]) -> list[list[tuple[Path, Job]]]:
    """The fetched jobs in runs that each hold one job per source URI (results are told apart by it):
    one run, unless two versions of one object were claimed together (then one after the other, in
    the order they were claimed)."""
    rounds: list[list[tuple[Path, Job]]] = []
    for path, job in fetched:
        free = next((r for r in rounds if all(j.source_uri != job.source_uri for _, j in r)), None)
        if free is None:
            free = []
            rounds.append(free)
        free.append((path, job))
    return rounds


class _BatchListener:
    """Routes the pipeline's per-file results to their jobs as they complete."""

    def __init__(self, worker: Worker, jobs: list[Job], pending: dict[int, Job]):
        self.worker = worker
        self.by_source = {job.source_uri: job for job in jobs}
        self.pending = pending

    def started(self, files: int, skipped: int) -> None:
        pass

    def file_finished(self, result: FileResult) -> None:
        self.worker.finish(self.pending, self.by_source[result.source], result)
