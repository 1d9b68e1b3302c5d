"""What the commands print while they work: log levels for -v/-q, JSON lines for --log-format json,
and the periodic one-line status of `run` and `worker`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from typing import Callable, TextIO

# Per-file news (queued, already known, done) is INFO; failures are WARNING. `run` (someone at a
# terminal) shows WARNING and up, -v adds INFO; the daemons (worker, serve, job) log INFO for their
# log collectors, -q takes it away.
LEVELS = {-2: logging.ERROR, -1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def verbosity(args: argparse.Namespace) -> int:
    """-1 quiet, 0 default, 1 verbose, 2 debugging."""
    return max(-1, min(2, getattr(args, "verbose", 0) - getattr(args, "quiet", 0)))


def setup_logging(args: argparse.Namespace, daemon: bool = True) -> None:
    """Logging for this process (also each --workers process): level from -v/-q (one step more for a
    daemon), format from --log-format."""
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "log_format", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[verbosity(args) + (1 if daemon and not getattr(args, "interactive", False) else 0)])


def say(args: argparse.Namespace, message: str, stream: TextIO | None = None, **fields: object) -> None:
    """A line for the user (start line, status, summary): plain text, or a JSON object with --log-format json."""
    out = stream or sys.stderr
    if getattr(args, "log_format", "text") == "json":
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "info", "message": message}
        print(json.dumps({**entry, **fields}, ensure_ascii=False), file=out, flush=True)
    else:
        print(message, file=out, flush=True)


def status_line(counts: dict[str, int], started: float) -> str:
    """`12/60 done (1 dead) · 4 running · 44 queued · 0 retrying · 1 m 05 s`"""
    done = counts.get("succeeded", 0) + counts.get("dead", 0)
    total = sum(counts.values())
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    dead = f" ({counts['dead']} dead)" if counts.get("dead") else ""
    return (f"{done}/{total} done{dead} · {counts.get('running', 0)} running · {counts.get('queued', 0)} queued · "
            f"{counts.get('retrying', 0)} retrying · {minutes} m {seconds:02d} s")  # fmt: skip


class StatusTicker(threading.Thread):
    """Prints the job counts every `every` seconds while they change (never with -q)."""

    def __init__(self, args: argparse.Namespace, counts: Callable[[], dict[str, int]], every: float = 10.0):
        super().__init__(name="status", daemon=True)
        self.args, self.counts, self.every = args, counts, every
        self.stop = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        last = None
        while not self.stop.wait(self.every):
            try:
                counts = self.counts()
            except Exception:  # the store may be unreachable for a while; the worker says so
                continue
            if counts != last and verbosity(self.args) >= 0:
                say(self.args, status_line(counts, self.started), **counts)
            last = counts
