"""What the API and the web view share: the route, the job store, and the questions both ask of them.

Store calls block (SQLite, or a network store); the routes run them in worker threads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Iterator, Optional

from batchscribe.errors import InputError
from batchscribe.jobs.store import Job, JobStore
from batchscribe.options import FORMATS
from batchscribe.storage.keys import output_key
from batchscribe.storage.objects import Store, StoredObject, open_store, split_uri
from batchscribe.triggers.route import Route


class NotFound(InputError):
    """No such job, or no such transcript (yet)."""


@dataclass(frozen=True)
class Submitted:
    queued: int
    known: int
    skipped: list[str]  # URIs not under the source, not media, or unsafe: each with why


@dataclass
class Context:
    route: Route
    jobs: JobStore
    endpoint_url: Optional[str] = None

    def __post_init__(self) -> None:
        self._stores: dict[str, Store] = {}

    def job(self, job_id: int) -> Job:
        job = self.jobs.job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def _dest(self, root: str) -> Store:
        if root not in self._stores:
            self._stores[root] = open_store(root, self.endpoint_url)
        return self._stores[root]

    def transcript(self, job_id: int, fmt: str) -> str:
        """A finished job's transcript in one format (txt, srt, vtt, json); NotFound otherwise."""
        if fmt not in FORMATS:
            raise NotFound(f"no format {fmt!r}; choose from {', '.join(FORMATS)}")
        job = self.job(job_id)
        if job.state != "succeeded":
            raise NotFound(f"job {job_id} is {job.state}: no transcript yet")
        try:
            return self._dest(job.dest_root).read_text(output_key(job.key, fmt))
        except InputError as error:
            raise NotFound(f"job {job_id}: {error} (was {fmt} among the worker's --formats?)") from None

    def transcript_document(self, job_id: int) -> dict:
        """The JSON transcript as a dict (segments with start/end/text, language; speaker when present)."""
        return json.loads(self.transcript(job_id, "json"))

    def submit(self, uris: list[str], prefix: Optional[str] = None) -> Submitted:
        """Enqueue the named objects, and every wanted object under `prefix` (a backfill of part or all
        of the source). URIs and the prefix must lie under the route's source."""
        skipped: list[str] = []
        queued = known = 0
        for obj in chain(self._named(uris, skipped), self._under(prefix, skipped)):
            if self.route.enqueue(self.jobs, obj):
                queued += 1
            else:
                known += 1
        return Submitted(queued, known, skipped)

    def _named(self, uris: list[str], skipped: list[str]) -> Iterator[StoredObject]:
        """The objects `uris` name that the route wants; the others are added to `skipped` with why."""
        root = self.route.source.root
        keys = []
        for uri in uris:
            key = _key_under(root, uri)
            if key is None:
                skipped.append(f"{uri}: not under the source {root}")
            else:
                keys.append((uri, key))
        for uri, key in keys:
            try:
                if not self.route.wants(key):
                    skipped.append(f"{uri}: not a media file, or under the output")
                    continue
                yield self.route.source.stat(key)
            except InputError as error:
                skipped.append(str(error))

    def _under(self, prefix: Optional[str], skipped: list[str]) -> Iterator[StoredObject]:
        """The wanted objects under `prefix` (none when it is None)."""
        if prefix is None:
            return
        root = self.route.source.root
        start = _key_under(root, prefix if prefix.endswith("/") or prefix == root else prefix + "/")
        if start is None:
            skipped.append(f"{prefix}: not under the source {root}")
            return
        for obj in self.route.source.list():
            try:
                if obj.key.startswith(start) and self.route.wants(obj.key):
                    yield obj
            except InputError as error:
                skipped.append(str(error))


def _key_under(root: str, uri: str) -> Optional[str]:
    """`uri`'s key relative to the store `root` (plain paths taken as file URIs); None if outside."""
    scheme, bucket, path = split_uri(uri)
    absolute = f"s3://{bucket}/{path}" if scheme == "s3" else _file_uri(path, uri.endswith("/"))
    return absolute[len(root) :] if absolute.startswith(root) or absolute == root.rstrip("/") else None


def _file_uri(path: str, folder: bool) -> str:
    return Path(path).as_uri() + ("/" if folder else "")
