"""`batchscribe run`: a folder watch (or an S3 backfill), the job store and workers in one command."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from batchscribe.cli.jobs import open_store, route, work
from batchscribe.cli.options import (
    STORE_ENV,
    HelpFormatter,
    add_endpoint_option,
    add_logging_options,
    add_output_option,
    add_source_argument,
    add_store_option,
    add_worker_options,
    source_of,
)
from batchscribe.cli.terminal import say, setup_logging

def add_commands(commands) -> None:
    run = commands.add_parser(
        "run", help="watch SOURCE and transcribe what lands there into -o (all in one)", formatter_class=HelpFormatter
    )
    add_source_argument(run, "a folder (watched) or s3://bucket/prefix/ (its objects now; for events use `worker "
                        "--events` or `serve`)")  # fmt: skip
    add_output_option(run)
    run.add_argument("--once", action="store_true", help="transcribe what is there now, then exit")
    run.add_argument("--settle-seconds", type=float, default=2.0, help="a new file must be unchanged this long")
    add_store_option(run)
    add_endpoint_option(run)
    add_worker_options(run)
    add_logging_options(run)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    args.interactive = True  # also read by each --workers process
    setup_logging(args)
    from batchscribe.storage.objects import split_uri
    from batchscribe.triggers.watch import FolderWatch

    started = time.time()
    source = source_of(args)
    the_route = route(source, args)
    scheme, _, output_folder = split_uri(the_route.dest_root)
    if scheme == "file":  # a folder that cannot be written is found now, not after the first transcript
        from batchscribe.checks import check_output_dir

        check_output_dir(Path(output_folder))
    if args.store is None and not os.environ.get(STORE_ENV) and scheme == "file":
        # delete the outputs, and the record goes too
        args.store = str(Path(output_folder) / ".batchscribe" / "jobs.db")
    store = open_store(args)
    is_folder = split_uri(the_route.source.root)[0] == "file"
    watching = not (args.once or not is_folder)
    say(args, f"batchscribe run: {'watching' if watching else 'transcribing'} {source} -> {args.output}; "
        f"model {args.model}, backend {args.backend}; job store {args.store_shown}"
        + ("; Ctrl-C stops after the batch in hand" if watching else ""),
        model=args.model, backend=args.backend, store=args.store_shown, source=source, output=args.output)  # fmt: skip
    if not watching:
        added, known = the_route.backfill(store)
        say(args, f"{added} queued, {known} already known", queued=added, known=known)  # one line, not one per file
        work(args, exit_when_idle=args.once)
    else:
        watch = FolderWatch(the_route, store, settle_seconds=args.settle_seconds)
        watcher = threading.Thread(target=watch.run, name="folder-watch", daemon=True)
        watcher.start()
        try:
            work(args, exit_when_idle=False)
        finally:
            watch.stop.set()
    dead = [job for job in store.jobs("dead") if job.updated >= started]
    counts = store.status().counts
    unfinished = ", ".join(f"{counts[s]} {s}" for s in ("retrying", "queued", "running") if counts.get(s))
    say(args, f"{counts['succeeded']} succeeded, {counts['dead']} dead" + (f", {unfinished}" if unfinished else "")
        + f"; transcripts in {args.output}; job store: {args.store_shown}", stream=sys.stdout, **counts)  # fmt: skip
    for job in dead:
        error = job.last_error or ""
        reason = error if error.startswith(job.source_uri) else f"{job.source_uri}: {error}"
        say(args, f"dead: {reason}", stream=sys.stdout, source=job.source_uri)  # with the summary, on stdout
    return 1 if dead else 0
