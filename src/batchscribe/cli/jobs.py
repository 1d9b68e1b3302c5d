"""The job-store commands: submit, worker, serve, status, jobs, retry (and the workers `run` starts)."""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

from batchscribe.cli.options import (
    DEFAULT_STORE,
    STORE_ENV,
    HelpFormatter,
    add_endpoint_option,
    add_logging_options,
    add_output_option,
    add_source_argument,
    add_store_option,
    add_worker_options,
    source_of,
    transcribe_options,
)
from batchscribe.cli.terminal import StatusTicker, say, setup_logging
from batchscribe.jobs.sql import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS
from batchscribe.jobs.store import STATES, JobState, JobStore, StoreMissing, store_location
from batchscribe.jobs.stores import open_job_store


def add_commands(commands) -> None:
    submit = commands.add_parser(
        "submit", help="enqueue every media file already in a folder or S3 prefix", formatter_class=HelpFormatter
    )
    add_source_argument(submit, "a folder or s3://bucket/prefix/")
    add_output_option(submit)
    add_store_option(submit)
    add_endpoint_option(submit)
    add_logging_options(submit)
    submit.set_defaults(handler=_submit)

    worker = commands.add_parser(
        "worker", help="transcribe queued jobs (optionally taking events from SQS)", formatter_class=HelpFormatter
    )
    add_store_option(worker)
    add_endpoint_option(worker)
    add_worker_options(worker)
    add_logging_options(worker)
    events = worker.add_argument_group("events")
    events.add_argument("--events", help="sqs://QUEUE_NAME or the queue URL: S3/EventBridge events become jobs")
    events.add_argument("--input", help="with --events: the source the events are for (s3://bucket/prefix/)")
    add_output_option(events, required=False, help="with --events: where their transcripts go")
    worker.add_argument("--exit-when-idle", action="store_true", help="stop when no job is left")
    worker.set_defaults(handler=_worker)

    serve = commands.add_parser(
        "serve", help="the HTTP service: S3 event notifications (MinIO, Ceph) as jobs, JSON API, web view, metrics",
        formatter_class=HelpFormatter,
    )  # fmt: skip
    add_source_argument(serve, "the watched source: s3://bucket/prefix/ or a folder (--input SOURCE also works)")
    add_output_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; other than loopback needs a token")
    serve.add_argument("--port", type=int, default=8080, help="port to bind")
    serve.add_argument("--token-file", type=Path,
                       help="file holding the access token (default: env BATCHSCRIBE_TOKEN; none: no auth)")
    serve.add_argument("--request-timeout", type=float, default=30.0,
                       help="seconds a request's headers, then its body, may take")  # fmt: skip
    add_store_option(serve)
    add_endpoint_option(serve)
    add_logging_options(serve)
    serve.set_defaults(handler=_serve)

    status = commands.add_parser(
        "status", help="job counts per state, throughput, oldest queued job", formatter_class=HelpFormatter
    )
    add_store_option(status)
    status.set_defaults(handler=_status)

    jobs = commands.add_parser("jobs", help="list jobs (with their last error)", formatter_class=HelpFormatter)
    jobs.add_argument("--state", choices=STATES, help="only jobs in this state")
    jobs.add_argument("--dead-letters", action="store_true", help="list messages that were not events instead")
    add_store_option(jobs)
    jobs.set_defaults(handler=_jobs)

    retry = commands.add_parser("retry", help="queue dead jobs again", formatter_class=HelpFormatter)
    retry.add_argument("job_ids", nargs="*", type=int, metavar="JOB", help="job ids, as `jobs` lists them")
    retry.add_argument("--dead", action="store_true", help="every dead job")
    add_store_option(retry)
    retry.set_defaults(handler=_retry)


def store_path(args: argparse.Namespace) -> str:
    """The store this command uses, resolved once (an absolute path or a PostgreSQL URI), so every
    worker process opens the same one; an unsupported scheme is an error here, never a folder."""
    if args.store is None:
        args.store = os.environ.get(STORE_ENV) or DEFAULT_STORE
    location = store_location(args.store)
    args.store = location.target
    args.store_shown = str(location)  # without a password
    return args.store


def open_store(args: argparse.Namespace, create: bool = True) -> JobStore:
    """The job store; reading commands pass create=False: a missing store is an error naming where
    they looked, never a new empty store that reports zeros."""
    location = store_path(args)
    try:
        attempts = getattr(args, "max_attempts", DEFAULT_MAX_ATTEMPTS)
        return open_job_store(location, attempts, getattr(args, "retry_backoff", DEFAULT_BACKOFF_SECONDS), create)
    except StoreMissing as error:
        hint = "" if os.environ.get(STORE_ENV) else (
            "; `run` into a folder keeps its store in OUTPUT/.batchscribe/jobs.db"
        )  # fmt: skip
        raise StoreMissing(f"{error}{hint}") from None


def route(source: str, args: argparse.Namespace):
    from batchscribe.triggers.route import Route

    return Route.open(source, args.output, args.endpoint_url)


def _submit(args: argparse.Namespace) -> int:
    setup_logging(args)
    added, known = route(source_of(args), args).backfill(open_store(args))
    print(f"{added} queued, {known} already known; store: {args.store_shown}")
    return 0


