"""The event-driven commands: submit, worker, serve, run, status, jobs, retry."""

from __future__ import annotations

import argparse
import datetime
import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from batchscribe.jobs.store import STATES, JobStore
from batchscribe.jobs.worker import Worker, WorkerOptions
from batchscribe.storage.objects import split_uri

DEFAULT_STORE = Path(os.environ.get("BATCHSCRIBE_STORE", ".batchscribe/jobs.db"))


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", type=Path, default=None, help=f"the job store (SQLite) (default: {DEFAULT_STORE}, or for `run` "
        "into a folder: OUTPUT/.batchscribe/jobs.db; env BATCHSCRIBE_STORE)"
    )


def _endpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url", default=None, help="S3/SQS endpoint of an S3-compatible server (default: boto3's config)"
    )


def _route_options(parser: argparse.ArgumentParser, source_flag: bool) -> None:
    if source_flag:
        parser.add_argument("--input", required=True, help="the watched source: s3://bucket/prefix/ or a folder")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="where transcripts go: s3://bucket/prefix/ or a folder (may be the source itself)",
    )


def _worker_options(parser: argparse.ArgumentParser) -> None:
    from batchscribe.cli import add_model_options, positive

    add_model_options(parser)
    defaults = WorkerOptions()
    parser.add_argument("--workers", type=positive, default=1, help="worker processes on this machine (default: 1)")
    parser.add_argument(
        "--files-per-batch", type=positive, default=defaults.files_per_batch, help="jobs claimed and packed together"
    )
    parser.add_argument("--lease-seconds", type=float, default=defaults.lease_seconds)
    parser.add_argument("--max-attempts", type=positive, default=3, help="failed attempts before a job is dead")
    parser.add_argument("--retry-backoff", type=float, default=10.0, help="seconds before the first retry (doubles)")


def add_commands(commands) -> None:
    submit = commands.add_parser("submit", help="enqueue every media file already in a folder or S3 prefix")
    submit.add_argument("source", help="a folder or s3://bucket/prefix/")
    _route_options(submit, source_flag=False)
    _store_option(submit)
    _endpoint_option(submit)
    submit.set_defaults(handler=_submit)

    worker = commands.add_parser("worker", help="transcribe queued jobs (optionally taking events from SQS)")
    _store_option(worker)
    _endpoint_option(worker)
    _worker_options(worker)
    worker.add_argument("--events", help="sqs://QUEUE_NAME or the queue URL: S3/EventBridge events become jobs")
    worker.add_argument("--input", help="with --events: the source the events are for (s3://bucket/prefix/)")
    worker.add_argument("-o", "--output", help="with --events: where their transcripts go")
    worker.add_argument("--exit-when-idle", action="store_true", help="stop when no job is left")
    worker.set_defaults(handler=_worker)

    serve = commands.add_parser("serve", help="take S3 event notifications over HTTP (MinIO, Ceph) as jobs")
    _route_options(serve, source_flag=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    _store_option(serve)
    _endpoint_option(serve)
    serve.set_defaults(handler=_serve)

    run = commands.add_parser("run", help="watch SOURCE and transcribe what lands there into -o (all in one)")
    run.add_argument("source", help="a folder or s3://bucket/prefix/ (S3: existing objects, then --events)")
    _route_options(run, source_flag=False)
    run.add_argument("--once", action="store_true", help="transcribe what is there now, then exit")
    run.add_argument("--settle-seconds", type=float, default=2.0, help="a new file must be unchanged this long")
    _store_option(run)
    _endpoint_option(run)
    _worker_options(run)
    run.set_defaults(handler=_run)

    status = commands.add_parser("status", help="job counts per state, throughput, oldest queued job")
    _store_option(status)
    status.set_defaults(handler=_status)

    jobs = commands.add_parser("jobs", help="list jobs (with their last error)")
    jobs.add_argument("--state", choices=STATES)
    jobs.add_argument("--dead-letters", action="store_true", help="list messages that were not events instead")
    _store_option(jobs)
    jobs.set_defaults(handler=_jobs)

    retry = commands.add_parser("retry", help="queue dead jobs again")
    retry.add_argument("job_ids", nargs="*", type=int, metavar="JOB")
    retry.add_argument("--dead", action="store_true", help="every dead job")
    _store_option(retry)
    retry.set_defaults(handler=_retry)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _store_path(args: argparse.Namespace) -> Path:
    if args.store is None:
        args.store = DEFAULT_STORE
    return args.store


def _open_store(args: argparse.Namespace) -> JobStore:
    return JobStore(_store_path(args), getattr(args, "max_attempts", 3), getattr(args, "retry_backoff", 10.0))


def _route(source: str, args: argparse.Namespace):
    from batchscribe.triggers.route import Route

    return Route.open(source, args.output, args.endpoint_url)


def _submit(args: argparse.Namespace) -> int:
    _logging()
    added, known = _route(args.source, args).backfill(_open_store(args))
    print(f"{added} queued, {known} already known; store: {args.store}")
    return 0


def _work_here(args: argparse.Namespace, exit_when_idle: bool, idle: Optional[Callable[[], bool]] = None) -> None:
    """One worker in this process (also the target of each --workers N process)."""
    _logging()
    from batchscribe.cli import transcribe_options

    options = WorkerOptions(args.files_per_batch, args.lease_seconds, 1.0, exit_when_idle, args.endpoint_url)
    worker = Worker(_open_store(args), transcribe_options(args), options)
    worker.install_signal_handlers()
    worker.run(idle)


def _work(args: argparse.Namespace, exit_when_idle: bool, idle: Optional[Callable[[], bool]] = None) -> None:
    """Run the worker here (one) or as N processes sharing the job store."""
    if args.workers == 1:
        _work_here(args, exit_when_idle, idle)
        return
    _store_path(args)  # resolved once, so every process opens the same store
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_work_here, args=(args, exit_when_idle), name=f"worker-{n}")
        for n in range(args.workers)
    ]
    for child in children:
        child.start()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid and signum == signal.SIGTERM:
                os.kill(child.pid, signal.SIGTERM)  # Ctrl-C already reaches the whole process group

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()


