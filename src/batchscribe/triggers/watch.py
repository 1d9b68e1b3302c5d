"""Folder watch: files that appear in a folder become jobs once they are fully written.

Polling, not inotify: it also works on network mounts (NFS, SMB) where recordings often land,
and it cannot miss files that arrived while batchscribe was not running. A file is taken once
its size and modification time have not changed for `settle_seconds`; names that tools use
while still writing (`.part`, `.tmp`, `.crdownload`, hidden files, `~`) are ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import PurePosixPath

from batchscribe.errors import InputError
from batchscribe.jobs.store import JobStore
from batchscribe.storage.base import StoredObject
from batchscribe.triggers.route import Route

log = logging.getLogger("batchscribe.triggers")

PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart", "~")


def is_partial_name(key: str) -> bool:
    name = PurePosixPath(key).name.lower()
    return name.startswith((".", "~$")) or name.endswith(PARTIAL_SUFFIXES)


class FolderWatch:
    def __init__(self, route: Route, jobs: JobStore, settle_seconds: float = 2.0, poll_seconds: float = 1.0):
        self.route = route
        self.jobs = jobs
        self.settle_seconds = settle_seconds
        self.poll_seconds = poll_seconds
        self._seen: dict[str, tuple[str, float]] = {}  # key -> (version, when first seen with it)
        self._taken: dict[str, str] = {}  # key -> version enqueued (or known)
        self.stop = threading.Event()
        self.quiet = threading.Event()  # set when a scan found nothing still settling

    def scan(self) -> None:
        now = time.monotonic()
        settling = False
        for obj in self.route.source.list():
            if is_partial_name(obj.key) or self._taken.get(obj.key) == obj.version:
                continue
            try:
                settling |= self._look_at(obj, now)
            except Exception as error:  # one object must never stop the files after it (nor loop)
                self._taken[obj.key] = obj.version  # reported once per version, not every second
                if isinstance(error, InputError):
                    log.warning("skipped: %s", error)
                else:
                    log.warning("skipped %s: %s: %s", obj.uri, type(error).__name__, error)
        if settling:
            self.quiet.clear()
        else:
            self.quiet.set()

    def _look_at(self, obj: StoredObject, now: float) -> bool:
        """Enqueue `obj` once it has settled; True while it is still settling."""
        if not self.route.wants(obj.key):
            self._taken[obj.key] = obj.version
            return False
        version, since = self._seen.get(obj.key, (None, now))
        if version != obj.version:
            self._seen[obj.key] = (obj.version, now)
            return True
        if now - since >= self.settle_seconds:
            self.route.enqueue(self.jobs, obj)
            self._taken[obj.key] = obj.version
            del self._seen[obj.key]
            return False
        return True

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.scan()
            except Exception:  # a vanished folder or a busy store must not end the watch
                log.exception("folder scan failed")
            self.stop.wait(self.poll_seconds)