def _work_here(
    args: argparse.Namespace, exit_when_idle: bool, idle: Optional[Callable[[], bool]] = None, index: int = 0
) -> None:
    """One worker in this process (also the target of each --workers N process, `index` 0..N-1)."""
    setup_logging(args)
    from batchscribe.jobs.worker import Worker, WorkerOptions

    options = WorkerOptions(args.files_per_batch, args.lease_seconds, 1.0, exit_when_idle, args.endpoint_url)
    store = open_store(args)
    if args.metrics_port is not None:
        from batchscribe.jobs.metrics import serve_worker_metrics

        serve_worker_metrics(args.metrics_port + index, store, args.metrics_host)
    worker = Worker(store, transcribe_options(args), options)
    worker.install_signal_handlers()
    worker.run(idle)


def work(args: argparse.Namespace, exit_when_idle: bool, idle: Optional[Callable[[], bool]] = None) -> None:
    """Run the worker here (one) or as N processes sharing the job store, with a status line every 10 s."""
    ticker = StatusTicker(args, lambda: open_store(args).status().counts)
    ticker.start()
    try:
        if args.workers == 1:
            _work_here(args, exit_when_idle, idle)
            return
        store_path(args)  # resolved once, so every process opens the same store
        context = multiprocessing.get_context("spawn")
        children = [
            context.Process(target=_work_here, args=(args, exit_when_idle, None, n), name=f"worker-{n}")
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
    finally:
        ticker.stop.set()


def _worker(args: argparse.Namespace) -> int:
    setup_logging(args)
    say(args, f"batchscribe worker: model {args.model}, backend {args.backend}, store {_shown(args)}")
    if not args.events:
        work(args, args.exit_when_idle)
        return 0
    from batchscribe.errors import OptionsError
    from batchscribe.triggers.sqs import SqsEvents

    if not (args.input and args.output):
        raise OptionsError("--events needs --input (the source the events are for) and -o/--output-dir")
    events = SqsEvents(args.events, route(args.input, args), open_store(args), args.endpoint_url)
    listener = threading.Thread(target=events.run, name="sqs-events", daemon=True)
    listener.start()
    try:
        work(args, args.exit_when_idle, idle=events.quiet.is_set)
    finally:
        events.stop.set()
        listener.join(timeout=10)
    return 0


def _shown(args: argparse.Namespace) -> str:
    store_path(args)
    return args.store_shown


def _serve(args: argparse.Namespace) -> int:
    setup_logging(args)
    import logging

    from batchscribe.service.app import ServiceOptions, create_app, serve
    from batchscribe.service.auth import check_bind, load_token

    token = load_token(args.token_file)
    check_bind(args.host, token)
    options = ServiceOptions(token, request_timeout=args.request_timeout, endpoint_url=args.endpoint_url)
    app = create_app(route(source_of(args), args), open_store(args), options)
    if token is None:
        logging.getLogger("batchscribe.service").warning(
            "no token (BATCHSCRIBE_TOKEN or --token-file): anyone on this machine can use the service"
        )
    print(f"batchscribe service at http://{args.host}:{args.port}/ (S3 event notifications: POST /; "
          "API: /api, described at /openapi.json; metrics: /metrics)", flush=True)  # fmt: skip
    serve(app, args.host, args.port, options)
    return 0


def _clock(epoch: Optional[float]) -> str:
    return "" if epoch is None else datetime.datetime.fromtimestamp(epoch).isoformat(timespec="seconds")


def _status(args: argparse.Namespace) -> int:
    status = open_store(args, create=False).status()
    print(f"job store: {args.store_shown}")
    print("  ".join(f"{state} {count}" for state, count in status.counts.items()))
    print(
        f"last hour: {status.finished_last_hour} files, {status.audio_seconds_last_hour / 3600:.2f} h of audio; "
        f"dead letters: {status.dead_letters}"
    )
    if status.oldest_queued_seconds is not None:
        print(f"oldest queued job waiting {status.oldest_queued_seconds:.0f} s")
    return 0


def tries(job) -> int:
    """Attempts made, the one that succeeded (or is running) included: the store counts failed ones."""
    return job.attempts + (1 if job.state in (JobState.SUCCEEDED, JobState.RUNNING) else 0)


def _jobs(args: argparse.Namespace) -> int:
    store = open_store(args, create=False)
    print(f"job store: {args.store_shown}", file=sys.stderr)  # stdout: a header, then one line per job
    if args.dead_letters:
        print("id\treceived\torigin\terror\tbody")
        for letter in store.dead_letters():
            print(f"{letter.id}\t{_clock(letter.received)}\t{letter.origin}\t{letter.error}\t{letter.body[:200]!r}")
        return 0
    print("id\tstate\tattempts\tupdated\tsource\terror")
    for job in store.jobs(args.state):
        error = job.last_error or ""
        print(f"{job.id}\t{job.state}\tattempts {tries(job)}\t{_clock(job.updated)}\t{job.source_uri}\t{error}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    from batchscribe.errors import OptionsError

    if not args.job_ids and not args.dead:
        raise OptionsError("name the jobs to retry, or --dead for every dead job")
    count = open_store(args, create=False).retry(args.job_ids, dead=args.dead)
    print(f"{count} job(s) queued again; store: {args.store_shown}")
    return 0