def _worker(args: argparse.Namespace) -> int:
    _logging()
    if not args.events:
        _work(args, args.exit_when_idle)
        return 0
    from batchscribe.errors import OptionsError
    from batchscribe.triggers.sqs import SqsEvents

    if not (args.input and args.output):
        raise OptionsError("--events needs --input (the source the events are for) and -o/--output")
    events = SqsEvents(args.events, _route(args.input, args), _open_store(args), args.endpoint_url)
    listener = threading.Thread(target=events.run, name="sqs-events", daemon=True)
    listener.start()
    try:
        _work(args, args.exit_when_idle, idle=events.quiet.is_set)
    finally:
        events.stop.set()
        listener.join(timeout=10)
    return 0


def _serve(args: argparse.Namespace) -> int:
    _logging()
    from batchscribe.triggers.webhook import webhook_server

    server = webhook_server(_route(args.input, args), _open_store(args), args.host, args.port)
    print(f"taking S3 event notifications at http://{args.host}:{server.server_address[1]}/", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _run(args: argparse.Namespace) -> int:
    """The embedded default: a folder watch (or an S3 backfill), the job store and workers in one command."""
    _logging()
    from batchscribe.triggers.watch import FolderWatch

    started = time.time()
    route = _route(args.source, args)
    scheme, _, output_folder = split_uri(route.dest_root)
    if scheme == "file":  # a folder that cannot be written is found now, not after the first transcript
        from batchscribe.checks import check_output_dir

        check_output_dir(Path(output_folder))
    if args.store is None and "BATCHSCRIBE_STORE" not in os.environ and scheme == "file":
        args.store = Path(output_folder) / ".batchscribe" / "jobs.db"  # delete the outputs, and the record goes too
    store = _open_store(args)
    is_folder = split_uri(route.source.root)[0] == "file"
    if args.once or not is_folder:
        added, known = route.backfill(store)
        logging.getLogger("batchscribe").info("%d queued, %d already known", added, known)
        _work(args, exit_when_idle=args.once)
    else:
        watch = FolderWatch(route, store, settle_seconds=args.settle_seconds)
        watcher = threading.Thread(target=watch.run, name="folder-watch", daemon=True)
        watcher.start()
        try:
            _work(args, exit_when_idle=False)
        finally:
            watch.stop.set()
    dead = [job for job in store.jobs("dead") if job.updated >= started]
    summary = store.status()
    print(f"{summary.counts['succeeded']} succeeded, {summary.counts['dead']} dead; transcripts in {args.output}; "
          f"job store: {args.store}")  # fmt: skip
    for job in dead:
        error = job.last_error or ""
        print(f"dead: {error if error.startswith(job.source_uri) else f'{job.source_uri}: {error}'}")
    return 1 if dead else 0


def _clock(epoch: Optional[float]) -> str:
    return "" if epoch is None else datetime.datetime.fromtimestamp(epoch).isoformat(timespec="seconds")


def _status(args: argparse.Namespace) -> int:
    status = _open_store(args).status()
    print("  ".join(f"{state} {count}" for state, count in status.counts.items()))
    print(
        f"last hour: {status.finished_last_hour} files, {status.audio_seconds_last_hour / 3600:.2f} h of audio; "
        f"dead letters: {status.dead_letters}"
    )
    if status.oldest_queued_seconds is not None:
        print(f"oldest queued job waiting {status.oldest_queued_seconds:.0f} s")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    store = _open_store(args)
    if args.dead_letters:
        for letter in store.dead_letters():
            print(f"{letter.id}\t{_clock(letter.received)}\t{letter.origin}\t{letter.error}\t{letter.body[:200]!r}")
        return 0
    for job in store.jobs(args.state):
        error = f"\t{job.last_error}" if job.last_error else ""
        print(f"{job.id}\t{job.state}\tattempts {job.attempts}\t{_clock(job.updated)}\t{job.source_uri}{error}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    from batchscribe.errors import OptionsError

    if not args.job_ids and not args.dead:
        raise OptionsError("name the jobs to retry, or --dead for every dead job")
    count = _open_store(args).retry(args.job_ids, dead=args.dead)
    print(f"{count} job(s) queued again")
    return 0
